//! Activity rules in SQL: a user's facts for a promotion's rules in one statement
//! ([`RulesRepo::facts`]), the audience a promotion saw (`activity_audience`: who viewed,
//! subscribed, and what was last decided for them) and its funnel ([`RulesRepo::funnel`]).
//! [`SqlRules`] is the actors' `RulesStore` port over it: facts read on demand, decisions
//! written in the background in batches (one transaction per batch), so a subscribe storm
//! never waits on them.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use corral_actors::ports::rules::{AudienceNote, FactsQuery, RulesError, RulesStore, UserFacts};
use corral_protocol::ops::ActivityId;
use corral_protocol::rules::RuleKey;
use corral_protocol::{EpochMs, UserId};
use sqlx::{AnyPool, Row};
use tokio::sync::mpsc;

use crate::store::{Db, StoreError};

/// Notes written per transaction at most.
const NOTE_BATCH: usize = 512;
/// Notes waiting for the writer at most; a subscriber waits for room past it.
const NOTE_QUEUE: usize = 65_536;

/// A promotion's funnel: how many users reached each stage, and how many each rule stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Funnel {
    /// Users who opened the promotion (viewed, subscribed or claimed).
    pub viewers: i64,
    /// Users who subscribed to its countdown.
    pub subscribers: i64,
    /// Users whose last decision was eligible.
    pub eligible: i64,
    /// Users with at least one claim.
    pub claimed: i64,
    /// Claims confirmed (paid).
    pub confirmed: i64,
    /// Holds that expired unpaid.
    pub expired: i64,
    /// Per rule, the users whose last decision it stopped (rules that stopped nobody are 0).
    pub stopped_by: BTreeMap<RuleKey, i64>,
}

/// Facts, audience and funnel reads and writes.
#[derive(Clone)]
pub struct RulesRepo {
    pool: AnyPool,
}

impl RulesRepo {
    /// The repository on `db`'s pool.
    pub fn new(db: &Db) -> RulesRepo {
        RulesRepo {
            pool: db.pool.clone(),
        }
    }

    /// One user's facts for one promotion, in one statement; `None` for an unknown user.
    pub async fn facts(&self, q: FactsQuery) -> Result<Option<UserFacts>, StoreError> {
        let row = sqlx::query(
            "SELECT u.created_at, \
             (SELECT COUNT(*) FROM follows f WHERE f.follower_id = u.id AND f.followee_id = $2) \
               AS follows, \
             (SELECT COUNT(*) FROM posts p WHERE p.author_id = u.id AND p.deleted_at IS NULL \
               AND p.created_at >= $3) AS posts, \
             (SELECT COUNT(*) FROM users i WHERE i.invited_by = u.id) AS invited, \
             (SELECT COUNT(*) FROM claims c JOIN activities a ON a.id = c.activity_id \
               WHERE c.user_id = u.id AND c.status = 'confirmed' AND c.activity_id <> $4 \
               AND a.merchant_id = $2) AS at_merchant, \
             (SELECT COUNT(*) FROM claims c WHERE c.user_id = u.id AND c.status = 'confirmed' \
               AND c.activity_id <> $4) AS anywhere \
             FROM users u WHERE u.id = $1",
        )
        .bind(q.user)
        .bind(q.merchant)
        // No `posts` rule: count from the end of time (nothing), reading no post.
        .bind(q.posts_since.unwrap_or(EpochMs::MAX))
        .bind(q.activity)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(UserFacts {
            registered_at: row.try_get("created_at")?,
            follows_merchant: row.try_get::<i64, _>("follows")? > 0,
            posts_since: if q.posts_since.is_some() {
                row.try_get("posts")?
            } else {
                0
            },
            invited: row.try_get("invited")?,
            confirmed_at_merchant: row.try_get("at_merchant")?,
            confirmed_anywhere: row.try_get("anywhere")?,
        }))
    }

    /// Records that `user` viewed the promotion (a row without a decision, kept if one
    /// exists).
    pub async fn viewed(
        &self,
        activity: ActivityId,
        user: UserId,
        now: EpochMs,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO activity_audience (activity_id, user_id, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (activity_id, user_id) DO NOTHING",
        )
        .bind(activity)
        .bind(user)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes `notes` in one transaction: each user's latest decision (a subscription, once
    /// noted, stays).
    async fn write_notes(&self, notes: &[AudienceNote]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for note in notes {
            let unmet: Vec<&str> = note.unmet.iter().map(|u| u.rule.as_str()).collect();
            let unmet = serde_json::to_string(&unmet).unwrap_or_else(|_| "[]".into());
            sqlx::query(
                "INSERT INTO activity_audience \
                 (activity_id, user_id, subscribed, evaluated, eligible, unmet, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (activity_id, user_id) DO UPDATE SET \
                 subscribed = (activity_audience.subscribed OR excluded.subscribed), \
                 evaluated = excluded.evaluated, eligible = excluded.eligible, \
                 unmet = excluded.unmet, updated_at = excluded.updated_at",
            )
            .bind(note.activity)
            .bind(note.user)
            .bind(note.subscribed)
            .bind(true)
            .bind(note.unmet.is_empty())
            .bind(unmet)
            .bind(note.at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The funnel of `activity`.
    pub async fn funnel(&self, activity: ActivityId) -> Result<Funnel, StoreError> {
        let stopped: String = RuleKey::ALL
            .iter()
            .map(|key| {
                // Rule names are constants (snake_case words): no input reaches the SQL text.
                format!(
                    ", COALESCE(SUM(CASE WHEN unmet LIKE '%\"{0}\"%' THEN 1 ELSE 0 END), 0) AS {0}",
                    key.as_str()
                )
            })
            .collect();
        let audience = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS viewers, \
             COALESCE(SUM(CASE WHEN subscribed THEN 1 ELSE 0 END), 0) AS subscribers, \
             COALESCE(SUM(CASE WHEN evaluated AND eligible THEN 1 ELSE 0 END), 0) AS eligible \
             {stopped} FROM activity_audience WHERE activity_id = $1"
        )))
        .bind(activity)
        .fetch_one(&self.pool)
        .await?;
        let claims = sqlx::query(
            "SELECT COUNT(DISTINCT user_id) AS claimed, \
             COALESCE(SUM(CASE WHEN status = 'confirmed' THEN 1 ELSE 0 END), 0) AS confirmed, \
             COALESCE(SUM(CASE WHEN status = 'expired' THEN 1 ELSE 0 END), 0) AS expired \
             FROM claims WHERE activity_id = $1",
        )
        .bind(activity)
        .fetch_one(&self.pool)
        .await?;
        let mut stopped_by = BTreeMap::new();
        for key in RuleKey::ALL {
            stopped_by.insert(key, audience.try_get::<i64, _>(key.as_str())?);
        }
        Ok(Funnel {
            viewers: audience.try_get("viewers")?,
            subscribers: audience.try_get("subscribers")?,
            eligible: audience.try_get("eligible")?,
            claimed: claims.try_get("claimed")?,
            confirmed: claims.try_get("confirmed")?,
            expired: claims.try_get("expired")?,
            stopped_by,
        })
    }
}

/// The actors' `RulesStore` over [`RulesRepo`], with the background writer of notes.
pub struct SqlRules {
    repo: RulesRepo,
    notes: mpsc::Sender<AudienceNote>,
}

impl SqlRules {
    /// The port on `db`, its note writer started.
    pub fn start(db: &Db) -> SqlRules {
        let repo = RulesRepo::new(db);
        let (notes, rx) = mpsc::channel(NOTE_QUEUE);
        tokio::spawn(write_notes(repo.clone(), rx));
        SqlRules { repo, notes }
    }
}

/// Writes notes as they come, up to [`NOTE_BATCH`] per transaction, until every sender is
/// gone. A failed batch is logged and dropped (it only counts towards a funnel).
async fn write_notes(repo: RulesRepo, mut rx: mpsc::Receiver<AudienceNote>) {
    let mut batch = Vec::with_capacity(NOTE_BATCH);
    while rx.recv_many(&mut batch, NOTE_BATCH).await > 0 {
        if let Err(err) = repo.write_notes(&batch).await {
            tracing::warn!(%err, notes = batch.len(), "writing funnel notes failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        batch.clear();
    }
}

fn rules_error(err: impl std::error::Error + Send + Sync + 'static) -> RulesError {
    RulesError(Box::new(err))
}

#[async_trait]
impl RulesStore for SqlRules {
    async fn facts(&self, query: FactsQuery) -> Result<Option<UserFacts>, RulesError> {
        self.repo.facts(query).await.map_err(rules_error)
    }

    async fn note(&self, note: AudienceNote) -> Result<(), RulesError> {
        self.notes
            .send(note)
            .await
            .map_err(|_| RulesError("the funnel's note writer has stopped".into()))
    }
}

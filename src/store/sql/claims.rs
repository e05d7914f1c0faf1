//! Durable claim rows: the group-commit writer of new holds, the conditional updates that
//! move a claim through its states exactly once, the reads recovery and the merchant view
//! need, and the activity catalog (over the promotions tables) the claim desk loads specs from.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use corral_actors::claims::RestoredClaim;
use corral_actors::metric_catalogue as metric;
use corral_actors::ports::activities::{ActivityCatalog, ActivityRecord, CatalogError};
use corral_actors::ports::claims::{ClaimRecord, LedgerError};
use corral_protocol::ops::{ActivityId, ClaimStatus};
use corral_protocol::{EpochMs, UserId};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::promotions::ActivityRepo;
use super::{Backend, Db, StoreError, coupons};
use crate::store::attempt;

#[cfg(feature = "fault-injection")]
pub mod late_commit;

/// Columns every claim read returns, in [`record`]'s order (the ninth is its coupon code,
/// bound only while the claim is held or confirmed; see `coupons.rs`).
const COLUMNS: &str = "id, activity_id, item_id, user_id, claim_key, status, expires_at, created_at, \
     (SELECT k.code FROM coupon_codes k WHERE k.claim_id = claims.id), attempt";

/// The status of a key whose decision reconciliation voided (see `0018_claim_attempts.sql`):
/// read as `cancelled` by everyone but the ledger, which decides the key afresh.
const VOID: &str = "void";

/// Most holds committed in one transaction.
const MAX_BATCH: usize = 512;

impl From<StoreError> for LedgerError {
    fn from(err: StoreError) -> Self {
        LedgerError::Unavailable(Box::new(err))
    }
}

/// A key's row as a decision finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// The claim (a void row reads as `cancelled`).
    pub claim: ClaimRecord,
    /// Reconciliation voided the decision of `claim.attempt`: no hold stands for the key.
    pub voided: bool,
}

/// How a key's row stands, as reconciliation compares it with the arbiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyStanding {
    /// Its status (a void row reads as `cancelled`).
    pub status: ClaimStatus,
    /// The decision of the key the row is for.
    pub attempt: i64,
}

fn status(name: &str) -> ClaimStatus {
    // A void row never held anything; unknown names cannot be written (fixed enum names).
    ClaimStatus::parse(name).unwrap_or(ClaimStatus::Cancelled)
}

fn key_row(row: &AnyRow) -> Result<KeyRow, StoreError> {
    let name: String = row.try_get(5)?;
    Ok(KeyRow {
        claim: record(row)?,
        voided: name == VOID,
    })
}

fn record(row: &AnyRow) -> Result<ClaimRecord, StoreError> {
    let name: String = row.try_get(5)?;
    Ok(ClaimRecord {
        claim_id: row.try_get(0)?,
        activity: row.try_get(1)?,
        item: row.try_get(2)?,
        user: row.try_get(3)?,
        key: row.try_get(4)?,
        status: status(&name),
        expires_at: row.try_get(6)?,
        created_at: row.try_get(7)?,
        coupon_code: row.try_get(8)?,
        attempt: row.try_get(9)?,
    })
}

/// How a claim row counts when an arbiter is rebuilt: held and confirmed claims occupy a
/// slot; expired, cancelled and void ones only pin their key; `refund_due` never took a slot
/// back. A later decision of the key (after a void) also pins the key's first decision, so a
/// retry reaches the row and its attempt rather than taking a slot under the bare key.
pub fn restored(claim: &ClaimRecord) -> Vec<RestoredClaim> {
    if claim.status == ClaimStatus::RefundDue {
        return Vec::new();
    }
    let decision = |attempt: i64, active: bool| RestoredClaim {
        active,
        confirmed: active && claim.status == ClaimStatus::Confirmed,
        user: claim.user,
        key: attempt::arbiter_key(&claim.key, attempt).into_owned(),
        item: claim.item,
    };
    let active = matches!(claim.status, ClaimStatus::Held | ClaimStatus::Confirmed);
    match claim.attempt {
        ..=1 => vec![decision(1, active)],
        n => vec![decision(1, false), decision(n, active)],
    }
}

/// A hold to make durable.
#[derive(Debug, Clone)]
pub struct NewHold {
    /// The activity.
    pub activity: ActivityId,
    /// The item taken.
    pub item: i64,
    /// The claimant.
    pub user: UserId,
    /// Their idempotency key.
    pub key: String,
    /// When it lapses.
    pub expires_at: EpochMs,
    /// Now.
    pub now: EpochMs,
    /// The epoch of the counters that granted it: the row commits only while the activity's
    /// epoch in SQL is still this one (`None`: no fence).
    pub epoch: Option<i64>,
    /// Which decision of the key granted it (1, or more after reconciliation voided one).
    pub attempt: i64,
    /// Whether the activity rewards with a coupon: the hold then takes a code from the pool
    /// in the transaction that commits it.
    pub coupon: bool,
}

type Job = (NewHold, oneshot::Sender<Result<KeyRow, String>>);

/// Claim rows in SQL, with a group-commit writer for new holds.
#[derive(Clone)]
pub struct ClaimRows {
    db: Db,
    writer: mpsc::Sender<Job>,
}

impl ClaimRows {
    /// Starts `writers` group-commit tasks (on the current runtime) over `db`.
    pub fn start(db: Db, writers: usize) -> ClaimRows {
        let (tx, rx) = mpsc::channel::<Job>(MAX_BATCH * 8);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_loop(db.clone(), rx.clone()));
        }
        ClaimRows { db, writer: tx }
    }

    /// Makes `hold` (a key's first decision) durable, or finds the row its key already made,
    /// and returns the row once its transaction has committed.
    pub async fn insert(&self, hold: NewHold) -> Result<KeyRow, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send((hold, tx))
            .await
            .map_err(|_| StoreError::Conflict("claim writer stopped".into()))?;
        match rx.await {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(msg)) => Err(StoreError::Conflict(msg)),
            Err(_) => Err(StoreError::Conflict("claim writer dropped a hold".into())),
        }
    }

    /// Makes `hold`, a later decision of a key whose earlier one was voided, durable: the void
    /// row becomes the hold while it stands at an earlier attempt (in one conditional update,
    /// under the epoch fence; a coupon promotion's code is bound in the same transaction).
    /// Returns the key's row as it stands after, the hold or what came first.
    pub async fn revive(&self, hold: &NewHold) -> Result<KeyRow, StoreError> {
        let fence = match self.db.backend {
            Backend::Sqlite => {
                "SELECT 1 FROM claim_epochs c WHERE c.activity_id = $2 AND c.epoch = $8"
            }
            Backend::Postgres => {
                "SELECT 1 FROM claim_epochs c WHERE c.activity_id = $2 AND c.epoch = $8 FOR SHARE"
            }
        };
        let sql = format!(
            "UPDATE claims SET status = 'held', item_id = $4, expires_at = $5, updated_at = $6, \
             attempt = $7 WHERE user_id = $1 AND activity_id = $2 AND claim_key = $3 \
             AND status = '{VOID}' AND attempt < $7 AND ($8 IS NULL OR EXISTS ({fence})) \
             RETURNING {COLUMNS}"
        );
        let mut tx = self.db.pool.begin().await?;
        let revived = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(hold.user)
            .bind(hold.activity)
            .bind(&hold.key)
            .bind(hold.item)
            .bind(hold.expires_at)
            .bind(hold.now)
            .bind(hold.attempt)
            .bind(hold.epoch)
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(key_row)
            .transpose()?;
        let Some(mut row) = revived else {
            drop(tx);
            return match self.by_key(hold.activity, hold.user, &hold.key).await? {
                // Still void below this attempt: the epoch fence held the hold back.
                Some(row) if !(row.voided && row.claim.attempt < hold.attempt) => Ok(row),
                _ => Err(StoreError::Conflict(format!(
                    "no claim row came back for key {:?}",
                    hold.key
                ))),
            };
        };
        if hold.coupon {
            let bound = coupons::assign(
                &mut tx,
                self.db.backend,
                hold.activity,
                &[row.claim.claim_id],
            )
            .await?;
            row.claim.coupon_code = bound.into_iter().next().map(|(_, code)| code);
        }
        tx.commit().await?;
        Ok(row)
    }

    /// The row of the claim `user` made with `key` in `activity`.
    pub async fn by_key(
        &self,
        activity: ActivityId,
        user: UserId,
        key: &str,
    ) -> Result<Option<KeyRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM claims WHERE user_id = $1 AND activity_id = $2 AND claim_key = $3"
        )))
        .bind(user)
        .bind(activity)
        .bind(key)
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(key_row).transpose()
    }

    /// A claim by id.
    pub async fn by_id(&self, id: i64) -> Result<Option<ClaimRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM claims WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(record).transpose()
    }

    /// Every claim of an activity, as recovery needs them.
    pub async fn restorable(&self, activity: ActivityId) -> Result<Vec<RestoredClaim>, StoreError> {
        Ok(ClaimRepo::new(&self.db)
            .claims_of_activity(activity)
            .await?
            .iter()
            .flat_map(restored)
            .collect())
    }

    /// When the activity's outstanding holds lapse.
    pub async fn held_expiries(&self, activity: ActivityId) -> Result<Vec<EpochMs>, StoreError> {
        let rows =
            sqlx::query("SELECT expires_at FROM claims WHERE activity_id = $1 AND status = 'held'")
                .bind(activity)
                .fetch_all(&self.db.pool)
                .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(StoreError::from))
            .collect()
    }

    /// Raises the activity's claim epoch and returns the new one. It waits for every hold
    /// row committing under the old epoch (they lock the epoch row to share), and a hold
    /// still to commit under the old epoch no longer can; so the rows read after this call
    /// are every hold the old counters granted that will ever exist.
    pub async fn raise_epoch(&self, activity: ActivityId) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO claim_epochs (activity_id, epoch) VALUES ($1, 1) \
             ON CONFLICT (activity_id) DO UPDATE SET epoch = claim_epochs.epoch + 1 \
             RETURNING epoch",
        )
        .bind(activity)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Moves claim `id` from one of `from` to `to`, once: `None` when it was not in `from`
    /// (another caller, maybe on another node, changed it first) or `deadline` did not hold.
    /// For a `coupon` activity the claim's code moves in the same transaction: freed when
    /// the claim lapses, taken again when a lapsed claim is confirmed.
    pub async fn transition(
        &self,
        id: i64,
        from: &[ClaimStatus],
        to: ClaimStatus,
        now: EpochMs,
        deadline: Deadline,
        coupon: bool,
    ) -> Result<Option<ClaimRecord>, StoreError> {
        let from_list = from
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let extra = match deadline {
            Deadline::Any => "",
            Deadline::Passed => " AND expires_at <= $3",
            Deadline::NotPassed => " AND expires_at > $3",
        };
        // Statuses are fixed enum names, never client input.
        let sql = format!(
            "UPDATE claims SET status = $1, updated_at = $3 WHERE id = $2 AND status IN ({from_list}){extra} RETURNING {COLUMNS}"
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to.as_str())
            .bind(id)
            .bind(now);
        if !coupon {
            let row = query.fetch_optional(&self.db.pool).await?;
            return row.as_ref().map(record).transpose();
        }
        let mut tx = self.db.pool.begin().await?;
        let Some(mut claim) = query
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(record)
            .transpose()?
        else {
            return Ok(None);
        };
        match to {
            ClaimStatus::Held | ClaimStatus::Confirmed => {
                if claim.coupon_code.is_none() {
                    let bound =
                        coupons::assign(&mut tx, self.db.backend, claim.activity, &[id]).await?;
                    claim.coupon_code = bound.into_iter().next().map(|(_, code)| code);
                }
            }
            ClaimStatus::Expired | ClaimStatus::Cancelled | ClaimStatus::RefundDue => {
                coupons::release(&mut tx, self.db.backend, &[id]).await?;
                claim.coupon_code = None;
            }
        }
        tx.commit().await?;
        Ok(Some(claim))
    }

    /// Expires every hold of `activity` due by `now`, returning the rows this statement
    /// changed (a concurrent expirer gets the others: each hold is expired once). A `coupon`
    /// activity's codes of those holds go back to its pool in the same transaction.
    pub async fn expire_due(
        &self,
        activity: ActivityId,
        now: EpochMs,
        coupon: bool,
    ) -> Result<Vec<ClaimRecord>, StoreError> {
        let sql = format!(
            "UPDATE claims SET status = 'expired', updated_at = $2 \
             WHERE activity_id = $1 AND status = 'held' AND expires_at <= $2 RETURNING {COLUMNS}"
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(activity)
            .bind(now);
        if !coupon {
            let rows = query.fetch_all(&self.db.pool).await?;
            return rows.iter().map(record).collect();
        }
        let mut tx = self.db.pool.begin().await?;
        let mut expired = query
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(record)
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<i64> = expired.iter().map(|c| c.claim_id).collect();
        coupons::release(&mut tx, self.db.backend, &ids).await?;
        tx.commit().await?;
        for claim in &mut expired {
            claim.coupon_code = None;
        }
        Ok(expired)
    }

    /// How each claim among `wanted` (`(user, key)` pairs of `activity`) that has a row
    /// stands; the others have none.
    pub async fn standings(
        &self,
        activity: ActivityId,
        wanted: &[(UserId, &str)],
    ) -> Result<HashMap<(UserId, String), KeyStanding>, StoreError> {
        let mut found = HashMap::new();
        if wanted.is_empty() {
            return Ok(found);
        }
        let wanted: Vec<serde_json::Value> = wanted
            .iter()
            .map(|(user, key)| serde_json::json!({"u": user, "k": key}))
            .collect();
        let sql = match self.db.backend {
            Backend::Sqlite => {
                "SELECT c.user_id, c.claim_key, c.status, c.attempt FROM json_each($2) AS w \
                 JOIN claims c ON c.user_id = w.value ->> 'u' AND c.claim_key = w.value ->> 'k' \
                 WHERE c.activity_id = $1"
            }
            Backend::Postgres => {
                "SELECT c.user_id, c.claim_key, c.status, c.attempt \
                 FROM json_to_recordset($2::json) AS w(u BIGINT, k TEXT) \
                 JOIN claims c ON c.user_id = w.u AND c.claim_key = w.k WHERE c.activity_id = $1"
            }
        };
        let rows = sqlx::query(sql)
            .bind(activity)
            .bind(serde_json::Value::Array(wanted).to_string())
            .fetch_all(&self.db.pool)
            .await?;
        for row in &rows {
            let name: String = row.try_get(2)?;
            found.insert(
                (row.try_get(0)?, row.try_get(1)?),
                KeyStanding {
                    status: status(&name),
                    attempt: row.try_get(3)?,
                },
            );
        }
        Ok(found)
    }

    /// Voids decision `attempt` of `(user, key)` of `activity`: writes a void row unless a
    /// row already stands for the key, or raises a void row of an earlier attempt to this one;
    /// whether this call wrote. Once written, that decision's hold can never be committed (its
    /// upsert finds this row; its revive needs an earlier attempt), so its slot may be given
    /// back, and a retry of the key is decided afresh under the next attempt.
    pub async fn void(
        &self,
        activity: ActivityId,
        item: i64,
        user: UserId,
        key: &str,
        attempt: i64,
        now: EpochMs,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO claims (activity_id, item_id, user_id, claim_key, status, expires_at, \
             created_at, updated_at, attempt) VALUES ($1, $2, $3, $4, '{VOID}', $5, $5, $5, $6) \
             ON CONFLICT (user_id, activity_id, claim_key) DO UPDATE \
             SET attempt = excluded.attempt, updated_at = excluded.updated_at \
             WHERE claims.status = '{VOID}' AND claims.attempt < excluded.attempt RETURNING id"
        )))
        .bind(activity)
        .bind(item)
        .bind(user)
        .bind(key)
        .bind(now)
        .bind(attempt)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.is_some())
    }
}

/// A condition on a hold's expiry for [`ClaimRows::transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// No condition.
    Any,
    /// `expires_at <= now`.
    Passed,
    /// `expires_at > now`.
    NotPassed,
}

/// Upsert of a whole batch of holds in one statement (so one round trip, and in autocommit
/// one transaction): the holds come as one JSON array bound to `$1`, which keeps the SQL text
/// fixed (prepared once per connection) whatever the batch size. A repeated key returns the
/// existing row unchanged. Keys must be unique within the array (PostgreSQL refuses to upsert
/// one row twice in a statement). A fenced hold (`f`, its epoch) is written only while its
/// activity's epoch is still `f`, locking that row to share until the statement commits, so
/// a raise of the epoch waits for it (see [`ClaimRows::raise_epoch`]); a hold left out
/// returns no row.
const INSERT_HOLDS_POSTGRES: &str = "INSERT INTO claims \
     (activity_id, item_id, user_id, claim_key, status, expires_at, created_at, updated_at) \
     SELECT h.a, h.i, h.u, h.k, 'held', h.e, h.n, h.n \
     FROM json_to_recordset($1::json) \
     AS h(a BIGINT, i BIGINT, u BIGINT, k TEXT, e BIGINT, n BIGINT, f BIGINT) \
     WHERE h.f IS NULL OR EXISTS (SELECT 1 FROM claim_epochs c \
     WHERE c.activity_id = h.a AND c.epoch = h.f FOR SHARE) \
     ON CONFLICT (user_id, activity_id, claim_key) DO UPDATE SET claim_key = excluded.claim_key \
     RETURNING id, activity_id, item_id, user_id, claim_key, status, expires_at, created_at, \
     (SELECT k.code FROM coupon_codes k WHERE k.claim_id = claims.id), attempt";

/// [`INSERT_HOLDS_POSTGRES`] for SQLite, which writes one transaction at a time (so the epoch
/// it reads cannot change before the insert commits). The `WHERE` clause also resolves the
/// parse ambiguity of `INSERT ... SELECT ... ON CONFLICT`.
const INSERT_HOLDS_SQLITE: &str = "INSERT INTO claims \
     (activity_id, item_id, user_id, claim_key, status, expires_at, created_at, updated_at) \
     SELECT h.value ->> 'a', h.value ->> 'i', h.value ->> 'u', h.value ->> 'k', 'held', \
     h.value ->> 'e', h.value ->> 'n', h.value ->> 'n' FROM jsonb_each($1) AS h \
     WHERE h.value ->> 'f' IS NULL OR EXISTS (SELECT 1 FROM claim_epochs c \
     WHERE c.activity_id = h.value ->> 'a' AND c.epoch = h.value ->> 'f') \
     ON CONFLICT (user_id, activity_id, claim_key) DO UPDATE SET claim_key = excluded.claim_key \
     RETURNING id, activity_id, item_id, user_id, claim_key, status, expires_at, created_at, \
     (SELECT k.code FROM coupon_codes k WHERE k.claim_id = claims.id), attempt";

async fn write_loop(db: Db, rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        #[cfg(feature = "fault-injection")]
        if let Some(after) = late_commit::take(batch.iter().map(|(hold, _)| hold.activity)) {
            for (_, reply) in &mut batch {
                let (lost, _) = oneshot::channel();
                let reply = std::mem::replace(reply, lost);
                let _ = reply.send(Err("fault injected: the commit's answer was lost".into()));
            }
            tokio::time::sleep(after).await;
        }
        let started = std::time::Instant::now();
        let size = batch.len();
        match commit(&db, &batch).await {
            Ok(rows) => {
                for ((hold, reply), row) in batch.drain(..).zip(rows) {
                    let _ =
                        reply.send(row.ok_or_else(|| {
                            format!("no claim row came back for key {:?}", hold.key)
                        }));
                }
            }
            Err(err) => {
                tracing::warn!(%err, size, "claim batch failed");
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(err.to_string()));
                }
            }
        }
        metrics::histogram!(metric::SQL_BATCH_SIZE, "table" => "claims").record(size as f64);
        metrics::histogram!(metric::SQL_BATCH_LATENCY, "table" => "claims")
            .record(started.elapsed().as_secs_f64());
    }
}

/// Who a claim row belongs to: its `(user, activity, key)`, unique in the table.
type ClaimIdentity = (UserId, ActivityId, String);

/// Upserts the batch's holds in one statement; the row of each job, in order.
async fn commit(db: &Db, batch: &[Job]) -> Result<Vec<Option<KeyRow>>, StoreError> {
    let mut seen: HashSet<(UserId, ActivityId, &str)> = HashSet::with_capacity(batch.len());
    let holds: Vec<serde_json::Value> = batch
        .iter()
        .map(|(hold, _)| hold)
        .filter(|h| seen.insert((h.user, h.activity, h.key.as_str())))
        .map(|h| {
            serde_json::json!({
                "a": h.activity, "i": h.item, "u": h.user, "k": h.key,
                "e": h.expires_at, "n": h.now, "f": h.epoch,
            })
        })
        .collect();
    let sql = match db.backend {
        Backend::Sqlite => INSERT_HOLDS_SQLITE,
        Backend::Postgres => INSERT_HOLDS_POSTGRES,
    };
    let query = sqlx::query(sql).bind(serde_json::Value::Array(holds).to_string());
    let coupon_activities: HashSet<ActivityId> = batch
        .iter()
        .filter(|(h, _)| h.coupon)
        .map(|(h, _)| h.activity)
        .collect();
    let claims = if coupon_activities.is_empty() {
        query
            .fetch_all(&db.pool)
            .await?
            .iter()
            .map(key_row)
            .collect::<Result<Vec<_>, _>>()?
    } else {
        // The codes are bound in the transaction that commits the holds: a hold that
        // commits has its code, and one that does not took none.
        let mut tx = db.pool.begin().await?;
        let mut claims = query
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(key_row)
            .collect::<Result<Vec<_>, _>>()?;
        for activity in coupon_activities {
            let needing: Vec<i64> = claims
                .iter()
                .map(|row| &row.claim)
                .filter(|c| {
                    c.activity == activity
                        && c.coupon_code.is_none()
                        && matches!(c.status, ClaimStatus::Held | ClaimStatus::Confirmed)
                })
                .map(|c| c.claim_id)
                .collect();
            let bound: HashMap<i64, String> =
                coupons::assign(&mut tx, db.backend, activity, &needing)
                    .await?
                    .into_iter()
                    .collect();
            for row in &mut claims {
                if let Some(code) = bound.get(&row.claim.claim_id) {
                    row.claim.coupon_code = Some(code.clone());
                }
            }
        }
        tx.commit().await?;
        claims
    };
    // RETURNING order is unspecified: match rows to jobs by identity.
    let mut by_identity: HashMap<ClaimIdentity, KeyRow> = HashMap::with_capacity(claims.len());
    for row in claims {
        let c = &row.claim;
        by_identity.insert((c.user, c.activity, c.key.clone()), row);
    }
    Ok(batch
        .iter()
        .map(|(h, _)| {
            by_identity
                .get(&(h.user, h.activity, h.key.clone()))
                .cloned()
        })
        .collect())
}

/// Claim rows as the HTTP API reads them (the ledger writes through [`ClaimRows`]).
#[derive(Clone)]
pub struct ClaimRepo {
    pub(in crate::store) pool: AnyPool,
}

impl ClaimRepo {
    /// The repository on `db`'s pool.
    pub fn new(db: &Db) -> ClaimRepo {
        ClaimRepo {
            pool: db.pool.clone(),
        }
    }
}

impl ClaimRepo {
    /// Every claim of an activity, oldest first.
    pub async fn claims_of_activity(
        &self,
        activity: ActivityId,
    ) -> Result<Vec<ClaimRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM claims WHERE activity_id = $1 ORDER BY id"
        )))
        .bind(activity)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// The merchant of `activity` and its total slots; `None` when it does not exist.
    pub async fn activity_owner_and_slots(
        &self,
        activity: ActivityId,
    ) -> Result<Option<(UserId, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT a.merchant_id, (SELECT CAST(COALESCE(SUM(i.slots), 0) AS BIGINT) FROM activity_items i \
             WHERE i.activity_id = a.id) FROM activities a WHERE a.id = $1",
        )
        .bind(activity)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }
}

/// The activity catalogue over the promotions tables, for the Activity actors and the claim
/// desk.
pub struct SqlCatalog {
    db: Arc<ActivityRepo>,
}

impl SqlCatalog {
    /// A catalogue over the activities' repository.
    pub fn new(activities: Arc<ActivityRepo>) -> SqlCatalog {
        SqlCatalog { db: activities }
    }
}

fn unavailable(err: StoreError) -> CatalogError {
    CatalogError(Box::new(err))
}

#[async_trait]
impl ActivityCatalog for SqlCatalog {
    async fn activity(&self, id: ActivityId) -> Result<Option<ActivityRecord>, CatalogError> {
        self.db.activity_record(id).await.map_err(unavailable)
    }

    async fn pending_activities(&self, now: EpochMs) -> Result<Vec<ActivityId>, CatalogError> {
        self.db.pending_activity_ids(now).await.map_err(unavailable)
    }

    async fn with_outstanding_holds(&self) -> Result<Vec<ActivityId>, CatalogError> {
        let db = &self.db;
        let rows = sqlx::query("SELECT DISTINCT activity_id FROM claims WHERE status = 'held'")
            .fetch_all(&db.pool)
            .await
            .map_err(|e| unavailable(e.into()))?;
        rows.iter()
            .map(|r| r.try_get::<i64, _>(0).map_err(|e| unavailable(e.into())))
            .collect()
    }
}

//! Coupon pools (issue 16's `coupon` reward): the codes a merchant uploads for a promotion
//! before it starts, and the two statements that bind a code to a claim and free it again.
//! Both run inside the transaction that changes the claim's row (see `claims.rs`), so a code
//! is bound exactly while its claim is held or confirmed: a hold that commits has its code, a
//! hold that never commits took none, and an expired or cancelled hold's code is free for the
//! next winner. The unique index on `coupon_codes.claim_id` keeps one claim per code.

use corral_protocol::EpochMs;
use corral_protocol::ops::ActivityId;
use serde_json::json;
use sqlx::{AnyConnection, AnyPool, Row};

use super::promotions::Audit;
use super::{Backend, Db, StoreError};

/// Binds a free code of activity `$1` to each claim among `$2` (a JSON array of claim ids)
/// that is held or confirmed and has none, taking at most `$3` codes, oldest first; returns
/// `(claim_id, code)` per binding. On PostgreSQL the free codes are locked with `SKIP LOCKED`,
/// so two nodes committing holds at once take different codes without waiting on each other.
const ASSIGN_POSTGRES: &str = "UPDATE coupon_codes SET claim_id = need.id \
     FROM (SELECT c.id, row_number() OVER (ORDER BY c.id) AS n FROM claims c \
     WHERE c.id IN (SELECT value::bigint FROM json_array_elements_text($2::json)) \
     AND c.status IN ('held', 'confirmed') \
     AND NOT EXISTS (SELECT 1 FROM coupon_codes b WHERE b.claim_id = c.id)) AS need \
     JOIN (SELECT f.id, row_number() OVER (ORDER BY f.id) AS n FROM \
     (SELECT k.id FROM coupon_codes k WHERE k.activity_id = $1 AND k.claim_id IS NULL \
     ORDER BY k.id LIMIT $3 FOR UPDATE SKIP LOCKED) AS f) AS free ON free.n = need.n \
     WHERE coupon_codes.id = free.id RETURNING coupon_codes.claim_id, coupon_codes.code";

/// [`ASSIGN_POSTGRES`] for SQLite, which writes one transaction at a time (nothing to lock).
const ASSIGN_SQLITE: &str = "UPDATE coupon_codes SET claim_id = need.id \
     FROM (SELECT c.id, row_number() OVER (ORDER BY c.id) AS n FROM claims c \
     WHERE c.id IN (SELECT value FROM json_each($2)) \
     AND c.status IN ('held', 'confirmed') \
     AND NOT EXISTS (SELECT 1 FROM coupon_codes b WHERE b.claim_id = c.id)) AS need \
     JOIN (SELECT f.id, row_number() OVER (ORDER BY f.id) AS n FROM \
     (SELECT k.id FROM coupon_codes k WHERE k.activity_id = $1 AND k.claim_id IS NULL \
     ORDER BY k.id LIMIT $3) AS f) AS free ON free.n = need.n \
     WHERE coupon_codes.id = free.id RETURNING claim_id, code";

/// Binds a free code of `activity` to each of `claims` (active claims without one) inside the
/// caller's transaction: `(claim_id, code)` per binding. `Conflict` when fewer could be bound
/// (the pool ran dry): the caller rolls back, so there is never a winner without a code.
pub(super) async fn assign(
    conn: &mut AnyConnection,
    backend: Backend,
    activity: ActivityId,
    claims: &[i64],
) -> Result<Vec<(i64, String)>, StoreError> {
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    let sql = match backend {
        Backend::Sqlite => ASSIGN_SQLITE,
        Backend::Postgres => ASSIGN_POSTGRES,
    };
    let rows = sqlx::query(sql)
        .bind(activity)
        .bind(json!(claims).to_string())
        .bind(claims.len() as i64)
        .fetch_all(&mut *conn)
        .await?;
    let bound = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<(i64, String)>, StoreError>>()?;
    if bound.len() < claims.len() {
        return Err(StoreError::Conflict(format!(
            "activity {activity} has no free coupon code for {} winners",
            claims.len() - bound.len()
        )));
    }
    Ok(bound)
}

/// Frees the codes bound to `claims` (expired or cancelled in the caller's transaction).
pub(super) async fn release(
    conn: &mut AnyConnection,
    backend: Backend,
    claims: &[i64],
) -> Result<(), StoreError> {
    if claims.is_empty() {
        return Ok(());
    }
    let sql = match backend {
        Backend::Sqlite => {
            "UPDATE coupon_codes SET claim_id = NULL WHERE claim_id IN (SELECT value FROM json_each($1))"
        }
        Backend::Postgres => {
            "UPDATE coupon_codes SET claim_id = NULL \
             WHERE claim_id IN (SELECT value::bigint FROM json_array_elements_text($1::json))"
        }
    };
    sqlx::query(sql)
        .bind(json!(claims).to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// How many codes `activity` has loaded (what caps a coupon promotion's slots).
pub(crate) async fn loaded(pool: &AnyPool, activity: ActivityId) -> Result<i64, StoreError> {
    Ok(
        sqlx::query("SELECT COUNT(*) FROM coupon_codes WHERE activity_id = $1")
            .bind(activity)
            .fetch_one(pool)
            .await?
            .try_get(0)?,
    )
}

/// A promotion's coupon pool in numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = CouponPool)]
pub struct PoolCounts {
    /// Codes uploaded.
    pub loaded: i64,
    /// Codes bound to a held or confirmed claim.
    pub given: i64,
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// Codes added to the pool.
    pub added: i64,
    /// Codes of the upload the pool already had (left as they were).
    pub already_loaded: Vec<String>,
    /// The pool after the upload.
    pub pool: PoolCounts,
}

/// Coupon pools as the HTTP API reads and writes them.
#[derive(Clone)]
pub struct CouponRepo {
    pool: AnyPool,
    backend: Backend,
}

impl CouponRepo {
    /// The repository on `db`'s pool.
    pub fn new(db: &Db) -> CouponRepo {
        CouponRepo {
            pool: db.pool.clone(),
            backend: db.backend,
        }
    }

    /// The pool's counts.
    pub async fn counts(&self, activity: ActivityId) -> Result<PoolCounts, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*), COUNT(claim_id) FROM coupon_codes WHERE activity_id = $1",
        )
        .bind(activity)
        .fetch_one(&self.pool)
        .await?;
        Ok(PoolCounts {
            loaded: row.try_get(0)?,
            given: row.try_get(1)?,
        })
    }

    /// Adds `codes` (trimmed, checked and distinct) to `activity`'s pool, by `actor`, with its
    /// audit row. `Conflict` unless the activity is scheduled and has not started at `now`: the
    /// claim desk sizes the promotion's stock by the pool before the start; and `Conflict` when
    /// the pool would hold more than `most` codes (nothing is added). The activity's row is
    /// updated first, so uploads and edits of the same activity take turns.
    pub async fn upload(
        &self,
        actor: i64,
        activity: ActivityId,
        codes: &[String],
        most: i64,
        now: EpochMs,
    ) -> Result<Uploaded, StoreError> {
        let mut tx = self.pool.begin().await?;
        let open = sqlx::query(
            "UPDATE activities SET updated_at = $2 \
             WHERE id = $1 AND status = 'scheduled' AND starts_at > $2",
        )
        .bind(activity)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if open.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "coupon codes can be added only before the promotion starts".into(),
            ));
        }
        let each = match self.backend {
            Backend::Sqlite => "SELECT value AS code FROM json_each($2)",
            Backend::Postgres => "SELECT value AS code FROM json_array_elements_text($2::json)",
        };
        // `WHERE true` resolves SQLite's parse ambiguity of `INSERT ... SELECT ... ON CONFLICT`.
        let added = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO coupon_codes (activity_id, code, created_at) \
             SELECT $1, e.code, $3 FROM ({each}) AS e WHERE true \
             ON CONFLICT (activity_id, code) DO NOTHING RETURNING code"
        )))
        .bind(activity)
        .bind(json!(codes).to_string())
        .bind(now)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<std::collections::HashSet<_>, _>>()?;
        let loaded: i64 = sqlx::query("SELECT COUNT(*) FROM coupon_codes WHERE activity_id = $1")
            .bind(activity)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if loaded > most {
            return Err(StoreError::Conflict(format!(
                "a promotion holds at most {most} codes; this upload would make {loaded}"
            )));
        }
        let already_loaded: Vec<String> = codes
            .iter()
            .filter(|c| !added.contains(*c))
            .cloned()
            .collect();
        Audit {
            actor_id: actor,
            action: "activity.coupons",
            subject: format!("activity:{activity}"),
            detail: json!({"added": added.len(), "already_loaded": already_loaded.len()}),
            at: now,
        }
        .write(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(Uploaded {
            added: added.len() as i64,
            already_loaded,
            pool: self.counts(activity).await?,
        })
    }
}

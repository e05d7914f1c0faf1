//! Merchants: applications, approvals and the role change that comes with approval.

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::Audit;
use crate::store::{Db, StoreError};

/// A merchant account (keyed by its user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantRecord {
    /// The user, also the merchant id.
    pub user_id: i64,
    /// The shop or farm name.
    pub name: String,
    /// Whether an admin (or the auto-approve setting) approved it.
    pub approved: bool,
    /// When it applied.
    pub created_at: i64,
}

/// Makes an approved merchant's user a merchant (admins keep their role).
const PROMOTE: &str = "UPDATE users SET role = 'merchant' WHERE id = $1 AND role = 'user'";

/// Merchant applications and approvals.
#[derive(Clone)]
pub struct MerchantRepo {
    pub(in crate::store) pool: AnyPool,
}

impl MerchantRepo {
    /// The repository on `db`'s pool.
    pub fn new(db: &Db) -> MerchantRepo {
        MerchantRepo {
            pool: db.pool.clone(),
        }
    }
}

impl MerchantRepo {
    /// Records `user`'s application as merchant `name`; when `approved`, the user becomes a
    /// merchant at once. `Conflict` when the user already applied.
    pub async fn apply_merchant(
        &self,
        user: i64,
        name: &str,
        approved: bool,
        now: i64,
    ) -> Result<MerchantRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO merchants (user_id, name, approved, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(user)
        .bind(name)
        .bind(approved)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if approved {
            sqlx::query(PROMOTE).bind(user).execute(&mut *tx).await?;
        }
        Audit {
            actor_id: user,
            action: "merchant.apply",
            subject: format!("merchant:{user}"),
            detail: json!({"name": name, "approved": approved}),
            at: now,
        }
        .write(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(MerchantRecord {
            user_id: user,
            name: name.to_string(),
            approved,
            created_at: now,
        })
    }

    /// Approves merchant `user` (by `admin`); `NotFound` when it never applied.
    pub async fn approve_merchant(
        &self,
        admin: i64,
        user: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE merchants SET approved = TRUE WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(PROMOTE).bind(user).execute(&mut *tx).await?;
        Audit {
            actor_id: admin,
            action: "merchant.approve",
            subject: format!("merchant:{user}"),
            detail: json!({}),
            at: now,
        }
        .write(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The merchant account of `user`, if it applied.
    pub async fn merchant(&self, user: i64) -> Result<Option<MerchantRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MERCHANT_COLUMNS} FROM merchants WHERE user_id = $1"
        )))
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(merchant_of).transpose()
    }
}

/// The columns [`merchant_of`] reads (`approved` as 0 or 1, which both engines return alike).
pub(crate) const MERCHANT_COLUMNS: &str =
    "user_id, name, CASE WHEN approved THEN 1 ELSE 0 END AS approved, created_at";

/// A `merchants` row selected with [`MERCHANT_COLUMNS`].
pub(crate) fn merchant_of(row: &AnyRow) -> Result<MerchantRecord, StoreError> {
    Ok(MerchantRecord {
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        approved: row.try_get::<i64, _>("approved")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

//! The audit log: one row per merchant or admin action.

use sqlx::{Any, AnyPool, Row, Transaction};

use crate::store::{Db, StoreError};

/// An action about to be recorded.
#[derive(Debug, Clone)]
pub struct Audit<'a> {
    /// Who did it.
    pub actor_id: i64,
    /// What, e.g. `animal.create`.
    pub action: &'a str,
    /// On what, e.g. `animal:42`.
    pub subject: String,
    /// Details (a JSON object).
    pub detail: serde_json::Value,
    /// When (epoch ms).
    pub at: i64,
}

/// A recorded action (also the `AuditEntry` of the OpenAPI document).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Row id (increasing).
    pub id: i64,
    /// Who did it.
    pub actor_id: i64,
    /// What.
    #[schema(example = "activity.create")]
    pub action: String,
    /// On what.
    #[schema(example = "activity:7")]
    pub subject: String,
    /// Details.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// When (epoch ms).
    pub at: i64,
}

impl Audit<'_> {
    /// Writes the row inside `tx`.
    pub(crate) async fn write(&self, tx: &mut Transaction<'_, Any>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (actor_id, action, subject, detail, at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(self.actor_id)
        .bind(self.action)
        .bind(&self.subject)
        .bind(self.detail.to_string())
        .bind(self.at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// The audit log of merchant and admin actions.
#[derive(Clone)]
pub struct AuditRepo {
    pub(in crate::store) pool: AnyPool,
}

impl AuditRepo {
    /// The repository on `db`'s pool.
    pub fn new(db: &Db) -> AuditRepo {
        AuditRepo {
            pool: db.pool.clone(),
        }
    }
}

impl AuditRepo {
    /// Records an action that has no other row to commit with (e.g. a broadcast).
    pub async fn record_audit(&self, audit: &Audit<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        audit.write(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The newest `limit` audit rows, optionally only those about `subject`, newest first.
    pub async fn audit_log(
        &self,
        subject: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, actor_id, action, subject, detail, at FROM audit_log \
             WHERE ($1 = '' OR subject = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(subject.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let detail: String = row.try_get("detail")?;
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    actor_id: row.try_get("actor_id")?,
                    action: row.try_get("action")?,
                    subject: row.try_get("subject")?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }
}

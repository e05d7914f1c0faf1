//! Activities (promotions) and their items, read as the actors' one activity model.

use corral_actors::{ActivityItem, ActivityRecord};
use corral_protocol::EpochMs;
use corral_protocol::ops::ActivityId;
use corral_protocol::rules::ActivityRules;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use super::Audit;
use crate::store::sql::coupons;
use crate::store::{Db, StoreError};

/// The writable fields of an activity (validated by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityInput {
    /// Its title.
    pub title: String,
    /// When claims open.
    pub starts_at: EpochMs,
    /// When claims close.
    pub ends_at: EpochMs,
    /// Claims per user.
    pub per_user_limit: i64,
    /// Hold lifetime.
    pub hold_seconds: i64,
    /// `(animal_id, slots)` per item.
    pub items: Vec<(i64, i64)>,
    /// Audience, requirements and reward (checked by `ActivityRules::parse`).
    pub rules: ActivityRules,
}

impl ActivityInput {
    fn audit_detail(&self) -> serde_json::Value {
        json!({
            "title": self.title,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "items": self.items.iter().map(|(a, s)| json!({"animal_id": a, "slots": s})).collect::<Vec<_>>(),
            "rules": self.rules,
        })
    }

    /// The rules as stored: one JSON text, so a new kind of rule needs no migration.
    fn rules_text(&self) -> String {
        serde_json::to_string(&self.rules).unwrap_or_else(|_| "{}".into())
    }
}

async fn insert_items(
    tx: &mut Transaction<'_, Any>,
    activity: i64,
    items: &[(i64, i64)],
) -> Result<(), StoreError> {
    for (animal, slots) in items {
        sqlx::query(
            "INSERT INTO activity_items (activity_id, animal_id, slots) VALUES ($1, $2, $3)",
        )
        .bind(activity)
        .bind(animal)
        .bind(slots)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Activities and their items (read by `SqlCatalog`), and the merchants' edits.
#[derive(Clone)]
pub struct ActivityRepo {
    pub(in crate::store) pool: AnyPool,
}

impl ActivityRepo {
    /// The repository on `db`'s pool.
    pub fn new(db: &Db) -> ActivityRepo {
        ActivityRepo {
            pool: db.pool.clone(),
        }
    }
}

impl ActivityRepo {
    /// Creates an activity of `merchant` (by `actor`).
    pub async fn create_activity(
        &self,
        actor: i64,
        merchant: i64,
        input: &ActivityInput,
        now: i64,
    ) -> Result<ActivityId, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO activities (merchant_id, title, starts_at, ends_at, per_user_limit, \
             hold_seconds, status, created_at, updated_at, rules) \
             VALUES ($1, $2, $3, $4, $5, $6, 'scheduled', $7, $7, $8) RETURNING id",
        )
        .bind(merchant)
        .bind(&input.title)
        .bind(input.starts_at)
        .bind(input.ends_at)
        .bind(input.per_user_limit)
        .bind(input.hold_seconds)
        .bind(now)
        .bind(input.rules_text())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        insert_items(&mut tx, id, &input.items).await?;
        Audit {
            actor_id: actor,
            action: "activity.create",
            subject: format!("activity:{id}"),
            detail: input.audit_detail(),
            at: now,
        }
        .write(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Replaces an activity's fields and items (by `actor`). `Conflict` unless it is
    /// scheduled and has not started at `now`: once started, claims refer to its items.
    pub async fn update_activity(
        &self,
        actor: i64,
        id: ActivityId,
        input: &ActivityInput,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE activities SET title = $1, starts_at = $2, ends_at = $3, per_user_limit = $4, \
             hold_seconds = $5, updated_at = $6, rules = $8 \
             WHERE id = $7 AND status = 'scheduled' AND starts_at > $6",
        )
        .bind(&input.title)
        .bind(input.starts_at)
        .bind(input.ends_at)
        .bind(input.per_user_limit)
        .bind(input.hold_seconds)
        .bind(now)
        .bind(id)
        .bind(input.rules_text())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "only a scheduled activity that has not started can be edited".into(),
            ));
        }
        sqlx::query("DELETE FROM activity_items WHERE activity_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_items(&mut tx, id, &input.items).await?;
        Audit {
            actor_id: actor,
            action: "activity.update",
            subject: format!("activity:{id}"),
            detail: input.audit_detail(),
            at: now,
        }
        .write(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Cancels an activity (by `actor`). `Conflict` when it is already cancelled or over.
    pub async fn cancel_activity(
        &self,
        actor: i64,
        id: ActivityId,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE activities SET status = 'cancelled', updated_at = $1 \
             WHERE id = $2 AND status = 'scheduled' AND ends_at > $1",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "the activity is already cancelled or over".into(),
            ));
        }
        Audit {
            actor_id: actor,
            action: "activity.cancel",
            subject: format!("activity:{id}"),
            detail: json!({}),
            at: now,
        }
        .write(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An activity with its items; a coupon promotion's slots capped by its codes loaded.
    pub async fn activity_record(
        &self,
        id: ActivityId,
    ) -> Result<Option<ActivityRecord>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, merchant_id, title, starts_at, ends_at, per_user_limit, hold_seconds, \
             status, rules FROM activities WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let items = sqlx::query(
            "SELECT id, animal_id, slots FROM activity_items WHERE activity_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(item_of)
        .collect::<Result<Vec<_>, StoreError>>()?;
        let mut record = record_of(&row, items)?;
        if record.gives_coupons() {
            record.cap_slots(coupons::loaded(&self.pool, id).await?);
        }
        Ok(Some(record))
    }

    /// Ids of the activities not cancelled whose end is after `now`.
    pub async fn pending_activity_ids(&self, now: EpochMs) -> Result<Vec<ActivityId>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM activities WHERE status = 'scheduled' AND ends_at > $1 ORDER BY starts_at",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<i64, _>(0)?))
            .collect()
    }
}

/// An `activities` row (`id, merchant_id, title, starts_at, ends_at, per_user_limit,
/// hold_seconds, status, rules`) with its `items`.
pub(crate) fn record_of(
    row: &AnyRow,
    items: Vec<ActivityItem>,
) -> Result<ActivityRecord, StoreError> {
    let status: String = row.try_get("status")?;
    let rules: String = row.try_get("rules")?;
    // Written only after `ActivityRules::parse` accepted them; a row that no longer reads is
    // a decoding failure, not a promotion without rules.
    let rules: ActivityRules =
        serde_json::from_str(&rules).map_err(|e| StoreError::Sql(sqlx::Error::Decode(e.into())))?;
    Ok(ActivityRecord {
        id: row.try_get("id")?,
        merchant_id: row.try_get("merchant_id")?,
        title: row.try_get("title")?,
        starts_at: row.try_get("starts_at")?,
        ends_at: row.try_get("ends_at")?,
        per_user_limit: row.try_get("per_user_limit")?,
        hold_seconds: row.try_get("hold_seconds")?,
        cancelled: status == "cancelled",
        rules,
        items,
    })
}

/// An `activity_items` row (`id, animal_id, slots`).
pub(crate) fn item_of(row: &AnyRow) -> Result<ActivityItem, StoreError> {
    Ok(ActivityItem {
        item_id: row.try_get("id")?,
        animal_id: row.try_get("animal_id")?,
        slots: row.try_get("slots")?,
    })
}

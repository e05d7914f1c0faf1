//! Payment webhook bookkeeping: nonces seen within the freshness window, and provider events
//! recorded once with their outcome.

use sqlx::{AnyPool, Row};

use super::{Db, StoreError};

/// Payment webhooks: claim prices, replay nonces, recorded events.
#[derive(Clone)]
pub struct PaymentRepo {
    pub(in crate::store) pool: AnyPool,
}

impl PaymentRepo {
    /// The repository on `db`'s pool.
    pub fn new(db: &Db) -> PaymentRepo {
        PaymentRepo {
            pool: db.pool.clone(),
        }
    }
}

impl PaymentRepo {
    /// The price (cents) of the animal claim `id` is for; `None` when there is no such claim.
    pub async fn claim_price(&self, id: i64) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT a.price_cents FROM claims c \
             JOIN activity_items i ON i.id = c.item_id \
             JOIN animals a ON a.id = i.animal_id \
             WHERE c.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Records `nonce` as seen at `now`; false when it was seen before (a replay). Nonces older
    /// than `keep_ms` are pruned first: the freshness check refuses their calls anyway.
    pub async fn use_nonce(&self, nonce: &str, now: i64, keep_ms: i64) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM webhook_nonces WHERE seen_at < $1")
            .bind(now.saturating_sub(keep_ms))
            .execute(&self.pool)
            .await?;
        let done = sqlx::query(
            "INSERT INTO webhook_nonces (nonce, seen_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING",
        )
        .bind(nonce)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a provider event as `pending`. `None` when it is new; otherwise the claim and
    /// outcome recorded by its first delivery.
    pub async fn record_event(
        &self,
        event_id: &str,
        claim_id: i64,
        amount_cents: i64,
        now: i64,
    ) -> Result<Option<(i64, String)>, StoreError> {
        let done = sqlx::query(
            "INSERT INTO payment_events (event_id, claim_id, amount_cents, outcome, received_at) \
             VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(claim_id)
        .bind(amount_cents)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(None);
        }
        let row = sqlx::query("SELECT claim_id, outcome FROM payment_events WHERE event_id = $1")
            .bind(event_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(Some((row.try_get(0)?, row.try_get(1)?)))
    }

    /// Records what an event did.
    pub async fn settle_event(&self, event_id: &str, outcome: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE payment_events SET outcome = $1 WHERE event_id = $2")
            .bind(outcome)
            .bind(event_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

//! The Activity actor's ports: reading activities (promotions) from storage, and the stock
//! view that says how many slots are left. Both are implemented in the server's `store`.

use async_trait::async_trait;
use corral_protocol::ops::{ActivityId, ActivityState};
use corral_protocol::{EpochMs, UserId};

/// One item of an activity: an animal offered with a number of claim slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityItem {
    /// The item id (`activity_items.id`), what claims name.
    pub item_id: i64,
    /// The animal offered.
    pub animal_id: i64,
    /// How many claims it can take.
    pub slots: i64,
}

/// An activity as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRecord {
    /// Its id.
    pub id: ActivityId,
    /// The merchant running it.
    pub merchant_id: UserId,
    /// Its title.
    pub title: String,
    /// When claims open (server clock).
    pub starts_at: EpochMs,
    /// When claims close (server clock).
    pub ends_at: EpochMs,
    /// Claims one user may hold or have confirmed.
    pub per_user_limit: i64,
    /// How long a hold lasts before it expires.
    pub hold_seconds: i64,
    /// Whether it was cancelled.
    pub cancelled: bool,
    /// Its items, in id order.
    pub items: Vec<ActivityItem>,
}

impl ActivityRecord {
    /// Slots over every item.
    pub fn total_slots(&self) -> i64 {
        self.items.iter().map(|i| i.slots).sum()
    }

    /// Its state at `now` by the clock alone (a sold-out end is known only to its actor).
    pub fn state_at(&self, now: EpochMs) -> ActivityState {
        if self.cancelled {
            ActivityState::Cancelled
        } else if now >= self.ends_at {
            ActivityState::Ended
        } else if now >= self.starts_at {
            ActivityState::Live
        } else {
            ActivityState::Scheduled
        }
    }
}

/// Storage failed; the caller retries later.
#[derive(Debug, Clone, thiserror::Error)]
#[error("activity store: {0}")]
pub struct StoreFailure(pub String);

/// Reads activities.
#[async_trait]
pub trait ActivityStore: Send + Sync + 'static {
    /// The activity with its items, if it exists.
    async fn activity(&self, id: ActivityId) -> Result<Option<ActivityRecord>, StoreFailure>;

    /// Activities not cancelled whose `ends_at` is after `now`: the ones whose actors (and
    /// timers) a node starts at boot.
    async fn pending_activities(&self, now: EpochMs) -> Result<Vec<ActivityId>, StoreFailure>;
}

/// How many slots of an activity are neither held nor confirmed.
///
/// This is the seam for the claim ledger: until claims exist the store answers the total
/// slots; the claims work answers from its durable holds, and its Activity handlers keep
/// [`crate::activity::Live::stock_left`] current as claims come and go.
#[async_trait]
pub trait StockView: Send + Sync + 'static {
    /// Slots left in `activity`.
    async fn stock_left(&self, activity: &ActivityRecord) -> Result<i64, StoreFailure>;
}

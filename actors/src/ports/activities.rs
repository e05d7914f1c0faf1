//! The activity catalogue port: the one model of an activity (a promotion) and its items, and
//! the one trait that loads them. The Activity actors read it for their schedule, the claim
//! desk for its claim rules; the server implements it over the promotions tables.

use async_trait::async_trait;
use corral_protocol::ops::{ActivityId, ActivityState};
use corral_protocol::rules::{ActivityRules, Reward};
use corral_protocol::{EpochMs, UserId};

/// Item ids (`activity_items.id`): one animal offered in one activity.
pub type ItemId = i64;

/// One item of an activity: an animal offered with a number of claim slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityItem {
    /// The item id (`activity_items.id`), what claims name.
    pub item_id: ItemId,
    /// The animal offered (a confirmed claimant follows its updates).
    pub animal_id: i64,
    /// How many claims it can take.
    pub slots: i64,
}

/// An activity as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRecord {
    /// Its id.
    pub id: ActivityId,
    /// The merchant running it (the user who owns it).
    pub merchant_id: UserId,
    /// Its title.
    pub title: String,
    /// Claims are accepted from this instant (server clock)...
    pub starts_at: EpochMs,
    /// ...until this one (exclusive).
    pub ends_at: EpochMs,
    /// Active (held + confirmed) claims one user may have.
    pub per_user_limit: i64,
    /// How long a hold lasts before it expires unpaid.
    pub hold_seconds: i64,
    /// Whether it was cancelled.
    pub cancelled: bool,
    /// Who may claim, what they must have done, what they get.
    pub rules: ActivityRules,
    /// Its items, in id order.
    pub items: Vec<ActivityItem>,
}

impl ActivityRecord {
    /// Slots over every item.
    pub fn total_slots(&self) -> i64 {
        self.items.iter().map(|i| i.slots).sum()
    }

    /// Whether a winner gets a code from the promotion's coupon pool with their slot.
    pub fn gives_coupons(&self) -> bool {
        self.rules.reward == Reward::Coupon
    }

    /// Caps the items' slots, in item order, so that they add up to at most `codes`: a coupon
    /// promotion offers no more slots than it has codes, so no winner is left without one.
    /// An item left with no slot keeps its place with zero (claims name items by id).
    pub fn cap_slots(&mut self, codes: i64) {
        let mut left = codes.max(0);
        for item in &mut self.items {
            item.slots = item.slots.min(left);
            left -= item.slots;
        }
    }

    /// How long a hold lasts unpaid, in milliseconds.
    pub fn hold_ms(&self) -> EpochMs {
        self.hold_seconds.saturating_mul(1000)
    }

    /// When nothing about the activity's claims can change any more by itself: its end plus
    /// one hold time (ledger keys may be dropped after that).
    pub fn settled_at(&self) -> EpochMs {
        self.ends_at.saturating_add(self.hold_ms())
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

/// The catalogue's storage failed; the caller retries later.
#[derive(Debug, thiserror::Error)]
#[error("activity catalogue: {0}")]
pub struct CatalogError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Where activities come from.
#[async_trait]
pub trait ActivityCatalog: Send + Sync + 'static {
    /// The activity with its items, if it exists (cancelled ones included).
    async fn activity(&self, id: ActivityId) -> Result<Option<ActivityRecord>, CatalogError>;

    /// Activities not cancelled whose `ends_at` is after `now`: the ones whose actors (and
    /// timers) a node starts at boot.
    async fn pending_activities(&self, now: EpochMs) -> Result<Vec<ActivityId>, CatalogError>;

    /// Activities with holds still outstanding (their expiries must be re-armed at start).
    async fn with_outstanding_holds(&self) -> Result<Vec<ActivityId>, CatalogError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(slots: &[i64]) -> ActivityRecord {
        ActivityRecord {
            id: 1,
            merchant_id: 2,
            title: "t".into(),
            starts_at: 0,
            ends_at: 1,
            per_user_limit: 1,
            hold_seconds: 60,
            cancelled: false,
            rules: ActivityRules::default(),
            items: slots
                .iter()
                .enumerate()
                .map(|(i, &slots)| ActivityItem {
                    item_id: i as i64 + 10,
                    animal_id: i as i64 + 20,
                    slots,
                })
                .collect(),
        }
    }

    fn slots(a: &ActivityRecord) -> Vec<i64> {
        a.items.iter().map(|i| i.slots).collect()
    }

    #[test]
    fn slots_are_capped_by_the_codes_in_item_order() {
        let mut a = activity(&[3, 2, 4]);
        a.cap_slots(4);
        assert_eq!(slots(&a), vec![3, 1, 0]);
        assert_eq!(a.total_slots(), 4);

        let mut none = activity(&[3, 2]);
        none.cap_slots(0);
        assert_eq!(slots(&none), vec![0, 0]);

        let mut plenty = activity(&[3, 2]);
        plenty.cap_slots(100);
        assert_eq!(slots(&plenty), vec![3, 2]);

        let mut negative = activity(&[1]);
        negative.cap_slots(-5);
        assert_eq!(slots(&negative), vec![0]);
    }

    #[test]
    fn only_a_coupon_reward_gives_coupons() {
        let mut a = activity(&[1]);
        assert!(!a.gives_coupons());
        a.rules.reward = Reward::Coupon;
        assert!(a.gives_coupons());
    }
}

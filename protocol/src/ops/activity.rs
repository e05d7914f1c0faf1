//! Live-promotion ops: watching an activity's countdown and stock.

use serde::{Deserialize, Serialize};

use crate::EpochMs;
use crate::rules::Unmet;

/// Activity (promotion) identifiers.
pub type ActivityId = i64;

/// `activity.subscribe {activity}` / `activity.unsubscribe {activity}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityRef {
    /// The activity.
    pub activity: ActivityId,
}

/// Where an activity is in its life, by the server's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActivityState {
    /// Before `starts_at`: counting down; claims answer `not_started`.
    Scheduled,
    /// From `starts_at` (inclusive) to `ends_at` (exclusive): claims are served.
    Live,
    /// At or after `ends_at`, or sold out.
    Ended,
    /// Cancelled by its merchant or an admin.
    Cancelled,
}

/// Why an activity ended (`activity.ended`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The server clock reached `ends_at`.
    Time,
    /// Its merchant or an admin cancelled it.
    Cancelled,
    /// Every slot was taken.
    SoldOut,
}

/// Reply to `activity.subscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivitySubscribeOk {
    /// The activity.
    pub activity: ActivityId,
    /// Its state when the reply was made.
    pub state: ActivityState,
    /// When claims open (server clock).
    pub starts_at: EpochMs,
    /// When claims close (server clock).
    pub ends_at: EpochMs,
    /// Slots not held or confirmed.
    pub stock_left: i64,
    /// The server clock when the reply was made.
    pub server_time: EpochMs,
    /// Whether the subscriber may claim under the promotion's rules (always true for a
    /// promotion without rules).
    pub eligible: bool,
    /// The rules the subscriber does not meet (empty when eligible).
    pub unmet: Vec<Unmet>,
}

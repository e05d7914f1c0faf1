//! Live-promotion ops: watching an activity's countdown and stock.

use serde::{Deserialize, Serialize};

/// Activity (promotion) identifiers.
pub type ActivityId = i64;

/// `activity.subscribe {activity}` / `activity.unsubscribe {activity}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityRef {
    /// The activity.
    pub activity: ActivityId,
}

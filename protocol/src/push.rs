//! Server pushes: `{"ev": "<name>", ...}` frames the server sends unasked.

use serde::{Deserialize, Serialize};

use crate::ops::{ActivityId, ClaimStatus};

/// Every push event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev")]
#[non_exhaustive]
pub enum Push {
    /// The server is shutting down; reconnect after the given delay (jittered per client so
    /// reconnects spread out). The socket closes with 1001 shortly after.
    #[serde(rename = "server.going_away")]
    GoingAway {
        /// How long to wait before reconnecting.
        reconnect_after_ms: u64,
    },

    // --- Claims ---
    /// A claim of the receiving user changed (sent to every device of the claimant).
    #[serde(rename = "claim.updated")]
    ClaimUpdated {
        /// The claim.
        claim_id: i64,
        /// Its activity.
        activity: ActivityId,
        /// Its item.
        item: i64,
        /// The new status.
        status: ClaimStatus,
    },
    /// Free slots left in an activity (coalesced: at most ~10 per second per activity).
    #[serde(rename = "activity.stock")]
    ActivityStock {
        /// The activity.
        activity: ActivityId,
        /// Slots neither held nor confirmed.
        left: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn going_away_round_trips() {
        let push = Push::GoingAway {
            reconnect_after_ms: 1500,
        };
        let text = crate::reply::push(&push);
        assert_eq!(
            text,
            r#"{"ev":"server.going_away","reconnect_after_ms":1500}"#
        );
        assert_eq!(serde_json::from_str::<Push>(&text).ok(), Some(push));
    }
}

//! Claim ops: taking and giving back a hold on an animal.

use serde::{Deserialize, Serialize};

use crate::ops::ActivityId;

/// `claim {activity, item?, key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimParams {
    /// The activity.
    pub activity: ActivityId,
    /// A given animal (item id), or any available one when absent.
    #[serde(default)]
    pub item: Option<i64>,
    /// The client's idempotency key: the same key always yields the same result.
    pub key: String,
}

/// `claim.cancel {claim_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimCancelParams {
    /// The claim to give back.
    pub claim_id: i64,
}

//! Claim ops: taking and giving back a hold on an animal.

use serde::{Deserialize, Serialize};

use crate::EpochMs;
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

/// Where a claim stands. `held` until paid (`confirmed`), given back (`cancelled`) or timed out
/// (`expired`); `refund_due` records a payment that arrived for a lapsed hold when no slot was
/// left to re-take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    /// The slot is reserved for the claimant until `expires_at`.
    Held,
    /// Paid: the slot is the claimant's.
    Confirmed,
    /// Not paid in time; the slot went back to stock.
    Expired,
    /// Given back by the claimant; the slot went back to stock.
    Cancelled,
    /// Paid after the hold lapsed with no slot left: the merchant owes a refund.
    RefundDue,
}

impl ClaimStatus {
    /// Every status, in documentation order.
    pub const ALL: [ClaimStatus; 5] = [
        ClaimStatus::Held,
        ClaimStatus::Confirmed,
        ClaimStatus::Expired,
        ClaimStatus::Cancelled,
        ClaimStatus::RefundDue,
    ];

    /// The wire (and database) name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimStatus::Held => "held",
            ClaimStatus::Confirmed => "confirmed",
            ClaimStatus::Expired => "expired",
            ClaimStatus::Cancelled => "cancelled",
            ClaimStatus::RefundDue => "refund_due",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<ClaimStatus> {
        ClaimStatus::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Reply to `claim`: the claim the key stands for (a fresh hold, or the same claim again when
/// the key was used before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimOk {
    /// The claim.
    pub claim_id: i64,
    /// The item (animal slot) held.
    pub item: i64,
    /// `held` for a fresh hold; a repeated key reports the claim's current status.
    pub status: ClaimStatus,
    /// When an unpaid hold lapses (server clock).
    pub expires_at: EpochMs,
    /// A coupon promotion's code given with the claim while it is held or confirmed
    /// (null otherwise).
    #[serde(default)]
    pub coupon_code: Option<String>,
}

/// Reply to `claim.cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimCancelOk {
    /// Always `cancelled`.
    pub status: ClaimStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for status in ClaimStatus::ALL {
            let json = serde_json::to_string(&status).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(ClaimStatus::parse(status.as_str()), Some(status));
        }
        let params: Result<ClaimParams, _> =
            serde_json::from_str(r#"{"id":1,"op":"claim","activity":7,"key":"k1"}"#);
        assert_eq!(params.ok().and_then(|p| p.item), None);
    }
}

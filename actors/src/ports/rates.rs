//! The `SharedRates` port: per-user request budgets kept for the whole cluster, against which
//! each node settles what its connections spent (see [`crate::user_rates`]).

use async_trait::async_trait;
use corral_protocol::UserId;

/// Why a settlement failed.
#[derive(Debug, thiserror::Error)]
#[error("shared request budgets unavailable")]
pub struct SharedRatesError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The cluster's per-user token buckets.
#[async_trait]
pub trait SharedRates: Send + Sync + 'static {
    /// Debits each user's cluster bucket by what this node spent since its last settlement
    /// and answers, in the same order, the tokens each has left (negative when the user's
    /// nodes together spent more than it held).
    async fn settle(&self, spent: &[(UserId, u32)]) -> Result<Vec<f64>, SharedRatesError>;
}

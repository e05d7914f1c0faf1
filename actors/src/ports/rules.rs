//! The rules port: what a promotion's rules are checked against — one user's facts
//! ([`UserFacts`]), read in one call ([`RulesStore::facts`]) — and where each decision is
//! noted for the promotion's funnel ([`RulesStore::note`]).

use async_trait::async_trait;
use corral_protocol::ops::ActivityId;
use corral_protocol::rules::Unmet;
use corral_protocol::{EpochMs, UserId};

/// What the facts are read for: a user, a promotion and what its rules need counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactsQuery {
    /// The user.
    pub user: UserId,
    /// The promotion (its own claims never count towards its requirements).
    pub activity: ActivityId,
    /// The promotion's merchant.
    pub merchant: UserId,
    /// Count the user's posts from this instant (`None`: no rule counts posts, read none).
    pub posts_since: Option<EpochMs>,
}

/// One user's facts, as the rules of one promotion see them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserFacts {
    /// When the account was registered.
    pub registered_at: EpochMs,
    /// Whether the user follows the promotion's merchant.
    pub follows_merchant: bool,
    /// Posts (not deleted) since the query's `posts_since` (0 when it asked for none).
    pub posts_since: i64,
    /// Users who registered with this user's invite code.
    pub invited: i64,
    /// Confirmed claims of other promotions of the same merchant.
    pub confirmed_at_merchant: i64,
    /// Confirmed claims of other promotions of any merchant.
    pub confirmed_anywhere: i64,
}

/// What was decided for a user, noted for the funnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudienceNote {
    /// The promotion.
    pub activity: ActivityId,
    /// The user.
    pub user: UserId,
    /// Whether the user subscribed (watching the countdown), not only claimed.
    pub subscribed: bool,
    /// The rules the user does not meet (empty: eligible).
    pub unmet: Vec<Unmet>,
    /// When it was decided.
    pub at: EpochMs,
}

/// The rules store failed; the caller answers `unavailable` and the client retries.
#[derive(Debug, thiserror::Error)]
#[error("rules store: {0}")]
pub struct RulesError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Where facts come from and decisions go.
#[async_trait]
pub trait RulesStore: Send + Sync + 'static {
    /// The user's facts for one promotion (`None`: no such user).
    async fn facts(&self, query: FactsQuery) -> Result<Option<UserFacts>, RulesError>;

    /// Records the latest decision for a user of a promotion (the funnel reads them).
    async fn note(&self, note: AudienceNote) -> Result<(), RulesError>;
}

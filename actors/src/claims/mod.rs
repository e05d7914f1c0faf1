//! Animal claims: the [`ClaimLedger`] and [`ActivityCatalog`] ports, the pure decision
//! ([`book`]) and the node's claim desk ([`Claims`]) that sessions and the payment webhook go
//! through.
//!
//! A claim is decided atomically by the ledger (in-process book or Redis Lua script), made
//! durable (a row committed in SQL) and only then answered; every later change of a claim is a
//! conditional update of its row, so it happens once even when several nodes race.

pub mod book;
pub mod service;

use async_trait::async_trait;
use corral_protocol::ops::{ActivityId, ClaimStatus};
use corral_protocol::{EpochMs, ErrorBody, ErrorCode, UserId};

pub use book::{Decision, RestoredClaim, StockBook};
pub use service::Claims;

/// Item ids (`activity_items.id`): one animal offered in one activity.
pub type ItemId = i64;

/// One item of an activity and its slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemSpec {
    /// The item.
    pub item_id: ItemId,
    /// The animal it offers (a confirmed claimant follows its updates).
    pub animal_id: i64,
    /// How many claimants it can have.
    pub slots: i64,
}

/// What the claim rules need to know about an activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivitySpec {
    /// The activity.
    pub id: ActivityId,
    /// Its merchant (the user who owns it).
    pub merchant_id: UserId,
    /// Claims are accepted from this instant (server clock)...
    pub starts_at: EpochMs,
    /// ...until this one (exclusive).
    pub ends_at: EpochMs,
    /// Active (held + confirmed) claims one user may have.
    pub per_user_limit: i64,
    /// How long a hold lasts unpaid.
    pub hold_ms: EpochMs,
    /// Its items.
    pub items: Vec<ItemSpec>,
}

impl ActivitySpec {
    /// Every slot of every item.
    pub fn slots(&self) -> i64 {
        self.items.iter().map(|i| i.slots).sum()
    }

    /// When nothing about the activity's claims can change any more by itself: its end plus
    /// one hold time (ledger keys may be dropped after that).
    pub fn settled_at(&self) -> EpochMs {
        self.ends_at.saturating_add(self.hold_ms)
    }
}

/// Why a claim got no hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No slot left (of the item asked for, or of any item).
    SoldOut,
    /// The user already has `per_user_limit` active claims.
    LimitReached,
    /// The item is not part of the activity.
    NoSuchItem,
}

impl From<Refusal> for ErrorBody {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::SoldOut => ErrorBody::new(ErrorCode::SoldOut, "no slot left"),
            Refusal::LimitReached => ErrorBody::new(
                ErrorCode::LimitReached,
                "you already have as many claims as this promotion allows",
            ),
            Refusal::NoSuchItem => {
                ErrorBody::new(ErrorCode::NotFound, "no such item in this promotion")
            }
        }
    }
}

impl Refusal {
    /// A short stable name (ledger encodings, metrics labels).
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::SoldOut => "sold_out",
            Refusal::LimitReached => "limit_reached",
            Refusal::NoSuchItem => "no_such_item",
        }
    }

    /// Parses [`Refusal::as_str`].
    pub fn parse(s: &str) -> Option<Refusal> {
        [Refusal::SoldOut, Refusal::LimitReached, Refusal::NoSuchItem]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// An activity's stock as the ledger sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StockView {
    /// Slots neither held nor confirmed.
    pub left: i64,
    /// Slots held (not yet paid).
    pub held: i64,
}

/// A claim as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRecord {
    /// Its id.
    pub claim_id: i64,
    /// Its activity.
    pub activity: ActivityId,
    /// Its item.
    pub item: ItemId,
    /// The claimant.
    pub user: UserId,
    /// The claimant's idempotency key.
    pub key: String,
    /// Where it stands.
    pub status: ClaimStatus,
    /// When the hold lapses (or lapsed).
    pub expires_at: EpochMs,
    /// When it was made.
    pub created_at: EpochMs,
}

/// The answer to a hold request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldOutcome {
    /// The key's claim: a fresh hold (`fresh`), or the one the key took before.
    Held {
        /// The claim.
        claim: ClaimRecord,
        /// Whether this request took the slot.
        fresh: bool,
    },
    /// No hold.
    Refused(Refusal),
}

/// What a payment did to its claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// The claim became confirmed now (from held, or by re-taking a free slot after lapsing).
    Confirmed(ClaimRecord),
    /// The hold had lapsed and no slot was free: recorded as `refund_due`.
    RefundDue(ClaimRecord),
    /// Already confirmed or refund_due: nothing changed.
    Unchanged(ClaimRecord),
}

/// A ledger failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    /// The storage behind the ledger failed; nothing was decided (or it was compensated).
    #[error("claim ledger unavailable: {0}")]
    Unavailable(String),
}

/// Decides and records claims: atomically per activity, idempotent on `(user, key)`, durable
/// before it answers. Every method takes the activity's spec, which the caller loaded once.
#[async_trait]
pub trait ClaimLedger: Send + Sync + 'static {
    /// Takes a slot of `item` (or of any item) for `user`, answering only once the hold row
    /// is committed; the same key yields the same claim.
    async fn hold(
        &self,
        spec: &ActivitySpec,
        user: UserId,
        item: Option<ItemId>,
        key: &str,
        now: EpochMs,
    ) -> Result<HoldOutcome, LedgerError>;

    /// Gives a held claim back. `None` when it is no longer held (someone else changed it).
    async fn cancel(
        &self,
        spec: &ActivitySpec,
        claim: &ClaimRecord,
        now: EpochMs,
    ) -> Result<Option<ClaimRecord>, LedgerError>;

    /// Applies a payment to a claim (see [`PaymentOutcome`]).
    async fn confirm(
        &self,
        spec: &ActivitySpec,
        claim: &ClaimRecord,
        now: EpochMs,
    ) -> Result<PaymentOutcome, LedgerError>;

    /// Expires every hold of the activity due by `now`, returning those this call expired
    /// (each hold is expired by exactly one caller, on any node).
    async fn expire(
        &self,
        spec: &ActivitySpec,
        now: EpochMs,
    ) -> Result<Vec<ClaimRecord>, LedgerError>;

    /// Rebuilds the activity's counters from the durable rows (reconciling shared counters
    /// with them) and returns the expiry times of its outstanding holds.
    async fn recover(&self, spec: &ActivitySpec) -> Result<Vec<EpochMs>, LedgerError>;

    /// The activity's current stock.
    async fn stock(&self, spec: &ActivitySpec) -> Result<StockView, LedgerError>;

    /// A claim by id.
    async fn claim(&self, claim_id: i64) -> Result<Option<ClaimRecord>, LedgerError>;
}

/// Where activity definitions come from.
#[async_trait]
pub trait ActivityCatalog: Send + Sync + 'static {
    /// The claimable activity `id`; `None` when it does not exist or was cancelled.
    async fn spec(&self, id: ActivityId) -> Result<Option<ActivitySpec>, LedgerError>;

    /// Activities with holds still outstanding (their expiries must be re-armed at start).
    async fn with_outstanding_holds(&self) -> Result<Vec<ActivityId>, LedgerError>;

    /// Whether `id` exists and was cancelled (a claim on it is told it is over).
    async fn cancelled(&self, id: ActivityId) -> Result<bool, LedgerError>;
}

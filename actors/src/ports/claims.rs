//! The claim ledger port: decides and records claims atomically per activity, idempotent on
//! `(user, key)`, durable before it answers (in-process book or Redis script in front of SQL
//! rows, both in the server's store), and the claim and stock types it answers with.

use async_trait::async_trait;
use corral_protocol::ops::{ActivityId, ClaimStatus};
use corral_protocol::{EpochMs, ErrorBody, ErrorCode, UserId};

use super::activities::{ActivityRecord, CatalogError, ItemId};

/// Why a claim got no hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimRefusal {
    /// No slot left (of the item asked for, or of any item).
    SoldOut,
    /// The user already has `per_user_limit` active claims.
    LimitReached,
    /// The item is not part of the activity.
    NoSuchItem,
}

impl From<ClaimRefusal> for ErrorBody {
    fn from(refusal: ClaimRefusal) -> Self {
        match refusal {
            ClaimRefusal::SoldOut => ErrorBody::new(ErrorCode::SoldOut, "no slot left"),
            ClaimRefusal::LimitReached => ErrorBody::new(
                ErrorCode::LimitReached,
                "you already have as many claims as this promotion allows",
            ),
            ClaimRefusal::NoSuchItem => {
                ErrorBody::new(ErrorCode::NotFound, "no such item in this promotion")
            }
        }
    }
}

impl ClaimRefusal {
    /// A short stable name (ledger encodings, metrics labels).
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimRefusal::SoldOut => "sold_out",
            ClaimRefusal::LimitReached => "limit_reached",
            ClaimRefusal::NoSuchItem => "no_such_item",
        }
    }

    /// Parses [`ClaimRefusal::as_str`].
    pub fn parse(s: &str) -> Option<ClaimRefusal> {
        [
            ClaimRefusal::SoldOut,
            ClaimRefusal::LimitReached,
            ClaimRefusal::NoSuchItem,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// An activity's stock as the ledger sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StockLevel {
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
    /// The code given with it, for a coupon promotion while it is held or confirmed.
    pub coupon_code: Option<String>,
    /// Which decision of its key this is: 1, unless reconciliation voided an earlier one
    /// whose row never came (the arbiter knows a claim by its key and this number).
    pub attempt: i64,
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
    Refused(ClaimRefusal),
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
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The storage behind the ledger failed; nothing was decided (or it was compensated).
    #[error("claim ledger unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The desk loads activities from the catalogue on the ledger's behalf: a catalogue failure
/// is a ledger that cannot decide.
impl From<CatalogError> for LedgerError {
    fn from(err: CatalogError) -> Self {
        LedgerError::Unavailable(Box::new(err))
    }
}

/// Decides and records claims: atomically per activity, idempotent on `(user, key)`, durable
/// before it answers. Every method takes the activity (its claim rules and items), which the
/// caller loaded once from the [`ActivityCatalog`](super::ActivityCatalog).
#[async_trait]
pub trait ClaimLedger: Send + Sync + 'static {
    /// Takes a slot of `item` (or of any item) for `user`, answering only once the hold row
    /// is committed; the same key yields the same claim.
    async fn hold(
        &self,
        spec: &ActivityRecord,
        user: UserId,
        item: Option<ItemId>,
        key: &str,
        now: EpochMs,
    ) -> Result<HoldOutcome, LedgerError>;

    /// Gives a held claim back. `None` when it is no longer held (someone else changed it).
    async fn cancel(
        &self,
        spec: &ActivityRecord,
        claim: &ClaimRecord,
        now: EpochMs,
    ) -> Result<Option<ClaimRecord>, LedgerError>;

    /// Applies a payment to a claim (see [`PaymentOutcome`]).
    async fn confirm(
        &self,
        spec: &ActivityRecord,
        claim: &ClaimRecord,
        now: EpochMs,
    ) -> Result<PaymentOutcome, LedgerError>;

    /// Expires every hold of the activity due by `now`, returning those this call expired
    /// (each hold is expired by exactly one caller, on any node).
    async fn expire(
        &self,
        spec: &ActivityRecord,
        now: EpochMs,
    ) -> Result<Vec<ClaimRecord>, LedgerError>;

    /// Rebuilds the activity's counters from the durable rows (reconciling shared counters
    /// with them) and returns the expiry times of its outstanding holds.
    async fn recover(&self, spec: &ActivityRecord) -> Result<Vec<EpochMs>, LedgerError>;

    /// The activity's current stock.
    async fn stock(&self, spec: &ActivityRecord) -> Result<StockLevel, LedgerError>;

    /// A claim by id.
    async fn claim(&self, claim_id: i64) -> Result<Option<ClaimRecord>, LedgerError>;
}

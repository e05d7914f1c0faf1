//! The [`ClaimLedger`] adapters: a [`SlotArbiter`] decides atomically who gets a slot (the
//! in-process `BookArbiter` on one node, the Redis Lua script across a cluster) and
//! [`DurableLedger`] pairs it with the SQL claim rows, so that a hold is answered only after
//! its row is committed. A slot taken for a write that then failed is given back by
//! reconciliation in a cluster (the write may still commit), by the ledger itself on one node.

use std::sync::Arc;

use async_trait::async_trait;
use corral_actors::claims::{Decision, RestoredClaim};
use corral_actors::ports::activities::{ActivityRecord, ItemId};
use corral_actors::ports::claims::{
    ClaimLedger, ClaimRecord, HoldOutcome, LedgerError, PaymentOutcome, StockLevel,
};
use corral_protocol::ops::{ActivityId, ClaimStatus};
use corral_protocol::{EpochMs, UserId};
use dashmap::DashMap;

use super::attempt::arbiter_key;
use super::sql::claims::{ClaimRows, Deadline, KeyRow, NewHold};

/// Most decisions of one key a single request makes: each further one follows a void of the
/// one before, which takes reconciliation two passes, so more means the database is too slow
/// to commit any hold, and the request is answered `unavailable` rather than looping.
const MAX_ATTEMPTS_PER_REQUEST: i64 = 3;

/// A decision and the epoch of the counters that took it (see [`SlotArbiter::fenced`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruled {
    /// What the arbiter decided.
    pub decision: Decision,
    /// The counters' epoch (`None` for an arbiter that cannot lose its state while the node
    /// lives).
    pub epoch: Option<i64>,
}

/// Atomic slot decisions for one activity at a time (the rules of [`StockBook`]).
#[async_trait]
pub trait SlotArbiter: Send + Sync + 'static {
    /// Whether the arbiter's state can be lost while this node runs (Redis restarted empty):
    /// then its counters are built under an epoch raised in SQL before each rebuild, and a
    /// hold row commits only under the epoch SQL still holds, so a slot granted by counters
    /// that were lost cannot be granted twice.
    fn fenced(&self) -> bool;
    /// Decides a claim; `None` when the arbiter has no state for the activity (never built,
    /// or lost): the caller rebuilds it and asks again.
    async fn decide(
        &self,
        spec: &ActivityRecord,
        user: UserId,
        key: &str,
        item: Option<ItemId>,
    ) -> Result<Option<Ruled>, LedgerError>;
    /// A hold lapsed or was cancelled (its row changed): the slot returns.
    async fn release(
        &self,
        spec: &ActivityRecord,
        user: UserId,
        key: &str,
    ) -> Result<(), LedgerError>;
    /// A held slot was paid.
    async fn confirm(
        &self,
        spec: &ActivityRecord,
        user: UserId,
        key: &str,
    ) -> Result<(), LedgerError>;
    /// A lapsed hold was paid: take a slot of `item` again if one is free.
    async fn retake(
        &self,
        spec: &ActivityRecord,
        user: UserId,
        key: &str,
        item: ItemId,
    ) -> Result<bool, LedgerError>;
    /// Whether the arbiter holds counters for the activity under its current rules.
    async fn ready(&self, spec: &ActivityRecord) -> Result<bool, LedgerError>;
    /// Builds the activity's counters from durable rows under `epoch`, unless counters under
    /// the same rules and an epoch at least as new are already there (in Redis, kept current
    /// by every node: they may be ahead of the rows by holds being committed right now, so
    /// they win).
    async fn restore(
        &self,
        spec: &ActivityRecord,
        rows: &[RestoredClaim],
        epoch: Option<i64>,
    ) -> Result<(), LedgerError>;
    /// Current stock; `None` when the arbiter has no counters for the activity.
    async fn stock(&self, spec: &ActivityRecord) -> Result<Option<StockLevel>, LedgerError>;
}

/// A [`ClaimLedger`]: decisions by `A`, durable rows in SQL.
pub struct DurableLedger<A> {
    arbiter: A,
    rows: ClaimRows,
    /// One rebuild at a time per activity on this node: a crowd meeting missing counters
    /// raises the epoch once, not once per claim (each raise fails the holds in flight).
    rebuilding: DashMap<ActivityId, Arc<tokio::sync::Mutex<()>>>,
}

impl<A: SlotArbiter> DurableLedger<A> {
    /// A ledger deciding with `arbiter` and recording in `rows`.
    pub fn new(arbiter: A, rows: ClaimRows) -> DurableLedger<A> {
        DurableLedger {
            arbiter,
            rows,
            rebuilding: DashMap::new(),
        }
    }

    /// Decides, rebuilding the arbiter's state first if it has none.
    async fn decide(
        &self,
        spec: &ActivityRecord,
        user: UserId,
        key: &str,
        item: Option<ItemId>,
    ) -> Result<Ruled, LedgerError> {
        // A failed call may still have taken a slot (e.g. a timeout after Redis ran the
        // script): it stays held without a row until reconciliation voids the key and gives
        // the slot back. Undoing here could instead free the slot of a retry of the same key
        // whose row is being committed right now.
        if let Some(ruled) = self.arbiter.decide(spec, user, key, item).await? {
            return Ok(ruled);
        }
        self.rebuild(spec).await?;
        self.arbiter
            .decide(spec, user, key, item)
            .await?
            .ok_or_else(|| LedgerError::Unavailable("claim arbiter lost its state".into()))
    }

    /// Builds the arbiter's counters from the committed rows unless they stand. A fenced
    /// arbiter first raises the activity's epoch in SQL: a hold decided by counters that were
    /// lost either committed before the raise (and is in the rows read after it) or can no
    /// longer commit, so no slot is handed out twice.
    async fn rebuild(&self, spec: &ActivityRecord) -> Result<(), LedgerError> {
        let lock = self.rebuilding.entry(spec.id).or_default().clone();
        let _one_at_a_time = lock.lock().await;
        if self.arbiter.ready(spec).await? {
            return Ok(());
        }
        let epoch = match self.arbiter.fenced() {
            true => Some(self.rows.raise_epoch(spec.id).await?),
            false => None,
        };
        let rows = self.rows.restorable(spec.id).await?;
        self.arbiter.restore(spec, &rows, epoch).await
    }

    /// A lapsed hold was paid: re-take its slot, or record that a refund is due.
    async fn repay(
        &self,
        spec: &ActivityRecord,
        claim: &ClaimRecord,
        now: EpochMs,
    ) -> Result<PaymentOutcome, LedgerError> {
        let lapsed = [ClaimStatus::Expired, ClaimStatus::Cancelled];
        if self
            .arbiter
            .retake(spec, claim.user, &decision(claim), claim.item)
            .await?
        {
            let row = self
                .rows
                .transition(
                    claim.claim_id,
                    &lapsed,
                    ClaimStatus::Confirmed,
                    now,
                    Deadline::Any,
                    spec.gives_coupons(),
                )
                .await;
            return match row {
                Ok(Some(row)) => Ok(PaymentOutcome::Confirmed(row)),
                other => {
                    // Someone else moved the claim first, or the write failed: give the
                    // slot back and report what the row says now.
                    self.arbiter
                        .release(spec, claim.user, &decision(claim))
                        .await?;
                    other?;
                    self.settled(claim.claim_id).await
                }
            };
        }
        match self
            .rows
            .transition(
                claim.claim_id,
                &lapsed,
                ClaimStatus::RefundDue,
                now,
                Deadline::Any,
                spec.gives_coupons(),
            )
            .await?
        {
            Some(row) => Ok(PaymentOutcome::RefundDue(row)),
            None => self.settled(claim.claim_id).await,
        }
    }

    async fn settled(&self, id: i64) -> Result<PaymentOutcome, LedgerError> {
        self.rows
            .by_id(id)
            .await?
            .map(PaymentOutcome::Unchanged)
            .ok_or_else(|| LedgerError::Unavailable("claim vanished".into()))
    }
}

#[async_trait]
impl<A: SlotArbiter> ClaimLedger for DurableLedger<A> {
    async fn hold(
        &self,
        spec: &ActivityRecord,
        user: UserId,
        item: Option<ItemId>,
        key: &str,
        now: EpochMs,
    ) -> Result<HoldOutcome, LedgerError> {
        let mut attempt = 1;
        for _ in 0..MAX_ATTEMPTS_PER_REQUEST {
            let named = arbiter_key(key, attempt);
            let ruled = self.decide(spec, user, &named, item).await?;
            let (taken, fresh) = match ruled.decision {
                Decision::Refused(refusal) => return Ok(HoldOutcome::Refused(refusal)),
                Decision::Take(item) => (item, true),
                Decision::Seen(item) => (item, false),
            };
            let hold = NewHold {
                activity: spec.id,
                item: taken,
                user,
                key: key.to_string(),
                expires_at: now.saturating_add(spec.hold_ms()),
                now,
                epoch: ruled.epoch,
                attempt,
                coupon: spec.gives_coupons(),
            };
            let stored = match attempt {
                1 => self.rows.insert(hold).await,
                _ => self.rows.revive(&hold).await,
            };
            match stored {
                // Reconciliation voided this decision (its row came too late) or a later
                // one: no hold stands for the key, so it is decided afresh.
                Ok(KeyRow {
                    claim,
                    voided: true,
                }) if claim.attempt >= attempt => {
                    attempt = claim.attempt + 1;
                }
                Ok(KeyRow { claim, .. }) => {
                    let fresh =
                        fresh && claim.attempt == attempt && claim.status == ClaimStatus::Held;
                    return Ok(HoldOutcome::Held { claim, fresh });
                }
                Err(err) => {
                    // A concurrent retry of the same key may have written the row, and so may
                    // this write itself: one cut mid-commit fails here after the row committed,
                    // and one that timed out behind a hung database may still commit after the
                    // rows read empty. So the cluster's arbiter never gives the slot back here:
                    // reconciliation keeps it for a row or voids the key without one (its void
                    // writes only while no row stands). Undoing here handed a committed hold's
                    // slot to another client once the database was back: two held rows for one
                    // slot. The node's own arbiter has no reconciler: it voids the decision
                    // itself (a void row for the key, written only while no row stands, which a
                    // late commit of this write then finds instead of landing) and gives the
                    // slot back only if the void was written; rows that merely read empty are
                    // not enough, as the write may commit after the read. The slot is released,
                    // not forgotten: the key's retry then sees this decision, finds its void row
                    // and is decided afresh under the next attempt, taking no second slot.
                    match self.rows.by_key(spec.id, user, key).await {
                        Ok(Some(KeyRow {
                            claim,
                            voided: false,
                        })) => return Ok(HoldOutcome::Held { claim, fresh }),
                        Ok(_) if fresh && !self.arbiter.fenced() => {
                            let voided = self.rows.void(spec.id, taken, user, key, attempt, now);
                            if matches!(voided.await, Ok(true)) {
                                self.arbiter.release(spec, user, &named).await?;
                            }
                        }
                        Ok(_) | Err(_) => {}
                    }
                    return Err(err.into());
                }
            }
        }
        Err(LedgerError::Unavailable(
            "the claim's row could not be committed in time".into(),
        ))
    }

    async fn cancel(
        &self,
        spec: &ActivityRecord,
        claim: &ClaimRecord,
        now: EpochMs,
    ) -> Result<Option<ClaimRecord>, LedgerError> {
        let row = self
            .rows
            .transition(
                claim.claim_id,
                &[ClaimStatus::Held],
                ClaimStatus::Cancelled,
                now,
                Deadline::Any,
                spec.gives_coupons(),
            )
            .await?;
        if let Some(row) = &row {
            self.arbiter.release(spec, row.user, &decision(row)).await?;
        }
        Ok(row)
    }

    async fn confirm(
        &self,
        spec: &ActivityRecord,
        claim: &ClaimRecord,
        now: EpochMs,
    ) -> Result<PaymentOutcome, LedgerError> {
        let current = self
            .rows
            .by_id(claim.claim_id)
            .await?
            .unwrap_or_else(|| claim.clone());
        match current.status {
            ClaimStatus::Confirmed | ClaimStatus::RefundDue => {
                Ok(PaymentOutcome::Unchanged(current))
            }
            ClaimStatus::Expired | ClaimStatus::Cancelled => self.repay(spec, &current, now).await,
            ClaimStatus::Held => {
                let paid = self
                    .rows
                    .transition(
                        current.claim_id,
                        &[ClaimStatus::Held],
                        ClaimStatus::Confirmed,
                        now,
                        Deadline::NotPassed,
                        spec.gives_coupons(),
                    )
                    .await?;
                if let Some(row) = paid {
                    self.arbiter
                        .confirm(spec, row.user, &decision(&row))
                        .await?;
                    return Ok(PaymentOutcome::Confirmed(row));
                }
                // Lapsed but not swept yet: expire it here (once), then treat it as lapsed.
                if self
                    .rows
                    .transition(
                        current.claim_id,
                        &[ClaimStatus::Held],
                        ClaimStatus::Expired,
                        now,
                        Deadline::Passed,
                        spec.gives_coupons(),
                    )
                    .await?
                    .is_some()
                {
                    self.arbiter
                        .release(spec, current.user, &decision(&current))
                        .await?;
                }
                let now_row = self.rows.by_id(current.claim_id).await?.unwrap_or(current);
                match now_row.status {
                    ClaimStatus::Expired | ClaimStatus::Cancelled => {
                        self.repay(spec, &now_row, now).await
                    }
                    _ => Ok(PaymentOutcome::Unchanged(now_row)),
                }
            }
        }
    }

    async fn expire(
        &self,
        spec: &ActivityRecord,
        now: EpochMs,
    ) -> Result<Vec<ClaimRecord>, LedgerError> {
        let expired = self
            .rows
            .expire_due(spec.id, now, spec.gives_coupons())
            .await?;
        for claim in &expired {
            // The rows are expired whatever the arbiter says, and no later sweep returns them:
            // failing here (Redis unreachable) would lose the holders' `claim.updated`. The
            // slot stays taken in Redis until reconciliation, which releases the slot of an
            // expired row, brings it back.
            if let Err(err) = self
                .arbiter
                .release(spec, claim.user, &decision(claim))
                .await
            {
                tracing::warn!(%err, claim = claim.claim_id, "an expired hold's slot is left to reconciliation");
            }
        }
        Ok(expired)
    }

    async fn recover(&self, spec: &ActivityRecord) -> Result<Vec<EpochMs>, LedgerError> {
        self.rebuild(spec).await?;
        Ok(self.rows.held_expiries(spec.id).await?)
    }

    async fn stock(&self, spec: &ActivityRecord) -> Result<StockLevel, LedgerError> {
        if let Some(stock) = self.arbiter.stock(spec).await? {
            return Ok(stock);
        }
        // No counters (Redis lost them): an empty store must not read as sold out.
        self.rebuild(spec).await?;
        self.arbiter
            .stock(spec)
            .await?
            .ok_or_else(|| LedgerError::Unavailable("claim arbiter lost its state".into()))
    }

    async fn claim(&self, claim_id: i64) -> Result<Option<ClaimRecord>, LedgerError> {
        Ok(self.rows.by_id(claim_id).await?)
    }
}

/// The arbiter's name for the decision that made `claim`.
fn decision(claim: &ClaimRecord) -> std::borrow::Cow<'_, str> {
    arbiter_key(&claim.key, claim.attempt)
}

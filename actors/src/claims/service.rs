//! The node's claim desk: one [`Desk`] per activity in use (the activity, loaded once; its
//! expiry deadlines), and the flows that sessions and the payment webhook run through it:
//! hold, cancel, pay, expire. Every change of a claim is pushed as `claim.updated` to each
//! device of its claimant.
//!
//! Stock flows one way, out of the desk: each activity's stock is published on a watch
//! channel ([`Claims::stock`]) at most every [`STOCK_EVERY_MS`], and the activity's actor
//! subscribes to it. The channel belongs to the activity, not to one desk, so a subscription
//! survives the desk's reload when the activity is edited.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytestring::ByteString;
use corral_protocol::ops::{ActivityId, ClaimCancelOk, ClaimOk, ClaimParams, ClaimStatus};
use corral_protocol::rules::{Unmet, not_eligible_message};
use corral_protocol::{EpochMs, ErrorBody, ErrorCode, Push, UserId, reply};
use dashmap::DashMap;
use tokio::sync::{Notify, OnceCell, watch};

use super::eligibility::{self, Eligibility, Reason};
use crate::clock::now_ms;
use crate::metric_catalogue as metric;
use crate::ports::SocialStore;
use crate::ports::activities::{ActivityCatalog, ActivityRecord};
use crate::ports::claims::{
    ClaimLedger, ClaimRecord, HoldOutcome, LedgerError, PaymentOutcome, StockLevel,
};
use crate::ports::cluster::ClusterEvent;
use crate::ports::rules::{AudienceNote, RulesError, RulesStore};
use crate::users::UserSessions;

/// Stock frames per activity are at most this often.
pub const STOCK_EVERY_MS: EpochMs = 100;
/// Every activity in use also sweeps for due holds this often, catching holds taken by other
/// nodes (or before a restart) that no local timer knows about.
pub const SWEEP_EVERY_MS: EpochMs = 1000;

// A claim request that gets no claim is answered with the protocol's `ErrorBody`; a ledger
// failure becomes `unavailable` (the client retries with its key), its cause logged here.
impl From<LedgerError> for ErrorBody {
    fn from(err: LedgerError) -> Self {
        tracing::warn!(%err, "claim ledger failure");
        metrics::counter!(metric::CLAIM_LEDGER_ERRORS).increment(1);
        ErrorBody::new(
            ErrorCode::Unavailable,
            "claims are unavailable, retry shortly",
        )
    }
}

// Facts that cannot be read decide nothing: the client is told `unavailable` and retries.
impl From<RulesError> for ErrorBody {
    fn from(err: RulesError) -> Self {
        tracing::warn!(%err, "reading facts for a promotion's rules failed");
        ErrorBody::new(
            ErrorCode::Unavailable,
            "eligibility could not be checked, retry shortly",
        )
    }
}

/// `not_found` for a claim or activity that does not exist (or is not the caller's).
fn no_such(what: &str) -> ErrorBody {
    ErrorBody::new(ErrorCode::NotFound, format!("no such {what}"))
}

/// One activity's claim state on this node.
pub struct Desk {
    spec: ActivityRecord,
    /// The activity's stock stream (shared with the desks that replace this one).
    stock: watch::Sender<StockLevel>,
    /// Expiry times of holds this node knows about (earliest first).
    deadlines: Mutex<BinaryHeap<Reverse<EpochMs>>>,
    /// The stock may have moved since it was last published.
    dirty: AtomicBool,
    /// It moved through this node (the other nodes are told when it is published).
    moved_here: AtomicBool,
    /// A change is pending (not only a backstop re-read): the level is published even when
    /// it reads the same, as every change always was.
    announce: AtomicBool,
    /// The spec was replaced (the activity was edited): the sweeper stops.
    retired: AtomicBool,
    wake: Notify,
    /// Its users' facts and what its rules decided for them (on this node).
    eligibility: Eligibility,
}

impl Desk {
    fn next_deadline(&self) -> Option<EpochMs> {
        self.deadlines
            .lock()
            .ok()
            .and_then(|h| h.peek().map(|r| r.0))
    }

    fn arm(&self, at: EpochMs) {
        let earliest = match self.deadlines.lock() {
            Ok(mut heap) => {
                heap.push(Reverse(at));
                heap.peek().map(|r| r.0) == Some(at)
            }
            Err(_) => true,
        };
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Drops deadlines that have passed; whether any did.
    fn take_due(&self, now: EpochMs) -> bool {
        let Ok(mut heap) = self.deadlines.lock() else {
            return true;
        };
        let mut any = false;
        while heap.peek().is_some_and(|r| r.0 <= now) {
            heap.pop();
            any = true;
        }
        any
    }

    /// A claim of this node changed the stock.
    fn touched(&self) {
        self.moved_here.store(true, Ordering::Release);
        self.mark_dirty();
    }

    fn mark_dirty(&self) {
        self.announce.store(true, Ordering::Release);
        self.recheck();
    }

    /// Re-reads the stock at the next turn, publishing it only if it moved.
    fn recheck(&self) {
        if !self.dirty.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

enum Load {
    Missing,
    Ledger(LedgerError),
}

/// The node's claim desk.
pub struct Claims {
    ledger: Arc<dyn ClaimLedger>,
    catalog: Arc<dyn ActivityCatalog>,
    users: Arc<UserSessions>,
    /// Confirmed claimants follow their animal's updates through it.
    social: Arc<dyn SocialStore>,
    /// Users' facts for the rules, and the funnel's notes.
    rules: Arc<dyn RulesStore>,
    /// Facts read so far by this node (each one store call, one SQL statement).
    facts_read: AtomicU64,
    desks: DashMap<ActivityId, Arc<OnceCell<Arc<Desk>>>>,
    /// Each activity's stock stream, created by its first desk and kept across reloads.
    streams: DashMap<ActivityId, watch::Sender<StockLevel>>,
    /// A claim or cancel not settled by then answers `unavailable`.
    timeout: Duration,
}

impl Claims {
    /// A desk over `ledger` and `catalog`, pushing to `users`; confirmed claimants follow
    /// their animal through `social`; rules are judged on facts from `rules`. A claim or
    /// cancel unsettled after `timeout` answers `unavailable`.
    pub fn new(
        ledger: Arc<dyn ClaimLedger>,
        catalog: Arc<dyn ActivityCatalog>,
        users: Arc<UserSessions>,
        social: Arc<dyn SocialStore>,
        rules: Arc<dyn RulesStore>,
        timeout: Duration,
    ) -> Arc<Claims> {
        Arc::new(Claims {
            ledger,
            catalog,
            users,
            social,
            rules,
            facts_read: AtomicU64::new(0),
            desks: DashMap::new(),
            streams: DashMap::new(),
            timeout,
        })
    }

    /// Runs `work` as a task of its own and waits for it within the desk's deadline: past it,
    /// the client is told `unavailable` and retries with its key. The work is not cancelled
    /// (a hold half made, or counters half rebuilt, would have to start over on every retry,
    /// and a slow rebuild would never finish): the retry finds what it did.
    async fn within<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, ErrorBody>> + Send + 'static,
    ) -> Result<T, ErrorBody> {
        match tokio::time::timeout(self.timeout, tokio::spawn(work)).await {
            Ok(Ok(result)) => result,
            Ok(Err(panicked)) => {
                tracing::error!(%panicked, "a claim task failed");
                Err(ErrorBody::new(ErrorCode::Internal, "the claim failed"))
            }
            Err(_) => {
                metrics::counter!(metric::CLAIM_TIMEOUTS).increment(1);
                Err(ErrorBody::new(
                    ErrorCode::Unavailable,
                    "claims did not answer in time; retry with the same key",
                ))
            }
        }
    }

    /// Every desk re-reads its stock and tells its watchers if it moved: the node's link to
    /// the other nodes was down, and their stock changes may not have reached it.
    pub fn refresh(&self) {
        for cell in self.desks.iter() {
            if let Some(desk) = cell.get() {
                desk.mark_dirty();
            }
        }
    }

    /// Slots of `activity` came back outside this node's claims (reconciliation returned
    /// them): its watchers here and on every other node are told the new stock.
    pub fn returned(self: &Arc<Self>, activity: ActivityId) {
        let me = self.clone();
        tokio::spawn(async move {
            match me.desk(activity).await {
                Ok(Some(desk)) => desk.touched(),
                Ok(None) => {}
                Err(err) => tracing::warn!(%err, activity, "announcing returned slots failed"),
            }
        });
    }

    /// The desk of `activity`, loading it (spec, ledger recovery, expiry sweeper) on first
    /// use. `None` when there is no such claimable activity.
    pub async fn desk(
        self: &Arc<Self>,
        activity: ActivityId,
    ) -> Result<Option<Arc<Desk>>, LedgerError> {
        let cell = self.desks.entry(activity).or_default().clone();
        let loaded = cell
            .get_or_try_init(|| async {
                // A cancelled activity takes no claims: it has no desk.
                let spec = match self.catalog.activity(activity).await {
                    Ok(Some(spec)) if !spec.cancelled => spec,
                    Ok(_) => return Err(Load::Missing),
                    Err(err) => return Err(Load::Ledger(err.into())),
                };
                let deadlines = self.ledger.recover(&spec).await.map_err(Load::Ledger)?;
                let stock = self.ledger.stock(&spec).await.map_err(Load::Ledger)?;
                let stream = self
                    .streams
                    .entry(activity)
                    .or_insert_with(|| watch::channel(stock).0)
                    .clone();
                // A reloaded desk tells the subscribers what it read, if it moved.
                stream.send_if_modified(|level| std::mem::replace(level, stock) != stock);
                let desk = Arc::new(Desk {
                    spec,
                    stock: stream,
                    deadlines: Mutex::new(deadlines.into_iter().map(Reverse).collect()),
                    dirty: AtomicBool::new(false),
                    moved_here: AtomicBool::new(false),
                    announce: AtomicBool::new(false),
                    retired: AtomicBool::new(false),
                    wake: Notify::new(),
                    eligibility: Eligibility::default(),
                });
                tokio::spawn(self.clone().sweep(desk.clone()));
                Ok(desk)
            })
            .await;
        match loaded {
            Ok(desk) => Ok(Some(desk.clone())),
            Err(Load::Missing) => {
                self.desks.remove_if(&activity, |_, c| !c.initialized());
                Ok(None)
            }
            Err(Load::Ledger(err)) => Err(err),
        }
    }

    /// Loads the desks of activities with outstanding holds, so their expiries fire after a
    /// restart even if nobody touches them.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, LedgerError> {
        let ids = self.catalog.with_outstanding_holds().await?;
        for id in &ids {
            self.desk(*id).await?;
        }
        Ok(ids.len())
    }

    /// Subscribes to the stock of `activity`: its current level, then its changes
    /// (coalesced to one every [`STOCK_EVERY_MS`]), across reloads of its desk. `None` when
    /// there is no such claimable activity (missing or cancelled).
    pub async fn stock(
        self: &Arc<Self>,
        activity: ActivityId,
    ) -> Result<Option<watch::Receiver<StockLevel>>, LedgerError> {
        Ok(self.desk(activity).await?.map(|d| d.stock.subscribe()))
    }

    /// The ledger's stock of `activity` now (fresher than the stream's last coalesced
    /// level), for a subscriber that starts watching. `None` when there is no such claimable
    /// activity.
    pub async fn level(
        self: &Arc<Self>,
        activity: ActivityId,
    ) -> Result<Option<StockLevel>, LedgerError> {
        match self.desk(activity).await? {
            Some(desk) => Ok(Some(self.ledger.stock(&desk.spec).await?)),
            None => Ok(None),
        }
    }

    /// The loaded desk of `activity` re-reads its stock and publishes it if it moved: a
    /// backstop for changes whose announcement never reached this node.
    pub fn reread(&self, activity: ActivityId) {
        if let Some(cell) = self.desks.get(&activity)
            && let Some(desk) = cell.get()
        {
            desk.recheck();
        }
    }

    /// Forgets the cached spec of `activity` (it was edited or cancelled); the next use
    /// reloads it, re-arming its holds' expiries from the ledger.
    pub fn invalidate(&self, activity: ActivityId) {
        if let Some((_, cell)) = self.desks.remove(&activity)
            && let Some(desk) = cell.get()
        {
            desk.retire();
        }
    }

    /// The stock of `activity` moved on another node: this node re-reads it and tells its
    /// own watchers, coalesced like its own changes.
    pub async fn moved_elsewhere(self: &Arc<Self>, activity: ActivityId) {
        match self.desk(activity).await {
            Ok(Some(desk)) => desk.mark_dirty(),
            Ok(None) => {}
            Err(err) => tracing::warn!(%err, activity, "stock re-read after a remote claim failed"),
        }
    }

    /// `claim {activity, item?, key}` by `user`.
    pub async fn hold(
        self: Arc<Self>,
        user: UserId,
        params: ClaimParams,
    ) -> Result<ClaimOk, ErrorBody> {
        // NUL is refused: PostgreSQL text cannot hold it, and the arbiter names a key's later
        // decisions with it.
        if params.key.is_empty() || params.key.len() > 128 || params.key.contains('\0') {
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                "key must be 1 to 128 bytes, without NUL",
            ));
        }
        self.within(self.clone().decide(user, params)).await
    }

    async fn decide(
        self: Arc<Self>,
        user: UserId,
        params: ClaimParams,
    ) -> Result<ClaimOk, ErrorBody> {
        let Some(desk) = self.desk(params.activity).await? else {
            let cancelled = self
                .catalog
                .activity(params.activity)
                .await
                .map_err(LedgerError::from)?
                .is_some_and(|a| a.cancelled);
            return Err(match cancelled {
                true => ErrorBody::new(ErrorCode::Ended, "the promotion was cancelled"),
                false => no_such("activity"),
            });
        };
        let spec = &desk.spec;
        // The server clock alone decides the window.
        let now = now_ms();
        if now < spec.starts_at {
            return Err(ErrorBody::new(
                ErrorCode::NotStarted,
                "the promotion has not started",
            ));
        }
        if now >= spec.ends_at {
            return Err(ErrorBody::new(ErrorCode::Ended, "the promotion is over"));
        }
        let unmet = self.unmet(&desk, user, Reason::Claim).await?;
        if !unmet.is_empty() {
            metrics::counter!(metric::CLAIMS, "outcome" => "not_eligible").increment(1);
            return Err(ErrorBody::new(
                ErrorCode::NotEligible,
                not_eligible_message(&unmet),
            ));
        }
        let outcome = self
            .ledger
            .hold(spec, user, params.item, &params.key, now)
            .await?;
        match outcome {
            HoldOutcome::Held { claim, fresh } => {
                metrics::counter!(metric::CLAIMS, "outcome" => if fresh { "held" } else { "repeat" }).increment(1);
                if fresh {
                    desk.arm(claim.expires_at);
                    desk.touched();
                    self.push(&claim);
                }
                Ok(ClaimOk {
                    claim_id: claim.claim_id,
                    item: claim.item,
                    status: claim.status,
                    expires_at: claim.expires_at,
                    coupon_code: claim.coupon_code,
                })
            }
            HoldOutcome::Refused(refusal) => {
                metrics::counter!(metric::CLAIMS, "outcome" => refusal.as_str()).increment(1);
                Err(refusal.into())
            }
        }
    }

    /// The rules of `desk`'s activity `user` does not meet (empty when eligible), from the
    /// facts cached on the desk, read on first use. A first read for a claim is noted for
    /// the funnel (a subscribe notes its own).
    async fn unmet(
        &self,
        desk: &Desk,
        user: UserId,
        reason: Reason,
    ) -> Result<Vec<Unmet>, ErrorBody> {
        if desk.spec.rules.is_open() {
            return Ok(Vec::new());
        }
        let (decided, read) = desk
            .eligibility
            .get_or_decide(&*self.rules, &desk.spec, user, reason)
            .await?;
        if read {
            self.facts_read.fetch_add(1, Ordering::Relaxed);
            if reason == Reason::Claim {
                self.note(desk, user, false, &decided.unmet);
            }
        }
        Ok(decided.unmet.clone())
    }

    fn note(&self, desk: &Desk, user: UserId, subscribed: bool, unmet: &[Unmet]) {
        eligibility::note(
            self.rules.clone(),
            AudienceNote {
                activity: desk.spec.id,
                user,
                subscribed,
                unmet: unmet.to_vec(),
                at: now_ms(),
            },
        );
    }

    /// `user` subscribes to `activity`: the rules they do not meet (empty when eligible, and
    /// for an activity that takes no claims), read now so that their claims at the start
    /// instant are judged from memory. The subscription is noted for the funnel.
    pub async fn eligibility(
        self: &Arc<Self>,
        activity: ActivityId,
        user: UserId,
    ) -> Result<Vec<Unmet>, ErrorBody> {
        let Some(desk) = self.desk(activity).await? else {
            return Ok(Vec::new());
        };
        let unmet = self.unmet(&desk, user, Reason::Subscribe).await?;
        self.note(&desk, user, true, &unmet);
        Ok(unmet)
    }

    /// Something `user`'s eligibility depends on changed (they followed or unfollowed,
    /// posted, an invitee registered, a payment confirmed a claim): this node and every other
    /// re-read the user's facts where they are cached.
    pub fn facts_changed(self: &Arc<Self>, user: UserId) {
        self.refresh_facts(user);
        self.users
            .bus()
            .publish(ClusterEvent::FactsChanged { user });
    }

    /// This node's part of [`Claims::facts_changed`]: every activity not over that holds
    /// `user`'s facts forgets them at once (a claim from now on reads them afresh), then
    /// re-reads them and, when the answer changed, pushes `activity.eligibility` to the
    /// user's sessions on this node.
    pub fn refresh_facts(self: &Arc<Self>, user: UserId) {
        let now = now_ms();
        let stale: Vec<_> = self
            .desks
            .iter()
            .filter_map(|cell| cell.get().cloned())
            .filter(|desk| now < desk.spec.ends_at)
            .filter_map(|desk| {
                let old = desk.eligibility.forget(user)?;
                Some((desk, old))
            })
            .collect();
        if stale.is_empty() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            for (desk, old) in stale {
                let spec = &desk.spec;
                me.facts_read.fetch_add(1, Ordering::Relaxed);
                match eligibility::decide(&*me.rules, spec, user, Reason::Refresh).await {
                    Ok(decided) => {
                        let unmet = decided.unmet.clone();
                        desk.eligibility.set(user, decided);
                        // A read in flight when the fact changed may have answered from the
                        // old facts: the user is told the new answer whatever it was.
                        if old.is_none_or(|old| old.unmet != unmet) {
                            me.note(&desk, user, false, &unmet);
                            metrics::counter!(metric::ELIGIBILITY_PUSHES).increment(1);
                            let frame = ByteString::from(reply::push(&Push::ActivityEligibility {
                                activity: spec.id,
                                eligible: unmet.is_empty(),
                                unmet,
                            }));
                            me.users.deliver(user, &frame);
                        }
                    }
                    // Left forgotten: the next use reads the facts again.
                    Err(err) => {
                        tracing::warn!(%err, user, activity = spec.id, "re-reading facts failed")
                    }
                }
            }
        });
    }

    /// How many times this node has read a user's facts for a promotion's rules (one SQL
    /// statement each; also `corral_rule_fact_loads_total`, which is per process).
    pub fn facts_read(&self) -> u64 {
        self.facts_read.load(Ordering::Relaxed)
    }

    /// `claim.cancel {claim_id}` by `user`.
    pub async fn cancel(
        self: Arc<Self>,
        user: UserId,
        claim_id: i64,
    ) -> Result<ClaimCancelOk, ErrorBody> {
        self.within(self.clone().give_back(user, claim_id)).await
    }

    async fn give_back(
        self: Arc<Self>,
        user: UserId,
        claim_id: i64,
    ) -> Result<ClaimCancelOk, ErrorBody> {
        let claim = self
            .ledger
            .claim(claim_id)
            .await?
            .filter(|c| c.user == user)
            .ok_or_else(|| no_such("claim"))?;
        let desk = self
            .desk(claim.activity)
            .await?
            .ok_or_else(|| no_such("activity"))?;
        let done = ClaimCancelOk {
            status: ClaimStatus::Cancelled,
        };
        match claim.status {
            ClaimStatus::Cancelled => return Ok(done),
            ClaimStatus::Held => {}
            other => return Err(not_held(other)),
        }
        match self.ledger.cancel(&desk.spec, &claim, now_ms()).await? {
            Some(cancelled) => {
                desk.touched();
                self.push(&cancelled);
                Ok(done)
            }
            // Changed under us (expired, paid): report what it is now.
            None => match self.ledger.claim(claim_id).await? {
                Some(c) if c.status == ClaimStatus::Cancelled => Ok(done),
                Some(c) => Err(not_held(c.status)),
                None => Err(no_such("claim")),
            },
        }
    }

    /// A payment for `claim_id` (see [`PaymentOutcome`]); `not_found` for an unknown claim.
    pub async fn pay(self: Arc<Self>, claim_id: i64) -> Result<PaymentOutcome, ErrorBody> {
        let claim = self
            .ledger
            .claim(claim_id)
            .await?
            .ok_or_else(|| no_such("claim"))?;
        let desk = self
            .desk(claim.activity)
            .await?
            .ok_or_else(|| no_such("activity"))?;
        let outcome = self.ledger.confirm(&desk.spec, &claim, now_ms()).await?;
        match &outcome {
            PaymentOutcome::Confirmed(c) | PaymentOutcome::RefundDue(c) => {
                metrics::counter!(metric::CLAIM_PAYMENTS, "outcome" => c.status.as_str())
                    .increment(1);
                desk.touched();
                self.push(c);
                if c.status == ClaimStatus::Confirmed {
                    self.follow_adopted_animal(&desk.spec, c).await;
                    // `confirmed_claims` requirements of other promotions count it.
                    self.facts_changed(c.user);
                }
            }
            PaymentOutcome::Unchanged(_) => {}
        }
        Ok(outcome)
    }

    /// A confirmed claimant follows updates about the animal they adopted. A failure here is
    /// logged, not returned: the payment itself is recorded and must be acknowledged.
    async fn follow_adopted_animal(&self, spec: &ActivityRecord, claim: &ClaimRecord) {
        let Some(item) = spec.items.iter().find(|i| i.item_id == claim.item) else {
            return;
        };
        if let Err(err) = self
            .social
            .follow_animal(claim.user, item.animal_id, now_ms())
            .await
        {
            tracing::warn!(%err, user = claim.user, animal = item.animal_id, "following the adopted animal failed");
        }
    }

    /// Tells every device of the claimant, on every node, about the claim's new status, ahead
    /// of the fan-out already queued for them (the claimant is waiting for this news).
    fn push(&self, claim: &ClaimRecord) {
        let frame = ByteString::from(reply::push(&Push::ClaimUpdated {
            claim_id: claim.claim_id,
            activity: claim.activity,
            item: claim.item,
            status: claim.status,
            coupon_code: claim.coupon_code.clone(),
        }));
        self.users.push_own(claim.user, &frame);
    }

    /// The desk's background loop: expires due holds (exactly once, by conditional update)
    /// and publishes the coalesced stock, until the activity is settled.
    async fn sweep(self: Arc<Self>, desk: Arc<Desk>) {
        let spec = &desk.spec;
        let mut last_sweep: EpochMs = 0;
        let mut last_stock: EpochMs = 0;
        loop {
            let now = now_ms();
            let local_due = desk.take_due(now);
            if local_due || now - last_sweep >= SWEEP_EVERY_MS {
                last_sweep = now;
                match self.ledger.expire(spec, now).await {
                    Ok(expired) => {
                        for claim in &expired {
                            metrics::counter!(metric::CLAIMS_EXPIRED).increment(1);
                            self.push(claim);
                        }
                        if !expired.is_empty() {
                            desk.touched();
                        }
                    }
                    Err(err) => tracing::warn!(%err, activity = spec.id, "expiry sweep failed"),
                }
            }
            if desk.dirty.load(Ordering::Acquire) && now - last_stock >= STOCK_EVERY_MS {
                desk.dirty.store(false, Ordering::Release);
                last_stock = now;
                let moved_here = desk.moved_here.swap(false, Ordering::AcqRel);
                let announce = desk.announce.swap(false, Ordering::AcqRel);
                match self.ledger.stock(spec).await {
                    Ok(stock) => {
                        if moved_here {
                            self.users
                                .bus()
                                .publish(ClusterEvent::StockMoved { activity: spec.id });
                        }
                        if announce {
                            desk.stock.send_replace(stock);
                        } else {
                            desk.stock
                                .send_if_modified(|level| std::mem::replace(level, stock) != stock);
                        }
                    }
                    Err(err) => {
                        desk.dirty.store(true, Ordering::Release);
                        desk.moved_here.fetch_or(moved_here, Ordering::AcqRel);
                        desk.announce.fetch_or(announce, Ordering::AcqRel);
                        tracing::warn!(%err, activity = spec.id, "stock read failed");
                    }
                }
            }
            let now = now_ms();
            if desk.retired.load(Ordering::Acquire) {
                break;
            }
            if now > spec.settled_at() + SWEEP_EVERY_MS
                && desk.next_deadline().is_none()
                && !desk.dirty.load(Ordering::Acquire)
            {
                break;
            }
            let mut until = last_sweep + SWEEP_EVERY_MS;
            if let Some(at) = desk.next_deadline() {
                until = until.min(at);
            }
            if desk.dirty.load(Ordering::Acquire) {
                until = until.min(last_stock + STOCK_EVERY_MS);
            }
            let wait = Duration::from_millis(until.saturating_sub(now).max(1) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = desk.wake.notified() => {}
            }
        }
    }
}

fn not_held(status: ClaimStatus) -> ErrorBody {
    match status {
        ClaimStatus::Expired => ErrorBody::new(ErrorCode::HoldExpired, "the hold has expired"),
        other => ErrorBody::new(
            ErrorCode::Conflict,
            format!("the claim is {}", other.as_str()),
        ),
    }
}

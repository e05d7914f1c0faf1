//! The Activity actor: one per scheduled or live promotion, under an `actix::Supervisor`,
//! and what the actors of a node share ([`Shared`]: the registry, the subscriber sets, the
//! catalogue, the claim desk), the errors and the snapshot they answer with. The node's
//! directory of them is [`Activities`].
//!
//! It owns the activity's schedule: it arms a timer for the next event — the next countdown
//! tick (see [`schedule`]), the exact `starts_at` instant, or `ends_at` — and pushes
//! `activity.countdown`, `activity.started` and `activity.ended` to the activity's
//! [`ActivitySubscribers`]. `activity.started` is pushed when the server clock reads
//! `starts_at` or later, never before: a timer that fires early (the monotonic and wall clocks
//! can disagree by a millisecond) is simply re-armed.
//!
//! State: [`Live`] is reloaded from the [`ActivityCatalog`] whenever the actor (re)starts, so
//! a restart rebuilds the timers from the database; it is also re-read every [`REFRESH`] in
//! the background, so a change made through another node of a cluster reaches this one. What
//! must survive a restart is kept outside it: the subscriber set (owned by the node's
//! [`Activities`] directory) and whether `started` was announced. A panic in a handler or a
//! timer is caught (by the crate's one supervision helper), the actor stops, and the
//! supervisor restarts it (`restarting`, then `started` reloads).
//!
//! Stock comes one way, from the claim desk: each load subscribes to the activity's stock
//! stream ([`Claims::stock`]) and the actor handles its changes in [`claims`].
//!
//! [`Activities`]: crate::activities::Activities

pub mod claims;
pub mod schedule;
pub mod subscribers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;
use corral_protocol::ops::{ActivityId, ActivityState, ActivitySubscribeOk, EndReason};
use corral_protocol::rules::Unmet;
use corral_protocol::{EpochMs, ErrorBody, ErrorCode, Push, reply};
use dashmap::DashMap;
use tokio::sync::watch;

use crate::claims::Claims;
use crate::clock::now_ms;
use crate::metric_catalogue as metric;
use crate::ports::activities::{ActivityCatalog, ActivityRecord, CatalogError};
use crate::ports::claims::{LedgerError, StockLevel};
use crate::registry::Registry;
use crate::replier::OnceReply;
use crate::supervision::{Guarded, guarded};
use subscribers::{ActivitySubscribers, Subscriber};

/// After a failed load the actor stops this long later; the supervisor then reloads it.
const RETRY_LOAD: Duration = Duration::from_secs(1);

/// How often a running actor re-reads its activity, so an edit or a cancel made through
/// another node of a cluster reaches it (the node that made the change tells its own actor
/// at once).
pub const REFRESH: Duration = Duration::from_secs(10);

/// What an activity dropped unanswered by its actor (gone, or panicked mid-way) tells the
/// client.
pub(crate) const ACTIVITY_RESTARTING: &str = "the activity is restarting; subscribe again";

/// Why an activity request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivityError {
    /// No such activity.
    #[error("no such activity")]
    NotFound,
    /// It is over (ended or cancelled).
    #[error("the activity is {0:?}")]
    Over(ActivityState),
    /// Its actor is (re)loading or storage failed; retry.
    #[error("the activity is unavailable; retry")]
    Unavailable,
}

impl From<ActivityError> for ErrorBody {
    fn from(err: ActivityError) -> Self {
        let code = match err {
            ActivityError::NotFound => ErrorCode::NotFound,
            ActivityError::Over(_) => ErrorCode::Ended,
            ActivityError::Unavailable => ErrorCode::Unavailable,
        };
        ErrorBody::new(code, err.to_string())
    }
}

impl From<CatalogError> for ActivityError {
    fn from(err: CatalogError) -> Self {
        tracing::warn!(%err, "activity catalogue");
        ActivityError::Unavailable
    }
}

impl From<LedgerError> for ActivityError {
    fn from(err: LedgerError) -> Self {
        tracing::warn!(%err, "activity stock");
        ActivityError::Unavailable
    }
}

/// An activity's current view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivitySnapshot {
    /// As stored.
    pub record: ActivityRecord,
    /// Its state at `server_time`.
    pub state: ActivityState,
    /// Slots neither held nor confirmed.
    pub stock_left: i64,
    /// When the view was taken.
    pub server_time: EpochMs,
}

/// What the Activity actors of a node share.
pub(crate) struct Shared {
    pub(crate) registry: Registry<ActivityId, Activity>,
    /// Subscriber sets by activity, owned here so they outlive actor restarts.
    pub(crate) directory: DashMap<ActivityId, Arc<ActivitySubscribers>>,
    pub(crate) catalog: Arc<dyn ActivityCatalog>,
    /// The claim desk, whose stock streams the actors subscribe to.
    pub(crate) claims: Arc<Claims>,
    /// `activity.stock` frames one activity may queue per second on this node.
    pub(crate) stock_frames_per_sec: usize,
}

impl Shared {
    /// Forgets a finished activity's actor and subscriber set.
    pub(crate) fn forget(&self, id: ActivityId, subscribers: &Arc<ActivitySubscribers>) {
        self.registry.remove(&id);
        self.directory
            .remove_if(&id, |_, set| Arc::ptr_eq(set, subscribers));
        metrics::gauge!(metric::ACTIVITY_ACTORS).set(self.registry.len() as f64);
    }

    /// The slots left of `activity` now, from the claim desk's ledger; 0 when it takes no
    /// claims (cancelled).
    pub(crate) async fn stock_left(&self, activity: ActivityId) -> Result<i64, LedgerError> {
        let level = self.claims.level(activity).await?;
        Ok(level.map_or(0, |level| level.left))
    }
}

/// A subscription to the desk's stock: the ledger's level when it was taken, and the
/// stream of the levels the desk publishes from then on.
type StockFeed = (StockLevel, watch::Receiver<StockLevel>);

/// A load's outcome: the record and the subscription to its stock (`None`: it takes no
/// claims), or `None` when the activity no longer exists.
type Loaded = Result<Option<(ActivityRecord, Option<StockFeed>)>, LoadError>;

/// Why a load failed (the actor retries).
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Stock(#[from] LedgerError),
}

/// The restartable state, reloaded from the catalogue.
pub struct Live {
    /// The activity as stored.
    pub record: ActivityRecord,
    /// Slots neither held nor confirmed (from the claim desk's stock stream).
    pub stock_left: i64,
    /// Set once the actor pushed `activity.ended`.
    pub ended: Option<EndReason>,
}

/// One activity's actor.
pub struct Activity {
    id: ActivityId,
    shared: Arc<Shared>,
    subscribers: Arc<ActivitySubscribers>,
    /// `None` while loading, after a failed load, or after a crash.
    live: Option<Live>,
    timer: Option<SpawnHandle>,
    /// Whether `activity.started` went out (kept across restarts so it is pushed once).
    started_announced: bool,
    /// The last countdown tick sent (kept across restarts; reset when the schedule changes).
    last_tick: Option<i64>,
    /// Stock frames: when the last went out, and the newest count not yet sent.
    stock_pushed_at: Option<std::time::Instant>,
    stock_unsent: Option<i64>,
    stock_timer: Option<SpawnHandle>,
    /// The subscription to the desk's stock stream (replaced by every load).
    stock_stream: Option<SpawnHandle>,
    /// The newest stock level the actor has handled (kept across restarts): a (re)load that
    /// reads another level handles it as a change (sends the count, ends a sold-out
    /// activity), since the change that brought it may have arrived while the actor was
    /// reloading or restarting, and the new subscription has folded it in.
    stock_known: Option<StockLevel>,
}

impl Activity {
    pub(crate) fn new(
        id: ActivityId,
        shared: Arc<Shared>,
        subscribers: Arc<ActivitySubscribers>,
    ) -> Self {
        Activity {
            id,
            shared,
            subscribers,
            live: None,
            timer: None,
            started_announced: false,
            last_tick: None,
            stock_pushed_at: None,
            stock_unsent: None,
            stock_timer: None,
            stock_stream: None,
            stock_known: None,
        }
    }

    /// The activity's state now: by the server clock, unless it ended early (sold out).
    pub fn state(&self, now: EpochMs) -> Option<ActivityState> {
        let live = self.live.as_ref()?;
        Some(match (live.record.state_at(now), live.ended) {
            (ActivityState::Cancelled, _) => ActivityState::Cancelled,
            (_, Some(EndReason::Cancelled)) => ActivityState::Cancelled,
            (_, Some(_)) => ActivityState::Ended,
            (state, None) => state,
        })
    }

    /// The loaded state, mutably.
    pub fn live_mut(&mut self) -> Option<&mut Live> {
        self.live.as_mut()
    }

    /// Queues a pre-encoded frame to every subscriber; returns how many took it.
    pub fn push_frame(&self, frame: &ByteString) -> usize {
        self.subscribers.send(frame)
    }

    fn push(&self, push: &Push) {
        self.push_frame(&ByteString::from(reply::push(push)));
    }

    /// Reads the activity from the catalogue and subscribes to its stock; with `reread`,
    /// also asks the desk to re-read the stock (a backstop for changes whose announcement
    /// never reached this node: they come back on the stream).
    fn fetch(&self, reread: bool) -> impl Future<Output = Loaded> + 'static {
        let catalog = self.shared.catalog.clone();
        let claims = self.shared.claims.clone();
        let id = self.id;
        async move {
            let Some(record) = catalog.activity(id).await? else {
                return Ok(None);
            };
            // Subscribe first, then read: a change in between is in the level read.
            let stock = match claims.stock(id).await? {
                Some(changes) => claims.level(id).await?.map(|level| (level, changes)),
                None => None,
            };
            if reread {
                claims.reread(id);
            }
            Ok(Some((record, stock)))
        }
    }

    /// (Re)loads the state before anything else is handled: at start, after a restart, and
    /// when told the stored activity changed.
    fn load(&mut self, ctx: &mut Context<Self>) {
        // `wait` holds the mailbox: no message is handled before the state is back.
        ctx.wait(self.fetch(false).into_actor(self).map(|res, act, ctx| {
            guarded(act, ctx, |act, ctx| act.loaded(res, ctx));
        }));
    }

    /// Re-reads the activity in the background (timers keep running meanwhile), so a change
    /// made through another node reaches this one within [`REFRESH`]; also forgets the
    /// subscribers that disconnected since.
    fn refresh(&mut self, ctx: &mut Context<Self>) {
        self.subscribers.prune();
        ctx.spawn(
            self.fetch(true)
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    Err(err) => {
                        tracing::warn!(activity = act.id, %err, "refreshing the activity failed")
                    }
                    res => {
                        guarded(act, ctx, |act, ctx| act.loaded(res, ctx));
                    }
                }),
        );
    }

    fn loaded(&mut self, res: Loaded, ctx: &mut Context<Self>) {
        match res {
            Ok(Some((record, stock))) => {
                // The level read is at least as new as what the desk published so far (a
                // change the replaced subscription had not handled yet is in it): only later
                // publishes come from the stream.
                let (level, claimable) = match stock {
                    Some((level, mut changes)) => {
                        changes.borrow_and_update();
                        self.subscribe_stock(changes, ctx);
                        (level, true)
                    }
                    // It takes no claims (cancelled): nothing can be claimed.
                    None => {
                        self.unsubscribe_stock(ctx);
                        (StockLevel::default(), false)
                    }
                };
                let stock_left = level.left;
                let moved = self
                    .live
                    .as_ref()
                    .is_some_and(|live| live.record.starts_at != record.starts_at);
                if moved {
                    // A new schedule: its ticks start over.
                    self.last_tick = None;
                }
                self.live = Some(Live {
                    record,
                    stock_left,
                    ended: None,
                });
                let known = self.stock_known.replace(level);
                let missed = known.is_some_and(|k| k != level);
                if known.is_some_and(|k| k.left != stock_left) {
                    self.stock_unsent = Some(stock_left);
                }
                // A restart dropped the timer of a stock count still waiting for its turn.
                if self.stock_timer.is_none() {
                    self.send_stock(ctx);
                }
                self.step(ctx);
                if missed && claimable {
                    self.end_if_sold_out(level, ctx);
                }
            }
            Ok(None) => {
                self.live = None;
                self.finish(ctx);
            }
            Err(err) => {
                tracing::warn!(activity = self.id, %err, "loading the activity failed; retrying");
                self.live = None;
                ctx.run_later(RETRY_LOAD, |_, ctx| ctx.stop());
            }
        }
    }

    /// Pushes whatever is due now and arms the timer for the next event.
    fn step(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        loop {
            let Some(live) = &self.live else { return };
            if live.ended.is_some() {
                return;
            }
            let (starts_at, ends_at, cancelled) = (
                live.record.starts_at,
                live.record.ends_at,
                live.record.cancelled,
            );
            let now = now_ms();
            if cancelled {
                return self.end(ctx, EndReason::Cancelled);
            }
            if now >= ends_at {
                return self.end(ctx, EndReason::Time);
            }
            if now >= starts_at {
                if !self.started_announced {
                    self.started_announced = true;
                    self.push(&Push::ActivityStarted {
                        activity: self.id,
                        server_time: now,
                    });
                }
                return self.arm(ctx, ends_at - now);
            }
            match schedule::next_tick(starts_at, now, self.last_tick) {
                Some((seconds_left, due)) if due <= now => {
                    self.last_tick = Some(seconds_left);
                    self.push(&Push::ActivityCountdown {
                        activity: self.id,
                        seconds_left,
                        server_time: now,
                    });
                }
                Some((_, due)) => return self.arm(ctx, due - now),
                None => return self.arm(ctx, starts_at - now),
            }
        }
    }

    fn arm(&mut self, ctx: &mut Context<Self>, in_ms: i64) {
        let delay = Duration::from_millis(in_ms.max(0) as u64);
        self.timer = Some(ctx.run_later(delay, |act, ctx| {
            act.timer = None;
            guarded(act, ctx, |act, ctx| act.step(ctx));
        }));
    }

    /// Ends the activity: pushes `activity.ended {reason}` to every subscriber, forgets them
    /// and stops the actor for good.
    pub fn end(&mut self, ctx: &mut Context<Self>, reason: EndReason) {
        if let Some(live) = &mut self.live {
            live.ended = Some(reason);
        }
        // The newest stock count goes out before the end, whatever the frame budget.
        if let Some(left) = self.stock_unsent.take() {
            self.push_stock(left);
        }
        self.push(&Push::ActivityEnded {
            activity: self.id,
            reason,
            server_time: now_ms(),
        });
        self.subscribers.clear();
        self.finish(ctx);
    }

    /// Leaves the registry (so the supervisor, seeing no address left, does not restart the
    /// actor) and stops.
    fn finish(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        self.unsubscribe_stock(ctx);
        self.shared.forget(self.id, &self.subscribers);
        ctx.stop();
    }
}

impl Actor for Activity {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Also runs after every supervised restart: the timers come back from the database.
        self.load(ctx);
        ctx.run_interval(REFRESH, |act, ctx| act.refresh(ctx));
    }
}

impl Guarded for Activity {
    fn identity(&self) -> (&'static str, i64) {
        ("activity", self.id)
    }
}

impl Supervised for Activity {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        metrics::counter!(metric::ACTOR_RESTARTS, "kind" => "activity").increment(1);
        tracing::warn!(
            activity = self.id,
            subscribers = self.subscribers.len(),
            "restarting activity actor"
        );
        self.live = None;
        self.timer = None;
        self.stock_timer = None;
        // The restart dropped the subscription with the context's other streams.
        self.stock_stream = None;
    }
}

/// Adds a subscriber and replies with the activity's state and the subscriber's eligibility
/// (decided by the claim desk before). The reply is queued before any push that follows, so a
/// client sees the reply first.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Subscribe {
    pub(crate) sub: Subscriber,
    pub(crate) reply: OnceReply,
    /// The rules the subscriber does not meet.
    pub(crate) unmet: Vec<Unmet>,
}

impl Handler<Subscribe> for Activity {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, ctx: &mut Self::Context) {
        guarded(self, ctx, |act, _| {
            let now = now_ms();
            let (Some(state), Some(live)) = (act.state(now), &act.live) else {
                return msg
                    .reply
                    .error(ErrorCode::Unavailable, "the activity is loading; retry");
            };
            let ok = ActivitySubscribeOk {
                activity: act.id,
                state,
                starts_at: live.record.starts_at,
                ends_at: live.record.ends_at,
                stock_left: live.stock_left,
                server_time: now,
                eligible: msg.unmet.is_empty(),
                unmet: msg.unmet,
            };
            if matches!(state, ActivityState::Scheduled | ActivityState::Live) {
                act.subscribers.insert(msg.sub);
            }
            msg.reply.ok(&ok);
        });
    }
}

/// Queues a pre-encoded frame to every subscriber.
#[derive(Message)]
#[rtype(result = "Result<usize, ActivityError>")]
pub(crate) struct Broadcast(pub(crate) ByteString);

impl Handler<Broadcast> for Activity {
    type Result = Result<usize, ActivityError>;

    fn handle(&mut self, Broadcast(frame): Broadcast, ctx: &mut Self::Context) -> Self::Result {
        guarded(self, ctx, |act, _| match act.state(now_ms()) {
            None => Err(ActivityError::Unavailable),
            Some(ActivityState::Scheduled | ActivityState::Live) => Ok(act.push_frame(&frame)),
            Some(state) => Err(ActivityError::Over(state)),
        })
        .unwrap_or(Err(ActivityError::Unavailable))
    }
}

/// The stored activity changed (edited or cancelled): reload it and re-arm the timers.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Reload;

impl Handler<Reload> for Activity {
    type Result = ();

    fn handle(&mut self, _: Reload, ctx: &mut Self::Context) {
        self.load(ctx);
    }
}

/// The activity's current view (for `GET /api/v1/activities/{id}`).
#[derive(Message)]
#[rtype(result = "Result<ActivitySnapshot, ActivityError>")]
pub(crate) struct Snapshot;

impl Handler<Snapshot> for Activity {
    type Result = Result<ActivitySnapshot, ActivityError>;

    fn handle(&mut self, _: Snapshot, _ctx: &mut Self::Context) -> Self::Result {
        let now = now_ms();
        match (self.state(now), &self.live) {
            (Some(state), Some(live)) => Ok(ActivitySnapshot {
                record: live.record.clone(),
                state,
                stock_left: live.stock_left,
                server_time: now,
            }),
            _ => Err(ActivityError::Unavailable),
        }
    }
}

/// Test-only: panics inside the actor, as a bug would.
#[cfg(feature = "fault-injection")]
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct InjectPanic;

#[cfg(feature = "fault-injection")]
impl Handler<InjectPanic> for Activity {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Self::Context) {
        guarded(self, ctx, |act, _| {
            panic!("injected fault in activity {}", act.id);
        });
    }
}

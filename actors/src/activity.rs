//! The Activity actor: one per scheduled or live promotion, under an `actix::Supervisor`.
//!
//! It owns the activity's schedule: it arms a timer for the next event — the next countdown
//! tick (see [`schedule`]), the exact `starts_at` instant, or `ends_at` — and pushes
//! `activity.countdown`, `activity.started` and `activity.ended` to the activity's
//! [`Subscribers`]. `activity.started` is pushed when the server clock reads `starts_at` or
//! later, never before: a timer that fires early (the monotonic and wall clocks can disagree
//! by a millisecond) is simply re-armed.
//!
//! State: [`Live`] is reloaded from the [`port::ActivityStore`] whenever the actor (re)starts,
//! so a restart rebuilds the timers from the database; it is also re-read every [`REFRESH`]
//! in the background, so a change made through another node of a cluster reaches this one. What must survive a restart is kept outside
//! it: the subscriber set (owned by the node's [`Activities`] directory) and whether
//! `started` was announced. A panic in a handler or a timer is caught, the actor stops, and
//! the supervisor restarts it (`restarting`, then `started` reloads).
//!
//! Extending (claims): add handlers in your own file under `activity/`; they see [`Live`]
//! (`record.items`, `stock_left`), [`Activity::state`] (decided by the server clock),
//! [`Activity::push_frame`] (fan-out of a pre-encoded frame) and [`Activity::end`] (e.g. with
//! [`EndReason::SoldOut`]).
//!
//! [`Activities`]: crate::activities::Activities

pub mod claims;
pub mod port;
pub mod schedule;
pub mod subscribers;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;
use corral_protocol::ops::{ActivityId, ActivityState, ActivitySubscribeOk, EndReason};
use corral_protocol::{EpochMs, ErrorCode, Push, reply};

use crate::activities::{ActivityError, ActivitySnapshot, Shared};
use crate::clock::now_ms;
use crate::metric_catalogue as metric;
use crate::replier::Replier;
use port::{ActivityRecord, StoreFailure};
use subscribers::{Subscriber, Subscribers};

/// After a failed load the actor stops this long later; the supervisor then reloads it.
const RETRY_LOAD: Duration = Duration::from_secs(1);

/// How often a running actor re-reads its activity, so an edit or a cancel made through
/// another node of a cluster reaches it (the node that made the change tells its own actor
/// at once).
pub const REFRESH: Duration = Duration::from_secs(10);

/// A load's outcome: the record and its stock, `None` when the activity no longer exists.
type Loaded = Result<Option<(ActivityRecord, i64)>, StoreFailure>;

/// The restartable state, reloaded from the store.
pub struct Live {
    /// The activity as stored.
    pub record: ActivityRecord,
    /// Slots neither held nor confirmed (from the [`port::StockView`] at load).
    pub stock_left: i64,
    /// Set once the actor pushed `activity.ended`.
    pub ended: Option<EndReason>,
}

/// One activity's actor.
pub struct Activity {
    id: ActivityId,
    shared: Arc<Shared>,
    subscribers: Arc<Subscribers>,
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
    /// The newest stock count the actor has handled (kept across restarts): a reload that
    /// reads another count sends it, since the claim desk's change that brought it may have
    /// arrived during the reload and found nothing new.
    stock_known: Option<i64>,
    /// How many claim desk changes the actor has handled (orders background re-reads).
    stock_changes: u64,
}

impl Activity {
    pub(crate) fn new(id: ActivityId, shared: Arc<Shared>, subscribers: Arc<Subscribers>) -> Self {
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
            stock_known: None,
            stock_changes: 0,
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

    /// The loaded state, if any.
    pub fn live(&self) -> Option<&Live> {
        self.live.as_ref()
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

    /// Runs `f`, turning a panic into a supervised restart (the actor stops and the
    /// supervisor restarts it) instead of the loss of the actor's task.
    fn guarded<R>(
        &mut self,
        ctx: &mut Context<Self>,
        f: impl FnOnce(&mut Self, &mut Context<Self>) -> R,
    ) -> Option<R> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| f(self, ctx))) {
            Ok(r) => Some(r),
            Err(_) => {
                tracing::error!(activity = self.id, "activity actor panicked; restarting it");
                ctx.stop();
                None
            }
        }
    }

    /// Reads the activity and its stock from the store.
    fn fetch(&self) -> impl Future<Output = Loaded> + 'static {
        let store = self.shared.store.clone();
        let stock = self.shared.stock.clone();
        let id = self.id;
        async move {
            let Some(record) = store.activity(id).await? else {
                return Ok(None);
            };
            let left = stock.stock_left(&record).await?;
            Ok(Some((record, left)))
        }
    }

    /// (Re)loads the state before anything else is handled: at start, after a restart, and
    /// when told the stored activity changed.
    fn load(&mut self, ctx: &mut Context<Self>) {
        // `wait` holds the mailbox: no message is handled before the state is back.
        ctx.wait(self.fetch().into_actor(self).map(|res, act, ctx| {
            act.guarded(ctx, |act, ctx| act.loaded(res, ctx));
        }));
    }

    /// Re-reads the activity in the background (timers keep running meanwhile), so a change
    /// made through another node reaches this one within [`REFRESH`]; also forgets the
    /// subscribers that disconnected since.
    fn refresh(&mut self, ctx: &mut Context<Self>) {
        self.subscribers.prune();
        let changes = self.stock_changes;
        ctx.spawn(
            self.fetch()
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    Err(err) => {
                        tracing::warn!(activity = act.id, %err, "refreshing the activity failed")
                    }
                    res => {
                        // A desk change handled while the read ran is newer than what it read;
                        // otherwise the read brings changes made outside this node's desk (the
                        // cluster's reconciler, say) to the subscribers.
                        let res = res.map(|found| {
                            found.map(|(record, left)| match &act.live {
                                Some(live) if act.stock_changes != changes => {
                                    (record, live.stock_left)
                                }
                                _ => (record, left),
                            })
                        });
                        act.guarded(ctx, |act, ctx| act.loaded(res, ctx));
                    }
                }),
        );
    }

    fn loaded(&mut self, res: Loaded, ctx: &mut Context<Self>) {
        match res {
            Ok(Some((record, stock_left))) => {
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
                if self
                    .stock_known
                    .replace(stock_left)
                    .is_some_and(|k| k != stock_left)
                {
                    self.stock_unsent = Some(stock_left);
                }
                // A restart dropped the timer of a stock count still waiting for its turn.
                if self.stock_timer.is_none() {
                    self.send_stock(ctx);
                }
                self.step(ctx);
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
            act.guarded(ctx, |act, ctx| act.step(ctx));
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
    }
}

/// Exactly-once reply to `activity.subscribe`: a reply dropped unanswered (the actor went
/// away, or panicked mid-way) answers `unavailable`.
pub(crate) struct SubscribeReply(Option<Replier>);

impl SubscribeReply {
    pub(crate) fn new(replier: Replier) -> Self {
        SubscribeReply(Some(replier))
    }

    pub(crate) fn ok(mut self, ok: &ActivitySubscribeOk) {
        if let Some(replier) = self.0.take() {
            replier.ok(ok);
        }
    }

    pub(crate) fn error(mut self, code: ErrorCode, message: &str) {
        if let Some(replier) = self.0.take() {
            replier.error(code, message);
        }
    }
}

impl Drop for SubscribeReply {
    fn drop(&mut self) {
        if let Some(replier) = self.0.take() {
            replier.error(
                ErrorCode::Unavailable,
                "the activity is restarting; subscribe again",
            );
        }
    }
}

/// Adds a subscriber and replies with the activity's state. The reply is queued before any
/// push that follows, so a client sees the reply first.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Subscribe {
    pub(crate) sub: Subscriber,
    pub(crate) reply: SubscribeReply,
}

impl Handler<Subscribe> for Activity {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, ctx: &mut Self::Context) {
        self.guarded(ctx, |act, _| {
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
        self.guarded(ctx, |act, _| match act.state(now_ms()) {
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
        self.guarded(ctx, |act, _| {
            panic!("injected fault in activity {}", act.id);
        });
    }
}

//! The Activity actor's claim handlers: the actor subscribes to the claim desk's stock stream
//! (one way: the desk publishes, the actor listens), its coalesced changes become
//! `activity.stock` frames to the subscribers, and a live activity with nothing left and no
//! hold outstanding ends with `activity.ended {reason: "sold_out"}`.
//!
//! The desk already limits changes to one per [`crate::claims::service::STOCK_EVERY_MS`]; a
//! large audience is also held to the node's per-activity frame budget
//! (`Shared::stock_frames_per_sec`): 15,000 watchers at 10 frames a second would be 150,000
//! frames a second, more than a node writes to idle sockets. Frames that come too soon are
//! folded into the next one, which always carries the newest count.

use std::time::{Duration, Instant};

use actix::prelude::*;
use corral_protocol::Push;
use corral_protocol::ops::{ActivityState, EndReason};
use futures_util::stream;
use tokio::sync::watch;

use super::Activity;
use crate::clock::now_ms;
use crate::ports::claims::StockLevel;

/// The ledger's stock for this activity changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StockChanged(pub StockLevel);

impl StreamHandler<StockChanged> for Activity {
    fn handle(&mut self, StockChanged(stock): StockChanged, ctx: &mut Self::Context) {
        self.stock_changed(stock, ctx);
    }

    /// The desk's stream ends only with the node; the actor keeps running regardless.
    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

/// Test-only: a stock level handed to the actor as if the desk had published it.
#[cfg(feature = "fault-injection")]
impl Handler<StockChanged> for Activity {
    type Result = ();

    fn handle(&mut self, StockChanged(stock): StockChanged, ctx: &mut Self::Context) {
        self.stock_changed(stock, ctx);
    }
}

impl Activity {
    /// Listens to `stock` (the rest of its changes) in place of the earlier subscription.
    pub(super) fn subscribe_stock(
        &mut self,
        stock: watch::Receiver<StockLevel>,
        ctx: &mut Context<Self>,
    ) {
        self.unsubscribe_stock(ctx);
        let changes = stream::unfold(stock, |mut stock| async move {
            stock.changed().await.ok()?;
            let level = *stock.borrow_and_update();
            Some((StockChanged(level), stock))
        });
        self.stock_stream = Some(ctx.add_stream(changes));
    }

    /// Stops listening to the desk's stock.
    pub(super) fn unsubscribe_stock(&mut self, ctx: &mut Context<Self>) {
        if let Some(stream) = self.stock_stream.take() {
            ctx.cancel_future(stream);
        }
    }

    fn stock_changed(&mut self, stock: StockLevel, ctx: &mut Context<Self>) {
        // While the actor (re)loads, the reload reads the stream's level and sends it.
        let Some(live) = self.live_mut() else { return };
        if live.stock_left != stock.left {
            live.stock_left = stock.left;
            self.stock_known = Some(stock.left);
            self.stock_unsent = Some(stock.left);
            self.send_stock(ctx);
        }
        if stock.left == 0 && stock.held == 0 && self.state(now_ms()) == Some(ActivityState::Live) {
            self.end(ctx, EndReason::SoldOut);
        }
    }
}

impl Activity {
    /// Sends the newest unsent stock count now if the budget allows, or arms a timer for the
    /// moment it does.
    pub(super) fn send_stock(&mut self, ctx: &mut Context<Self>) {
        let Some(left) = self.stock_unsent else {
            return;
        };
        let gap = stock_gap(self.subscribers.len(), self.shared.stock_frames_per_sec);
        let now = Instant::now();
        match self.stock_pushed_at.map(|at| at + gap) {
            Some(due) if due > now => {
                if self.stock_timer.is_none() {
                    self.stock_timer = Some(ctx.run_later(due - now, |act, ctx| {
                        act.stock_timer = None;
                        act.send_stock(ctx);
                    }));
                }
            }
            _ => {
                self.stock_unsent = None;
                self.stock_pushed_at = Some(now);
                self.push_stock(left);
            }
        }
    }

    /// Queues `activity.stock {left}` to every subscriber.
    pub(super) fn push_stock(&self, left: i64) {
        self.push(&Push::ActivityStock {
            activity: self.id,
            left,
        });
    }
}

/// The least time between two stock frames to `subscribers` watchers under a budget of
/// `frames_per_sec` frames a second.
fn stock_gap(subscribers: usize, frames_per_sec: usize) -> Duration {
    Duration::from_secs_f64(subscribers as f64 / frames_per_sec.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use async_trait::async_trait;
    use corral_protocol::ops::{ActivityId, AnimalId, Comment, Post, PostId};
    use corral_protocol::{EpochMs, UserId};
    use tokio::sync::Semaphore;
    use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

    use super::*;
    use crate::activities::Activities;
    use crate::activity::subscribers::Subscriber;
    use crate::claims::Claims;
    use crate::outbound::{Outbound, OutboundRx};
    use crate::ports::activities::{ActivityCatalog, ActivityItem, ActivityRecord, CatalogError};
    use crate::ports::claims::{
        ClaimLedger, ClaimRecord, HoldOutcome, LedgerError, PaymentOutcome,
    };
    use crate::ports::cluster::SoloBus;
    use crate::ports::{
        CommentAdded, FollowCounts, LikeChange, NewPost, SocialError, SocialStore, UserPage,
    };
    use crate::registry::Arbiters;
    use crate::replier::Replier;
    use crate::users::UserSessions;

    /// One live activity with ten slots, whose reads can be held at a gate: each read says
    /// so on `entered` before it waits there, so a test can act while the actor is
    /// mid-reload.
    struct GatedActivity {
        gate: Semaphore,
        entered: UnboundedSender<()>,
    }

    #[async_trait]
    impl ActivityCatalog for GatedActivity {
        async fn activity(&self, id: i64) -> Result<Option<ActivityRecord>, CatalogError> {
            let _ = self.entered.send(());
            let permit = self.gate.acquire().await.expect("gate open");
            drop(permit);
            Ok(Some(ActivityRecord {
                id,
                merchant_id: 1,
                title: "t".into(),
                starts_at: now_ms() - 1_000,
                ends_at: now_ms() + 600_000,
                per_user_limit: 1,
                hold_seconds: 60,
                cancelled: false,
                items: vec![ActivityItem {
                    item_id: 1,
                    animal_id: 1,
                    slots: 10,
                }],
            }))
        }

        async fn pending_activities(&self, _now: i64) -> Result<Vec<i64>, CatalogError> {
            Ok(Vec::new())
        }

        async fn with_outstanding_holds(&self) -> Result<Vec<ActivityId>, CatalogError> {
            Ok(Vec::new())
        }
    }

    /// A ledger whose stock the test sets; it decides no claims.
    struct SetStock {
        left: AtomicI64,
    }

    #[async_trait]
    impl ClaimLedger for SetStock {
        async fn hold(
            &self,
            _: &ActivityRecord,
            _: UserId,
            _: Option<i64>,
            _: &str,
            _: EpochMs,
        ) -> Result<HoldOutcome, LedgerError> {
            unimplemented!()
        }

        async fn cancel(
            &self,
            _: &ActivityRecord,
            _: &ClaimRecord,
            _: EpochMs,
        ) -> Result<Option<ClaimRecord>, LedgerError> {
            unimplemented!()
        }

        async fn confirm(
            &self,
            _: &ActivityRecord,
            _: &ClaimRecord,
            _: EpochMs,
        ) -> Result<PaymentOutcome, LedgerError> {
            unimplemented!()
        }

        async fn expire(
            &self,
            _: &ActivityRecord,
            _: EpochMs,
        ) -> Result<Vec<ClaimRecord>, LedgerError> {
            Ok(Vec::new())
        }

        async fn recover(&self, _: &ActivityRecord) -> Result<Vec<EpochMs>, LedgerError> {
            Ok(Vec::new())
        }

        async fn stock(&self, spec: &ActivityRecord) -> Result<StockLevel, LedgerError> {
            let left = self.left.load(Ordering::SeqCst);
            Ok(StockLevel {
                left,
                held: spec.total_slots() - left,
            })
        }

        async fn claim(&self, _: i64) -> Result<Option<ClaimRecord>, LedgerError> {
            Ok(None)
        }
    }

    /// The claim desk needs a social store only for confirmed claims, which never happen here.
    struct NoSocial;

    #[async_trait]
    impl SocialStore for NoSocial {
        async fn follow(&self, _: UserId, _: UserId, _: EpochMs) -> Result<bool, SocialError> {
            unimplemented!()
        }
        async fn unfollow(&self, _: UserId, _: UserId) -> Result<bool, SocialError> {
            unimplemented!()
        }
        async fn follow_counts(&self, _: UserId) -> Result<FollowCounts, SocialError> {
            unimplemented!()
        }
        async fn followers(
            &self,
            _: UserId,
            _: Option<UserId>,
            _: u32,
        ) -> Result<UserPage, SocialError> {
            unimplemented!()
        }
        async fn following(
            &self,
            _: UserId,
            _: Option<UserId>,
            _: u32,
        ) -> Result<UserPage, SocialError> {
            unimplemented!()
        }
        async fn follow_animal(
            &self,
            _: UserId,
            _: AnimalId,
            _: EpochMs,
        ) -> Result<bool, SocialError> {
            unimplemented!()
        }
        async fn create_post(&self, _: NewPost) -> Result<Post, SocialError> {
            unimplemented!()
        }
        async fn post(&self, _: PostId) -> Result<Post, SocialError> {
            unimplemented!()
        }
        async fn delete_post(&self, _: PostId, _: UserId, _: EpochMs) -> Result<Post, SocialError> {
            unimplemented!()
        }
        async fn timeline(
            &self,
            _: UserId,
            _: Option<PostId>,
            _: u32,
        ) -> Result<Vec<Post>, SocialError> {
            unimplemented!()
        }
        async fn profile(
            &self,
            _: UserId,
            _: Option<PostId>,
            _: u32,
        ) -> Result<Vec<Post>, SocialError> {
            unimplemented!()
        }
        async fn like(&self, _: UserId, _: PostId, _: EpochMs) -> Result<LikeChange, SocialError> {
            unimplemented!()
        }
        async fn unlike(&self, _: UserId, _: PostId) -> Result<LikeChange, SocialError> {
            unimplemented!()
        }
        async fn comment(
            &self,
            _: UserId,
            _: PostId,
            _: &str,
            _: EpochMs,
        ) -> Result<CommentAdded, SocialError> {
            unimplemented!()
        }
        async fn comments(
            &self,
            _: PostId,
            _: Option<i64>,
            _: u32,
        ) -> Result<Vec<Comment>, SocialError> {
            unimplemented!()
        }
        async fn audience_size(&self, _: UserId, _: Option<AnimalId>) -> Result<u64, SocialError> {
            unimplemented!()
        }
        async fn audience_page(
            &self,
            _: UserId,
            _: Option<AnimalId>,
            _: UserId,
            _: u32,
        ) -> Result<Vec<UserId>, SocialError> {
            unimplemented!()
        }
        async fn audience_among(
            &self,
            _: UserId,
            _: Option<AnimalId>,
            _: &[UserId],
        ) -> Result<Vec<UserId>, SocialError> {
            unimplemented!()
        }
    }

    /// The next frame on `rx`, failing after a generous deadline.
    async fn next_frame(rx: &mut OutboundRx, what: &str) -> serde_json::Value {
        let frame = tokio::time::timeout(Duration::from_secs(10), rx.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} within 10 s"))
            .unwrap_or_else(|| panic!("queue closed before {what}"));
        serde_json::from_str(&frame).expect("a JSON frame")
    }

    /// A stock change that reaches the actor while it reloads (an edit, a supervised restart)
    /// still goes out: the reload reads the stream's new level, and the change on the
    /// subscription it replaces must not be taken for "nothing new".
    #[actix::test]
    async fn a_stock_change_during_a_reload_reaches_the_subscribers() {
        let (entered, mut reads): (_, UnboundedReceiver<()>) = unbounded_channel();
        let catalog = Arc::new(GatedActivity {
            gate: Semaphore::new(1),
            entered,
        });
        let ledger = Arc::new(SetStock {
            left: AtomicI64::new(10),
        });
        let claims = Claims::new(
            ledger.clone(),
            catalog.clone(),
            Arc::new(UserSessions::new(Arc::new(SoloBus))),
            Arc::new(NoSocial),
            Duration::from_secs(10),
        );
        let activities =
            Activities::new(Arbiters::start(1), catalog.clone(), claims.clone(), 1_000);
        let (out, mut rx) = Outbound::channel(64);
        let sub = Subscriber {
            conn_id: 1,
            user: 7,
            out: out.clone(),
        };
        activities.subscribe(
            42,
            sub,
            Replier::new(
                Some(1),
                "activity.subscribe",
                std::time::Instant::now(),
                out,
            ),
        );
        let reply = next_frame(&mut rx, "the subscribe reply").await;
        assert_eq!(reply["ok"]["stock_left"], 10, "{reply}");

        // The ledger moves to 9 and the actor starts reloading; its read waits at the gate.
        let closed = catalog.gate.acquire().await.expect("gate");
        ledger.left.store(9, Ordering::SeqCst);
        while reads.try_recv().is_ok() {}
        activities.changed(42);
        tokio::time::timeout(Duration::from_secs(10), reads.recv())
            .await
            .expect("the reload reads the catalogue");
        // The claim desk publishes the change mid-reload, then the read completes.
        let mut stock = claims.stock(42).await.expect("stock").expect("activity");
        claims.reread(42);
        tokio::time::timeout(Duration::from_secs(10), stock.wait_for(|s| s.left == 9))
            .await
            .expect("the desk publishes 9 left")
            .expect("desk");
        drop(closed);

        let frame = next_frame(&mut rx, "activity.stock {left: 9}").await;
        assert_eq!(
            (frame["ev"].as_str(), frame["left"].as_i64()),
            (Some("activity.stock"), Some(9)),
            "{frame}"
        );
    }

    #[test]
    fn the_gap_grows_with_the_audience() {
        assert_eq!(stock_gap(0, 20_000), Duration::ZERO);
        assert_eq!(stock_gap(2_000, 20_000), Duration::from_millis(100));
        assert_eq!(stock_gap(15_000, 20_000), Duration::from_millis(750));
    }
}

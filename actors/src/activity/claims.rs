//! The Activity actor's claim handlers: the claim desk's coalesced stock changes become
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

use super::Activity;
use crate::claims::StockView;
use crate::clock::now_ms;

/// The ledger's stock for this activity changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StockChanged(pub StockView);

impl Handler<StockChanged> for Activity {
    type Result = ();

    fn handle(&mut self, StockChanged(stock): StockChanged, ctx: &mut Self::Context) {
        self.stock_changes += 1;
        // While the actor (re)loads, the reload reads the ledger's count and sends it.
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
    use tokio::sync::Semaphore;
    use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

    use super::*;
    use crate::activities::Activities;
    use crate::activity::port::{
        ActivityItem, ActivityRecord, ActivityStore, StockView as StockPort, StoreFailure,
    };
    use crate::activity::subscribers::Subscriber;
    use crate::claims::StockView;
    use crate::outbound::{Outbound, OutboundRx};
    use crate::registry::Arbiters;
    use crate::replier::Replier;

    /// One live activity with ten slots.
    struct OneActivity;

    #[async_trait]
    impl ActivityStore for OneActivity {
        async fn activity(&self, id: i64) -> Result<Option<ActivityRecord>, StoreFailure> {
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

        async fn pending_activities(&self, _now: i64) -> Result<Vec<i64>, StoreFailure> {
            Ok(Vec::new())
        }
    }

    /// A ledger whose reads can be held at a gate: each read says so on `entered` before it
    /// waits there, so a test can act while the actor is mid-reload.
    struct GatedStock {
        left: AtomicI64,
        gate: Semaphore,
        entered: UnboundedSender<()>,
    }

    #[async_trait]
    impl StockPort for GatedStock {
        async fn stock_left(&self, _activity: &ActivityRecord) -> Result<i64, StoreFailure> {
            let _ = self.entered.send(());
            let permit = self.gate.acquire().await.expect("gate open");
            drop(permit);
            Ok(self.left.load(Ordering::SeqCst))
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
    /// still goes out: the reload reads the ledger's new count, and the change message that
    /// follows must not be taken for "nothing new".
    #[actix::test]
    async fn a_stock_change_during_a_reload_reaches_the_subscribers() {
        let (entered, mut reads): (_, UnboundedReceiver<()>) = unbounded_channel();
        let stock = Arc::new(GatedStock {
            left: AtomicI64::new(10),
            gate: Semaphore::new(1),
            entered,
        });
        let activities = Activities::new(
            Arbiters::start(1),
            Arc::new(OneActivity),
            stock.clone(),
            1_000,
        );
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
        let closed = stock.gate.acquire().await.expect("gate");
        stock.left.store(9, Ordering::SeqCst);
        while reads.try_recv().is_ok() {}
        activities.changed(42);
        tokio::time::timeout(Duration::from_secs(10), reads.recv())
            .await
            .expect("the reload reads the ledger");
        // The claim desk's change arrives mid-reload, then the read completes.
        activities.stock_changed(42, StockView { left: 9, held: 1 });
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

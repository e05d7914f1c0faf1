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
            self.stock_unsent = Some(stock.left);
            self.send_stock(ctx);
        }
        self.stock_known = Some(stock);
        self.end_if_sold_out(stock, ctx);
    }

    /// A live activity with nothing left and no hold outstanding is over for good.
    pub(super) fn end_if_sold_out(&mut self, stock: StockLevel, ctx: &mut Context<Self>) {
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
    use super::*;

    #[test]
    fn the_gap_grows_with_the_audience() {
        assert_eq!(stock_gap(0, 20_000), Duration::ZERO);
        assert_eq!(stock_gap(2_000, 20_000), Duration::from_millis(100));
        assert_eq!(stock_gap(15_000, 20_000), Duration::from_millis(750));
    }
}

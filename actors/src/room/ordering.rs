//! The Room actor's delivery order: committed messages (its own, or from other nodes through
//! the broker) are delivered strictly by seq; one that arrives early waits in the
//! [`Reorder`](super::reorder::Reorder) buffer, a gap that does not close within
//! `chat.gap_wait_ms` is read from the store, and after the broker's link was down the room
//! catches up with everything the store committed meanwhile.

use std::time::Instant;

use actix::prelude::*;
use bytestring::ByteString;
use corral_protocol::ops::ChatMessage;

use super::{Early, RELOAD_AFTER, Room, encode};
use crate::metric_catalogue as metric;

impl Room {
    /// Takes a committed message (local or from the broker) into the delivery order.
    pub(super) fn offer(
        &mut self,
        message: ChatMessage,
        frame: ByteString,
        started: Option<Instant>,
        ctx: &mut Context<Self>,
    ) {
        let delivered = self.delivered.unwrap_or(0);
        let Some(loaded) = self.ready() else {
            return;
        };
        let early = Early {
            message,
            frame,
            started,
        };
        let Some(now) = loaded.pending.offer(delivered, early.message.seq, early) else {
            self.arm_gap_timer(ctx);
            return;
        };
        self.deliver(now);
        self.deliver_waiting(ctx);
    }

    /// While messages wait for a gap, a timer reads the gap from the store should it not
    /// close by itself within `chat.gap_wait_ms`.
    pub(super) fn arm_gap_timer(&mut self, ctx: &mut Context<Self>) {
        let gap_wait = self.chat.config.gap_wait;
        let Some(loaded) = self.ready() else { return };
        if !loaded.pending.is_waiting() || loaded.gap_timer.is_some() {
            return;
        }
        loaded.gap_timer = Some(ctx.run_later(gap_wait, |act, ctx| {
            let from = act.delivered.unwrap_or(0);
            if let Some(loaded) = act.ready() {
                loaded.gap_timer = None;
                if let Some((after, until)) = loaded.pending.gap(from) {
                    act.fill(after, until, ctx);
                }
            }
        }));
    }

    /// Delivers the waiting messages that are next in order; the gap timer stays armed
    /// only while some still wait.
    pub(super) fn deliver_waiting(&mut self, ctx: &mut Context<Self>) {
        loop {
            let delivered = self.delivered.unwrap_or(0);
            let Some(early) = self.ready().and_then(|l| l.pending.next(delivered)) else {
                break;
            };
            self.deliver(early);
        }
        if let Some(loaded) = self.ready()
            && !loaded.pending.is_waiting()
            && let Some(timer) = loaded.gap_timer.take()
        {
            ctx.cancel_future(timer);
        }
        self.arm_gap_timer(ctx);
    }

    pub(super) fn deliver(
        &mut self,
        Early {
            message,
            frame,
            started,
        }: Early,
    ) {
        let window = self.chat.config.catch_up_window;
        self.delivered = Some(message.seq);
        let sent = self.fan_out(&frame, None);
        metrics::counter!(metric::FANOUT_DELIVERIES).increment(sent as u64);
        if let Some(started) = started {
            let delay = started.elapsed();
            metrics::histogram!(metric::DELIVERY_LATENCY).record(delay.as_secs_f64());
            self.chat.overload.note_fanout_delay(delay);
        }
        if let Some(loaded) = self.ready() {
            loaded.recent.push_back(message);
            while loaded.recent.len() > window {
                loaded.recent.pop_front();
            }
        }
    }

    /// Reads `(after, until]` from the store and delivers it (a gap nobody filled).
    pub(super) fn fill(&mut self, after: u64, until: u64, ctx: &mut Context<Self>) {
        let store = self.chat.store.clone();
        let room = self.id;
        ctx.spawn(
            async move { store.range(room, after, until).await }
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(messages) => {
                        for message in messages {
                            let frame = encode(&message);
                            act.offer(message, frame, None, ctx);
                        }
                        // The store holds every committed seq, so this only skips ahead if
                        // the room's history was reset underneath us.
                        if act.delivered.unwrap_or(0) < until {
                            tracing::warn!(room, after, until, "seq gap not in the store");
                            act.delivered = Some(until);
                            act.deliver_waiting(ctx);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(room, %err, "filling a seq gap failed; retrying");
                        ctx.run_later(RELOAD_AFTER, move |act, ctx| {
                            let from = act.delivered.unwrap_or(0);
                            if from < until {
                                act.fill(from, until, ctx);
                            }
                        });
                    }
                }),
        );
    }

    /// Reads every message the store committed past what the room delivered and delivers
    /// them in order: what the broker's link may have lost.
    pub(super) fn catch_up(&mut self) -> impl ActorFuture<Room, Output = ()> + 'static {
        let store = self.chat.store.clone();
        let (room, after) = (self.id, self.delivered.unwrap_or(0));
        let loaded = self.ready().is_some();
        async move {
            if !loaded {
                return Ok(Vec::new());
            }
            match store.room(room).await? {
                Some(info) if info.last_seq > after => {
                    store.range(room, after, info.last_seq).await
                }
                _ => Ok(Vec::new()),
            }
        }
        .into_actor(self)
        .map(move |result, act, ctx| match result {
            Ok(messages) => {
                if !messages.is_empty() {
                    metrics::counter!(metric::ROOM_CATCH_UPS).increment(1);
                }
                for message in messages {
                    let frame = encode(&message);
                    act.offer(message, frame, None, ctx);
                }
            }
            Err(err) => tracing::warn!(room, %err, "catching up from the store failed"),
        })
    }

    /// Whether frames from other nodes may be missing right now (the broker's link is down).
    pub(super) fn link_down(&self) -> bool {
        self.link.as_ref().is_some_and(|link| !*link.borrow())
    }
}

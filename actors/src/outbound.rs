//! A connection's bounded outbound queue, in two lanes, and its kill switch.
//!
//! Everything a connection is sent goes through an [`Outbound`], a non-blocking push of shared
//! bytes onto one of two lanes:
//! - the **reply lane** ([`Outbound::reply`]): answers to the connection's own requests and
//!   the pushes about its own doings (its `claim.updated`);
//! - the **push lane** ([`Outbound::send`]): everything else (room fan-out, activity frames,
//!   presence, feed posts).
//!
//! The writer always empties the reply lane before it takes from the push lane, so a claim's
//! `held` overtakes a crowd's broadcast frames already queued for the same socket. Each lane
//! holds at most `capacity` frames; a full lane means the client is not reading: it is a slow
//! consumer, and it is disconnected (4008) rather than allowed to grow server memory.
//!
//! The lanes are plain `VecDeque`s behind one short-held lock: they hold no memory until a
//! frame arrives, grow under load, and [`OutboundRx::trim`] gives their memory back when they
//! are empty, so an idle connection's queue costs a few words.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};

use bytestring::ByteString;
use corral_protocol::limits::close;
use futures_util::task::AtomicWaker;

use crate::metric_catalogue as metric;

/// Why and how a connection is being closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// The WebSocket close code.
    pub code: u16,
    /// A short human explanation sent in the close frame.
    pub reason: String,
    /// Whether frames already queued are written before closing.
    pub flush: bool,
}

impl CloseReason {
    /// A close after queued frames are written.
    pub fn graceful(code: u16, reason: impl Into<String>) -> Self {
        CloseReason {
            code,
            reason: reason.into(),
            flush: true,
        }
    }

    /// A close that drops whatever is queued.
    pub fn abrupt(code: u16, reason: impl Into<String>) -> Self {
        CloseReason {
            code,
            reason: reason.into(),
            flush: false,
        }
    }
}

/// Which lane a frame travels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Replies to the connection's own requests, and pushes about its own claims.
    Reply,
    /// Everything else.
    Push,
}

#[derive(Default)]
struct Lanes {
    replies: VecDeque<ByteString>,
    pushes: VecDeque<ByteString>,
}

impl Lanes {
    fn lane(&mut self, lane: Lane) -> &mut VecDeque<ByteString> {
        match lane {
            Lane::Reply => &mut self.replies,
            Lane::Push => &mut self.pushes,
        }
    }

    /// The next frame to write and its lane: replies first.
    fn pop(&mut self) -> Option<(Lane, ByteString)> {
        match self.replies.pop_front() {
            Some(frame) => Some((Lane::Reply, frame)),
            None => self.pushes.pop_front().map(|frame| (Lane::Push, frame)),
        }
    }
}

/// What the senders and the receiver share.
struct Shared {
    lanes: Mutex<Lanes>,
    /// Frames per lane.
    capacity: usize,
    /// The receiver's waker, woken on a new frame, a close request, and when the last sender
    /// goes.
    waker: AtomicWaker,
    /// Live `Outbound` handles.
    senders: AtomicUsize,
    /// The receiver was dropped: nothing will be written any more.
    receiver_gone: AtomicBool,
    reason: OnceLock<CloseReason>,
}

impl Shared {
    /// The lanes; a panic elsewhere while holding the lock left them consistent (every
    /// operation on them is a single push, pop or shrink), so a poisoned lock is used as is.
    fn lanes(&self) -> MutexGuard<'_, Lanes> {
        self.lanes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The sending side of a connection's queue. Cheap to clone; rooms and users keep one per
/// member session.
pub struct Outbound {
    shared: Arc<Shared>,
}

/// The receiving side, owned by the connection's I/O loop.
pub struct OutboundRx {
    shared: Arc<Shared>,
}

impl Outbound {
    /// A queue holding at most `capacity` frames in each lane.
    pub fn channel(capacity: usize) -> (Outbound, OutboundRx) {
        let shared = Arc::new(Shared {
            lanes: Mutex::new(Lanes::default()),
            capacity: capacity.max(1),
            waker: AtomicWaker::new(),
            senders: AtomicUsize::new(1),
            receiver_gone: AtomicBool::new(false),
            reason: OnceLock::new(),
        });
        (
            Outbound {
                shared: shared.clone(),
            },
            OutboundRx { shared },
        )
    }

    /// Queues a push (fan-out, broadcast, presence) without waiting. Returns false when the
    /// frame was not queued: the connection is closed, or its push lane is full, in which case
    /// it is closed as a slow consumer.
    pub fn send(&self, frame: ByteString) -> bool {
        self.send_in(Lane::Push, frame)
    }

    /// Queues a reply to this connection's own request, or a push about its own claim, ahead
    /// of every queued push. Returns false as [`Outbound::send`] does.
    pub fn reply(&self, frame: ByteString) -> bool {
        self.send_in(Lane::Reply, frame)
    }

    /// Queues `frame` in `lane` without waiting (see [`Outbound::send`]).
    pub fn send_in(&self, lane: Lane, frame: ByteString) -> bool {
        let shared = &self.shared;
        if shared.receiver_gone.load(Ordering::Acquire) {
            return false;
        }
        let queued = {
            let mut lanes = shared.lanes();
            let queue = lanes.lane(lane);
            if queue.len() < shared.capacity {
                queue.push_back(frame);
                true
            } else {
                false
            }
        };
        if queued {
            shared.waker.wake();
            return true;
        }
        if self.close(CloseReason::abrupt(
            close::SLOW_CONSUMER,
            "slow consumer: outbound queue full",
        )) {
            metrics::counter!(metric::SLOW_CONSUMER_DROPS).increment(1);
        }
        false
    }

    /// Asks the connection to close. Only the first reason counts; returns whether it was this one.
    pub fn close(&self, reason: CloseReason) -> bool {
        let first = self.shared.reason.set(reason).is_ok();
        if first {
            self.shared.waker.wake();
        }
        first
    }

    /// Whether a close has been asked for, or the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.reason.get().is_some() || self.shared.receiver_gone.load(Ordering::Acquire)
    }
}

impl Clone for Outbound {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Outbound {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last sender: the receiver learns there is nothing more to come.
            self.shared.waker.wake();
        }
    }
}

impl OutboundRx {
    /// The next frame to write, replies before pushes, without waiting; `None` when both
    /// lanes are empty.
    pub fn try_recv(&self) -> Option<ByteString> {
        self.shared.lanes().pop().map(|(_, frame)| frame)
    }

    /// Polls for the next frame: `Ready(None)` once every sender is gone and the lanes are
    /// empty.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<ByteString>> {
        self.poll_next(cx).map(|next| next.map(|(_, frame)| frame))
    }

    /// [`OutboundRx::poll_recv`] with the lane the frame came from.
    pub fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<(Lane, ByteString)>> {
        if let Some(next) = self.shared.lanes().pop() {
            return Poll::Ready(Some(next));
        }
        self.shared.waker.register(cx.waker());
        // Checked again after registering: a frame queued in between would otherwise wait
        // for the next one.
        if let Some(next) = self.shared.lanes().pop() {
            return Poll::Ready(Some(next));
        }
        if self.shared.senders.load(Ordering::Acquire) == 0 {
            return Poll::Ready(None);
        }
        Poll::Pending
    }

    /// Polls for a close request: ready with the first reason given.
    pub fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<CloseReason> {
        if let Some(reason) = self.shared.reason.get() {
            return Poll::Ready(reason.clone());
        }
        self.shared.waker.register(cx.waker());
        match self.shared.reason.get() {
            Some(reason) => Poll::Ready(reason.clone()),
            None => Poll::Pending,
        }
    }

    /// Resolves when someone asked the connection to close, with their reason.
    pub async fn closed(&self) -> CloseReason {
        poll_fn(|cx| self.poll_closed(cx)).await
    }

    /// The next frame to write, replies before pushes; `None` once every sender is gone and
    /// the lanes are empty.
    pub async fn recv(&self) -> Option<ByteString> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Gives back the memory of empty lanes. Called when the connection is idle (each
    /// heartbeat), so a burst's queue does not stay allocated for the life of the connection
    /// while a steady trickle of frames does not reallocate on every one.
    pub fn trim(&self) {
        let mut guard = self.shared.lanes();
        let lanes = &mut *guard;
        for queue in [&mut lanes.replies, &mut lanes.pushes] {
            if queue.is_empty() && queue.capacity() > 0 {
                *queue = VecDeque::new();
            }
        }
    }

    /// Frames waiting in both lanes.
    pub fn queued(&self) -> usize {
        let lanes = self.shared.lanes();
        lanes.replies.len() + lanes.pushes.len()
    }

    /// Frames the lanes have room for without growing (replies, pushes).
    pub fn capacity(&self) -> (usize, usize) {
        let lanes = self.shared.lanes();
        (lanes.replies.capacity(), lanes.pushes.capacity())
    }
}

impl Drop for OutboundRx {
    fn drop(&mut self) {
        self.shared.receiver_gone.store(true, Ordering::Release);
        // Frames queued for a socket that is gone are freed now, not when the last of the
        // rooms and users holding a sender lets it go.
        *self.shared.lanes() = Lanes::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_closes_the_connection_as_slow_consumer() {
        let (out, rx) = Outbound::channel(2);
        assert!(out.send("a".into()));
        assert!(out.send("b".into()));
        assert!(!out.send("c".into()));
        let reason = rx.closed().await;
        assert_eq!(reason.code, close::SLOW_CONSUMER);
        assert!(!reason.flush);
        assert!(out.is_closed());
    }

    #[tokio::test]
    async fn a_full_reply_lane_is_a_slow_consumer_too() {
        let (out, rx) = Outbound::channel(2);
        assert!(out.reply("a".into()));
        assert!(out.reply("b".into()));
        assert!(!out.reply("c".into()));
        assert_eq!(rx.closed().await.code, close::SLOW_CONSUMER);
    }

    #[tokio::test]
    async fn the_first_close_reason_wins() {
        let (out, rx) = Outbound::channel(2);
        assert!(out.close(CloseReason::graceful(1001, "bye")));
        assert!(!out.close(CloseReason::abrupt(1008, "other")));
        assert_eq!(rx.closed().await.code, 1001);
    }

    #[tokio::test]
    async fn replies_overtake_pushes_already_queued() {
        let (out, rx) = Outbound::channel(8);
        for push in ["p1", "p2", "p3"] {
            assert!(out.send(push.into()));
        }
        assert!(out.reply("claim.updated".into()));
        assert!(out.reply("held".into()));
        assert!(out.send("p4".into()));
        let mut order = Vec::new();
        while let Some(frame) = rx.try_recv() {
            order.push(frame.to_string());
        }
        assert_eq!(order, ["claim.updated", "held", "p1", "p2", "p3", "p4"]);
    }

    #[tokio::test]
    async fn recv_waits_for_a_frame_and_ends_when_every_sender_is_gone() {
        let (out, rx) = Outbound::channel(4);
        let other = out.clone();
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await;
            let end = rx.recv().await;
            (first, end)
        });
        tokio::task::yield_now().await;
        assert!(other.reply("x".into()));
        drop(other);
        drop(out);
        let (first, end) = waiting.await.expect("receiver task");
        assert_eq!(first.as_deref(), Some("x"));
        assert_eq!(end, None);
    }

    #[tokio::test]
    async fn sends_fail_once_the_receiver_is_gone() {
        let (out, rx) = Outbound::channel(4);
        assert!(out.send("queued".into()));
        drop(rx);
        assert!(out.is_closed());
        assert!(!out.send("late".into()));
        assert!(!out.reply("late".into()));
    }

    #[test]
    fn trim_gives_back_a_burst_once_the_lanes_are_drained() {
        let (out, rx) = Outbound::channel(1024);
        for i in 0..500 {
            assert!(out.send(i.to_string().into()));
            assert!(out.reply(i.to_string().into()));
        }
        let (replies, pushes) = rx.capacity();
        assert!(replies >= 500 && pushes >= 500);
        // Not drained yet: trimming keeps what is queued.
        rx.trim();
        assert!(rx.capacity().1 >= 500);
        while rx.try_recv().is_some() {}
        rx.trim();
        assert_eq!(rx.capacity(), (0, 0));
        // And the queue still works afterwards.
        assert!(out.send("again".into()));
        assert_eq!(rx.try_recv().as_deref(), Some("again"));
    }
}

//! A connection's bounded outbound queue and its kill switch.
//!
//! Everything a connection is sent — replies, pushes, fan-out — goes through
//! [`Outbound::send`], a non-blocking `try_send` of shared bytes. A full queue means the client
//! is not reading: it is a slow consumer, and it is disconnected rather than allowed to grow
//! server memory.

use std::sync::{Arc, OnceLock};

use bytestring::ByteString;
use corral_protocol::limits::close;
use tokio::sync::{Notify, mpsc};

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

struct Kill {
    notify: Notify,
    reason: OnceLock<CloseReason>,
}

/// Resolves when someone asks the connection to close.
pub struct CloseSignal {
    kill: Arc<Kill>,
}

/// The sending side of a connection's queue. Cheap to clone; rooms and users keep one per
/// member session.
#[derive(Clone)]
pub struct Outbound {
    tx: mpsc::Sender<ByteString>,
    kill: Arc<Kill>,
}

/// The receiving side, owned by the connection's I/O loop.
pub struct OutboundRx {
    /// Frames to write, in order.
    pub rx: mpsc::Receiver<ByteString>,
    /// The close request, when one comes.
    pub close: CloseSignal,
}

impl Outbound {
    /// A queue holding at most `capacity` frames.
    pub fn channel(capacity: usize) -> (Outbound, OutboundRx) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let kill = Arc::new(Kill {
            notify: Notify::new(),
            reason: OnceLock::new(),
        });
        (
            Outbound {
                tx,
                kill: kill.clone(),
            },
            OutboundRx {
                rx,
                close: CloseSignal { kill },
            },
        )
    }

    /// Queues a frame without waiting. Returns false when the frame was not queued: the
    /// connection is closed, or its queue is full, in which case it is closed as a slow
    /// consumer.
    pub fn send(&self, frame: ByteString) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.close(CloseReason::abrupt(
                    close::SLOW_CONSUMER,
                    "slow consumer: outbound queue full",
                )) {
                    metrics::counter!(metric::SLOW_CONSUMER_DROPS).increment(1);
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the connection to close. Only the first reason counts; returns whether it was this one.
    pub fn close(&self, reason: CloseReason) -> bool {
        let first = self.kill.reason.set(reason).is_ok();
        if first {
            self.kill.notify.notify_one();
        }
        first
    }

    /// Whether a close has been asked for, or the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.kill.reason.get().is_some() || self.tx.is_closed()
    }
}

impl CloseSignal {
    /// Resolves when someone asked the connection to close, with their reason.
    pub async fn closed(&self) -> CloseReason {
        loop {
            if let Some(reason) = self.kill.reason.get() {
                return reason.clone();
            }
            self.kill.notify.notified().await;
        }
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
        let reason = rx.close.closed().await;
        assert_eq!(reason.code, close::SLOW_CONSUMER);
        assert!(!reason.flush);
        assert!(out.is_closed());
    }

    #[tokio::test]
    async fn the_first_close_reason_wins() {
        let (out, rx) = Outbound::channel(2);
        assert!(out.close(CloseReason::graceful(1001, "bye")));
        assert!(!out.close(CloseReason::abrupt(1008, "other")));
        assert_eq!(rx.close.closed().await.code, 1001);
    }
}

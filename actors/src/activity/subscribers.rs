//! An activity's subscribers: the outbound queues of the sessions watching it.
//!
//! The set lives outside the Activity actor's restartable state (the node's [`Activities`]
//! directory owns it, the actor borrows it), so a supervisor restart of the actor keeps every
//! watcher. Frames are encoded once by the caller and the same bytes are queued to each
//! subscriber; a subscriber whose connection is gone, or whose queue is full (a slow
//! consumer, then disconnected), is dropped on the next send.
//!
//! [`Activities`]: crate::activities::Activities

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytestring::ByteString;
use corral_protocol::UserId;

use crate::metric_catalogue as metric;
use crate::outbound::Outbound;

/// One watching session.
#[derive(Clone)]
pub struct Subscriber {
    /// The session's connection id (one subscription per connection and activity).
    pub conn_id: u64,
    /// The user it speaks for.
    pub user: UserId,
    /// Its outbound queue.
    pub out: Outbound,
}

/// The sessions watching one activity.
#[derive(Default)]
pub struct ActivitySubscribers {
    members: Mutex<HashMap<u64, Subscriber>>,
}

impl ActivitySubscribers {
    fn members(&self) -> MutexGuard<'_, HashMap<u64, Subscriber>> {
        // A panic while holding the lock leaves a plain map behind: still usable.
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds (or replaces) the subscription of `sub.conn_id`.
    pub fn insert(&self, sub: Subscriber) {
        self.members().insert(sub.conn_id, sub);
    }

    /// Removes connection `conn_id`; returns whether it was subscribed.
    pub fn remove(&self, conn_id: u64) -> bool {
        self.members().remove(&conn_id).is_some()
    }

    /// Queues `frame` to every subscriber, dropping the ones that cannot take it; returns
    /// how many took it.
    pub fn send(&self, frame: &ByteString) -> usize {
        let started = Instant::now();
        let mut members = self.members();
        members.retain(|_, sub| sub.out.send(frame.clone()));
        let delivered = members.len();
        drop(members);
        metrics::counter!(metric::FRAMES_OUT, "kind" => "push", "op" => "activity")
            .increment(delivered as u64);
        metrics::histogram!(metric::BROADCAST_FANOUT, "kind" => "activity")
            .record(started.elapsed().as_secs_f64());
        delivered
    }

    /// Drops subscribers whose connection has closed (between sends, a disconnect is only
    /// noticed here); returns how many remain.
    pub fn prune(&self) -> usize {
        let mut members = self.members();
        members.retain(|_, sub| !sub.out.is_closed());
        members.len()
    }

    /// Forgets every subscriber (the activity is over).
    pub fn clear(&self) {
        self.members().clear();
    }

    /// The users watching (on this node).
    pub fn users(&self) -> HashSet<UserId> {
        self.members().values().map(|sub| sub.user).collect()
    }

    /// How many sessions watch.
    pub fn len(&self) -> usize {
        self.members().len()
    }

    /// Whether nobody watches.
    pub fn is_empty(&self) -> bool {
        self.members().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sends_once_to_each_and_drops_closed_connections() {
        let subs = ActivitySubscribers::default();
        let (a, rx_a) = Outbound::channel(4);
        let (b, rx_b) = Outbound::channel(4);
        subs.insert(Subscriber {
            conn_id: 1,
            user: 7,
            out: a.clone(),
        });
        subs.insert(Subscriber {
            conn_id: 1,
            user: 7,
            out: a,
        });
        subs.insert(Subscriber {
            conn_id: 2,
            user: 8,
            out: b,
        });
        assert_eq!(subs.len(), 2);
        assert_eq!(subs.users(), HashSet::from([7, 8]));
        drop(rx_b);
        assert_eq!(subs.send(&ByteString::from("x")), 1);
        assert_eq!(rx_a.recv().await.as_deref(), Some("x"));
        assert_eq!(subs.len(), 1);
        let (c, rx_c) = Outbound::channel(4);
        subs.insert(Subscriber {
            conn_id: 3,
            user: 9,
            out: c,
        });
        drop(rx_c);
        assert_eq!(subs.prune(), 1);
        assert!(subs.remove(1));
        assert!(subs.is_empty());
    }

    /// A countdown tick, `activity.started` or a stock frame is encoded once: every
    /// subscriber's queue holds the same bytes, not a copy.
    #[test]
    fn every_subscriber_gets_the_same_bytes() {
        let subs = ActivitySubscribers::default();
        let mut queues = Vec::new();
        for conn_id in 0..3 {
            let (out, rx) = Outbound::channel(4);
            subs.insert(Subscriber {
                conn_id,
                user: 7,
                out,
            });
            queues.push(rx);
        }
        let frame = ByteString::from(r#"{"ev":"activity.started","activity":1}"#.to_string());
        assert_eq!(subs.send(&frame), 3);
        for rx in &queues {
            let got = rx.try_recv().expect("queued");
            assert_eq!(got.as_ptr(), frame.as_ptr());
        }
    }
}

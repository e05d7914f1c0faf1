//! The in-process `Broker` (the embedded default): room frames go to the other room actors of
//! this process only. Its subscriber table is also what the Redis broker dispatches into.

use async_trait::async_trait;
use corral_actors::metric_catalogue as metric;
use corral_actors::ports::chat::{Broker, BrokerFrame};
use corral_protocol::ops::RoomId;
use dashmap::DashMap;
use tokio::sync::mpsc;

/// The node's room subscribers (shared with the Redis broker, which dispatches what it
/// receives through the same table).
#[derive(Default)]
pub(crate) struct Subscribers {
    rooms: DashMap<RoomId, Vec<(u64, mpsc::Sender<BrokerFrame>)>>,
}

impl Subscribers {
    /// Adds (or replaces) `origin`'s sink; returns whether it is the room's first.
    pub(crate) fn add(&self, room: RoomId, origin: u64, sink: mpsc::Sender<BrokerFrame>) -> bool {
        let mut subs = self.rooms.entry(room).or_default();
        subs.retain(|(o, _)| *o != origin);
        subs.push((origin, sink));
        subs.len() == 1
    }

    /// Removes `origin`'s sink; returns whether the room has none left.
    pub(crate) fn remove(&self, room: RoomId, origin: u64) -> bool {
        self.rooms
            .remove_if_mut(&room, |_, subs| {
                subs.retain(|(o, _)| *o != origin);
                subs.is_empty()
            })
            .is_some()
    }

    /// Hands `frame` to every subscriber of `room` but its publisher.
    pub(crate) fn dispatch(&self, room: RoomId, frame: &BrokerFrame) {
        let Some(subs) = self.rooms.get(&room) else {
            return;
        };
        for (origin, sink) in subs.iter() {
            if *origin != frame.origin && sink.try_send(frame.clone()).is_err() {
                metrics::counter!(metric::BROKER_DROPS).increment(1);
            }
        }
    }
}

/// The embedded broker: frames go to the other room actors of this process.
#[derive(Default)]
pub struct LocalBroker {
    subscribers: Subscribers,
}

#[async_trait]
impl Broker for LocalBroker {
    fn publish(&self, room: RoomId, frame: BrokerFrame) {
        self.subscribers.dispatch(room, &frame);
    }

    async fn subscribe(&self, room: RoomId, origin: u64, sink: mpsc::Sender<BrokerFrame>) {
        self.subscribers.add(room, origin, sink);
    }

    fn unsubscribe(&self, room: RoomId, origin: u64) {
        self.subscribers.remove(room, origin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytestring::ByteString;

    #[tokio::test]
    async fn local_broker_skips_the_publisher() {
        let broker = LocalBroker::default();
        let (a, mut rx_a) = mpsc::channel(4);
        let (b, mut rx_b) = mpsc::channel(4);
        broker.subscribe(1, 10, a).await;
        broker.subscribe(1, 11, b).await;
        let frame = BrokerFrame {
            origin: 10,
            seq: 1,
            frame: ByteString::from("x"),
        };
        broker.publish(1, frame.clone());
        assert_eq!(rx_b.recv().await, Some(frame));
        assert!(rx_a.try_recv().is_err());
        broker.unsubscribe(1, 11);
        broker.unsubscribe(1, 10);
        assert!(broker.subscribers.rooms.is_empty());
    }
}

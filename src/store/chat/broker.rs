//! `Broker` adapters: in-process (the embedded default: room actors on this node only) and
//! Redis pub/sub (cluster mode: one channel per room, `<prefix>room:<id>`), both handing frames
//! to the local subscribers through the same table.

use std::sync::Arc;

use async_trait::async_trait;
use bytestring::ByteString;
use corral_actors::ports::chat::{Broker, BrokerFrame};
use corral_protocol::ops::RoomId;
use dashmap::DashMap;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};

use crate::store::redis::RedisError;

/// Frames queued for Redis before publishes are dropped (receivers repair gaps from the store).
const PUBLISH_QUEUE: usize = 65536;
/// Publishes sent to Redis in one pipeline.
const PUBLISH_PIPELINE: usize = 256;

/// The node's room subscribers.
#[derive(Default)]
struct Subscribers {
    rooms: DashMap<RoomId, Vec<(u64, mpsc::Sender<BrokerFrame>)>>,
}

impl Subscribers {
    /// Adds (or replaces) `origin`'s sink; returns whether it is the room's first.
    fn add(&self, room: RoomId, origin: u64, sink: mpsc::Sender<BrokerFrame>) -> bool {
        let mut subs = self.rooms.entry(room).or_default();
        subs.retain(|(o, _)| *o != origin);
        subs.push((origin, sink));
        subs.len() == 1
    }

    /// Removes `origin`'s sink; returns whether the room has none left.
    fn remove(&self, room: RoomId, origin: u64) -> bool {
        self.rooms
            .remove_if_mut(&room, |_, subs| {
                subs.retain(|(o, _)| *o != origin);
                subs.is_empty()
            })
            .is_some()
    }

    /// Hands `frame` to every subscriber of `room` but its publisher.
    fn dispatch(&self, room: RoomId, frame: &BrokerFrame) {
        let Some(subs) = self.rooms.get(&room) else {
            return;
        };
        for (origin, sink) in subs.iter() {
            if *origin != frame.origin && sink.try_send(frame.clone()).is_err() {
                metrics::counter!("corral_broker_drops_total").increment(1);
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

enum Control {
    Subscribe(RoomId, oneshot::Sender<()>),
    Unsubscribe(RoomId),
}

/// Redis pub/sub: every node subscribes to the channels of the rooms it runs, and publishes
/// each frame once to its room's channel (`<origin>:<seq>:<frame>`).
pub struct RedisBroker {
    subscribers: Arc<Subscribers>,
    publish: mpsc::Sender<(RoomId, BrokerFrame)>,
    control: mpsc::UnboundedSender<Control>,
}

fn channel(prefix: &str, room: RoomId) -> String {
    format!("{prefix}room:{room}")
}

fn encode(frame: &BrokerFrame) -> String {
    format!("{}:{}:{}", frame.origin, frame.seq, frame.frame)
}

fn decode(payload: &[u8]) -> Option<BrokerFrame> {
    let text = std::str::from_utf8(payload).ok()?;
    let (origin, rest) = text.split_once(':')?;
    let (seq, frame) = rest.split_once(':')?;
    Some(BrokerFrame {
        origin: origin.parse().ok()?,
        seq: seq.parse().ok()?,
        frame: ByteString::from(frame),
    })
}

impl RedisBroker {
    /// Opens a pub/sub connection to `url` and starts the subscriber and publisher tasks
    /// (publishing over `conn`).
    pub async fn start(
        url: &str,
        prefix: &str,
        conn: ConnectionManager,
    ) -> Result<RedisBroker, RedisError> {
        let client = redis::Client::open(url)?;
        let (mut sink, mut stream) = client.get_async_pubsub().await?.split();
        let subscribers = Arc::new(Subscribers::default());

        let subs = subscribers.clone();
        let room_of = format!("{prefix}room:");
        tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                let room = msg
                    .get_channel_name()
                    .strip_prefix(room_of.as_str())
                    .and_then(|r| r.parse::<RoomId>().ok());
                match (room, decode(msg.get_payload_bytes())) {
                    (Some(room), Some(frame)) => subs.dispatch(room, &frame),
                    _ => metrics::counter!("corral_broker_drops_total").increment(1),
                }
            }
            tracing::error!("redis pub/sub connection closed; rooms repair from the store");
        });

        let (control, mut control_rx) = mpsc::unbounded_channel();
        let channel_prefix = prefix.to_string();
        tokio::spawn(async move {
            while let Some(cmd) = control_rx.recv().await {
                let result = match cmd {
                    Control::Subscribe(room, done) => {
                        let result = sink.subscribe(channel(&channel_prefix, room)).await;
                        let _ = done.send(());
                        result
                    }
                    Control::Unsubscribe(room) => {
                        sink.unsubscribe(channel(&channel_prefix, room)).await
                    }
                };
                if let Err(err) = result {
                    metrics::counter!("corral_redis_errors_total").increment(1);
                    tracing::warn!(%err, "redis (un)subscribe failed");
                }
            }
        });

        let (publish, mut publish_rx) = mpsc::channel::<(RoomId, BrokerFrame)>(PUBLISH_QUEUE);
        let channel_prefix = prefix.to_string();
        tokio::spawn(async move {
            let mut conn = conn;
            let mut batch = Vec::with_capacity(PUBLISH_PIPELINE);
            while publish_rx.recv_many(&mut batch, PUBLISH_PIPELINE).await > 0 {
                let mut pipe = redis::pipe();
                for (room, frame) in batch.drain(..) {
                    pipe.cmd("PUBLISH")
                        .arg(channel(&channel_prefix, room))
                        .arg(encode(&frame))
                        .ignore();
                }
                if let Err(err) = pipe.query_async::<()>(&mut conn).await {
                    metrics::counter!("corral_redis_errors_total").increment(1);
                    tracing::warn!(%err, "redis publish failed; rooms repair from the store");
                }
            }
        });

        Ok(RedisBroker {
            subscribers,
            publish,
            control,
        })
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn publish(&self, room: RoomId, frame: BrokerFrame) {
        if self.publish.try_send((room, frame)).is_err() {
            metrics::counter!("corral_broker_drops_total").increment(1);
        }
    }

    async fn subscribe(&self, room: RoomId, origin: u64, sink: mpsc::Sender<BrokerFrame>) {
        if self.subscribers.add(room, origin, sink) {
            let (done, subscribed) = oneshot::channel();
            if self.control.send(Control::Subscribe(room, done)).is_ok() {
                let _ = subscribed.await;
            }
        }
    }

    fn unsubscribe(&self, room: RoomId, origin: u64) {
        if self.subscribers.remove(room, origin) {
            let _ = self.control.send(Control::Unsubscribe(room));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_the_redis_payload() {
        let frame = BrokerFrame {
            origin: 42,
            seq: 7,
            frame: ByteString::from(r#"{"ev":"room.message","text":"a:b"}"#),
        };
        assert_eq!(decode(encode(&frame).as_bytes()), Some(frame));
        assert_eq!(decode(b"nonsense"), None);
    }

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

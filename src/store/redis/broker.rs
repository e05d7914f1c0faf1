//! The Redis `Broker` adapter: pub/sub (cluster mode: one channel per room,
//! `<prefix>room:<id>`), handing frames to the local subscribers through the same table as the
//! in-process broker (`store::memory::broker`). It also carries the cluster bus (`ClusterBus`)
//! on one node-wide channel.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytestring::ByteString;
use corral_actors::metric_catalogue as metric;
use corral_actors::ports::chat::{Broker, BrokerFrame};
use corral_actors::ports::cluster::{ClusterBus, ClusterEvent};
use corral_protocol::ops::RoomId;
use redis::aio::ConnectionManager;
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use secrecy::ExposeSecret;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::RedisSettings;
use crate::store::memory::broker::Subscribers;
use crate::store::redis::{RedisError, connection_config};

/// Frames queued for Redis before publishes are dropped (receivers repair gaps from the store).
const PUBLISH_QUEUE: usize = 65536;
/// Publishes sent to Redis in one pipeline.
const PUBLISH_PIPELINE: usize = 256;
/// The subscriber connection's name in `CLIENT LIST` starts with this, followed by the key
/// prefix, so operators can tell each cluster's subscribers apart.
pub const SUBSCRIBER_NAME: &str = "corral-pubsub:";
/// How often the subscriber connection is pinged (a dead socket is noticed by a command, and
/// a lost link is seen back up by the first ping that succeeds).
const WATCHDOG_EVERY: Duration = Duration::from_millis(500);

enum Control {
    Subscribe(String, oneshot::Sender<()>),
    Unsubscribe(String),
    /// (Re)names the connection: at start and after each reconnect.
    Name,
}

/// The subscriber connection's name for key prefix `prefix` (Redis client names hold no
/// spaces).
pub fn subscriber_name(prefix: &str) -> String {
    let prefix: String = prefix
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    format!("{SUBSCRIBER_NAME}{prefix}")
}

/// Redis pub/sub (cluster mode), for rooms and for the cluster bus. Every node subscribes to
/// the channels of the rooms it runs (`<prefix>room:<id>`, payload `<origin>:<seq>:<frame>`)
/// and to the node-wide `<prefix>cluster` channel (payload `<node>:<event as JSON>`), and
/// publishes each frame or event once.
///
/// Subscriptions ride a RESP3 connection manager that reconnects by itself and subscribes
/// again to every channel after a reconnect; frames published in between are lost, and rooms
/// repair them from the store when they notice the seq gap.
pub struct RedisBroker {
    subscribers: Arc<Subscribers>,
    /// Whether the subscriber connection is up (see [`Broker::link`]).
    link: Arc<watch::Sender<bool>>,
    publish: mpsc::Sender<(String, String)>,
    control: mpsc::UnboundedSender<Control>,
    prefix: String,
    /// This node's id on the cluster channel (its own events are not applied twice).
    node: u64,
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

/// The sender id of events published from outside any node (`corral admin`): no node has it,
/// so every node applies them.
const OUTSIDE: u64 = 0;

/// The cluster channel under `prefix`, and a payload carrying `event` from outside any node,
/// for a process that is no node to publish.
pub fn message_from_outside(
    prefix: &str,
    event: &ClusterEvent,
) -> Result<(String, String), serde_json::Error> {
    let json = serde_json::to_string(event)?;
    Ok((format!("{prefix}cluster"), format!("{OUTSIDE}:{json}")))
}

fn encode_event(node: u64, event: &ClusterEvent) -> Option<String> {
    serde_json::to_string(event)
        .ok()
        .map(|json| format!("{node}:{json}"))
}

/// A cluster channel payload, as node `node` reads it.
#[derive(Debug, PartialEq)]
enum Incoming {
    /// Another node's event.
    Event(ClusterEvent),
    /// This node's own (already applied here).
    Own,
    /// Unreadable.
    Garbled,
}

fn decode_event(node: u64, payload: &[u8]) -> Incoming {
    let parsed = std::str::from_utf8(payload).ok().and_then(|text| {
        let (from, json) = text.split_once(':')?;
        Some((from.parse::<u64>().ok()?, json))
    });
    match parsed {
        Some((from, _)) if from == node => Incoming::Own,
        Some((_, json)) => serde_json::from_str(json).map_or(Incoming::Garbled, Incoming::Event),
        None => Incoming::Garbled,
    }
}

/// Where one pub/sub message goes.
struct Router {
    subscribers: Arc<Subscribers>,
    room_prefix: String,
    cluster: String,
    node: u64,
    events: mpsc::Sender<ClusterEvent>,
    control: mpsc::UnboundedSender<Control>,
    link: Arc<watch::Sender<bool>>,
}

impl Router {
    fn route(&self, channel: &[u8], payload: &[u8]) {
        let channel = String::from_utf8_lossy(channel);
        if channel == self.cluster {
            match decode_event(self.node, payload) {
                Incoming::Event(event) => {
                    if self.events.try_send(event).is_err() {
                        metrics::counter!(metric::CLUSTER_EVENTS_DROPPED).increment(1);
                    }
                }
                Incoming::Own => {}
                Incoming::Garbled => metrics::counter!(metric::CLUSTER_EVENTS_DROPPED).increment(1),
            }
            return;
        }
        let room = channel
            .strip_prefix(self.room_prefix.as_str())
            .and_then(|r| r.parse::<RoomId>().ok());
        match (room, decode(payload)) {
            (Some(room), Some(frame)) => self.subscribers.dispatch(room, &frame),
            _ => metrics::counter!(metric::BROKER_DROPS).increment(1),
        }
    }

    /// A RESP3 push: a message on a channel, or the news that the connection dropped.
    fn push(&self, push: PushInfo) {
        match push.kind {
            PushKind::Message => {
                if let [Value::BulkString(channel), Value::BulkString(payload)] =
                    push.data.as_slice()
                {
                    self.route(channel, payload);
                }
            }
            PushKind::Disconnection => {
                metrics::counter!(metric::REDIS_ERRORS, "area" => "broker").increment(1);
                tracing::warn!("redis pub/sub connection lost; reconnecting and resubscribing");
                self.link.send_replace(false);
                // The next command reconnects; the name goes with the new connection.
                let _ = self.control.send(Control::Name);
            }
            _ => {}
        }
    }
}

impl RedisBroker {
    /// Subscribes to `settings.url` (with its own RESP3 connection) and starts the routing,
    /// control and publisher tasks (publishing over `conn`); events of other nodes go to
    /// `events`.
    pub async fn start(
        settings: &RedisSettings,
        conn: ConnectionManager,
        events: mpsc::Sender<ClusterEvent>,
    ) -> Result<RedisBroker, RedisError> {
        let (url, prefix) = (settings.url.expose_secret(), settings.key_prefix.as_str());
        let info = url.into_connection_info()?;
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(resp3))?;
        let (pushes, mut push_rx) = mpsc::unbounded_channel();
        let config = connection_config(settings)
            .set_push_sender(pushes)
            .set_automatic_resubscription();
        let mut sub = ConnectionManager::new_with_config(client, config).await?;
        // Never 0: that id is [`OUTSIDE`]'s.
        let node = rand::random::<u64>().max(1);
        let cluster = format!("{prefix}cluster");
        sub.subscribe(&cluster).await?;

        let subscribers = Arc::new(Subscribers::default());
        let link = Arc::new(watch::Sender::new(true));
        let (control, mut control_rx) = mpsc::unbounded_channel();
        let _ = control.send(Control::Name);
        let router = Router {
            subscribers: subscribers.clone(),
            room_prefix: format!("{prefix}room:"),
            cluster,
            node,
            events,
            control: control.clone(),
            link: link.clone(),
        };
        tokio::spawn(async move {
            while let Some(push) = push_rx.recv().await {
                router.push(push);
            }
        });

        let name = subscriber_name(prefix);
        let mut watch = sub.clone();
        tokio::spawn(async move {
            while let Some(cmd) = control_rx.recv().await {
                let result = match cmd {
                    Control::Subscribe(channel, done) => {
                        let result = sub.subscribe(channel).await;
                        let _ = done.send(());
                        result
                    }
                    Control::Unsubscribe(channel) => sub.unsubscribe(channel).await,
                    Control::Name => {
                        redis::cmd("CLIENT")
                            .arg("SETNAME")
                            .arg(&name)
                            .query_async::<()>(&mut sub)
                            .await
                    }
                };
                if let Err(err) = result {
                    metrics::counter!(metric::REDIS_ERRORS, "area" => "broker").increment(1);
                    tracing::warn!(%err, "redis pub/sub control command failed");
                }
            }
        });
        // A silently dead socket is noticed by the next command: keep one going. The first
        // ping that succeeds after a loss went over the new connection, which subscribed to
        // every channel again as it connected: frames flow again.
        let watchdog = link.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(WATCHDOG_EVERY).await;
                let pong: Result<String, _> = redis::cmd("PING").query_async(&mut watch).await;
                match pong {
                    Ok(_) => {
                        if !*watchdog.borrow() {
                            tracing::info!("redis pub/sub is back; rooms catch up from the store");
                            watchdog.send_replace(true);
                        }
                    }
                    Err(err) => {
                        metrics::counter!(metric::REDIS_ERRORS, "area" => "broker").increment(1);
                        tracing::warn!(%err, "redis pub/sub ping failed");
                        watchdog.send_replace(false);
                    }
                }
            }
        });

        let (publish, mut publish_rx) = mpsc::channel::<(String, String)>(PUBLISH_QUEUE);
        tokio::spawn(async move {
            let mut conn = conn;
            let mut batch = Vec::with_capacity(PUBLISH_PIPELINE);
            while publish_rx.recv_many(&mut batch, PUBLISH_PIPELINE).await > 0 {
                let mut pipe = redis::pipe();
                for (channel, payload) in batch.drain(..) {
                    pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
                }
                if let Err(err) = pipe.query_async::<()>(&mut conn).await {
                    metrics::counter!(metric::REDIS_ERRORS, "area" => "broker").increment(1);
                    tracing::warn!(%err, "redis publish failed; receivers repair from the store");
                }
            }
        });

        Ok(RedisBroker {
            subscribers,
            link,
            publish,
            control,
            prefix: prefix.to_string(),
            node,
        })
    }

    fn send(&self, channel: String, payload: String) {
        if self.publish.try_send((channel, payload)).is_err() {
            metrics::counter!(metric::BROKER_DROPS).increment(1);
        }
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn publish(&self, room: RoomId, frame: BrokerFrame) {
        self.send(channel(&self.prefix, room), encode(&frame));
    }

    async fn subscribe(&self, room: RoomId, origin: u64, sink: mpsc::Sender<BrokerFrame>) {
        if self.subscribers.add(room, origin, sink) {
            let (done, subscribed) = oneshot::channel();
            let channel = channel(&self.prefix, room);
            if self.control.send(Control::Subscribe(channel, done)).is_ok() {
                let _ = subscribed.await;
            }
        }
    }

    fn unsubscribe(&self, room: RoomId, origin: u64) {
        if self.subscribers.remove(room, origin) {
            let _ = self
                .control
                .send(Control::Unsubscribe(channel(&self.prefix, room)));
        }
    }

    fn link(&self) -> Option<watch::Receiver<bool>> {
        Some(self.link.subscribe())
    }
}

impl ClusterBus for RedisBroker {
    fn publish(&self, event: ClusterEvent) {
        metrics::counter!(metric::CLUSTER_EVENTS_OUT).increment(1);
        match encode_event(self.node, &event) {
            Some(payload) => self.send(format!("{}cluster", self.prefix), payload),
            None => metrics::counter!(metric::CLUSTER_EVENTS_DROPPED).increment(1),
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

    #[test]
    fn cluster_events_round_trip_and_skip_their_own_node() {
        let event = ClusterEvent::User {
            user: 7,
            frame: ByteString::from(r#"{"ev":"claim.updated","claim_id":1}"#),
        };
        let payload = encode_event(42, &event).expect("encodes");
        assert_eq!(decode_event(41, payload.as_bytes()), Incoming::Event(event));
        assert_eq!(decode_event(42, payload.as_bytes()), Incoming::Own);
        assert_eq!(decode_event(41, b"40:{not json"), Incoming::Garbled);
        assert_eq!(decode_event(41, b"no origin"), Incoming::Garbled);
    }

    #[test]
    fn events_from_outside_reach_every_node() {
        let event = ClusterEvent::ActivityChanged { activity: 9 };
        let (channel, payload) = message_from_outside("p:", &event).expect("encodes");
        assert_eq!(channel, "p:cluster");
        for node in [1, 42, u64::MAX] {
            assert_eq!(
                decode_event(node, payload.as_bytes()),
                Incoming::Event(event.clone())
            );
        }
    }
}

//! The Room actor: one per chat room (or DM pair) per node, under an `actix::Supervisor`.
//!
//! It owns the room's local members (the sessions that joined, and so the users to deliver to),
//! the newest delivered seq and the recent-message window. A message goes to the store's
//! batcher, which assigns its seq in the committing transaction; once committed the sender is
//! answered, the `room.message` frame is encoded once, published on the broker for the room's
//! actors elsewhere, and the same bytes go to every session of every local recipient. Frames
//! are delivered strictly in seq order: one that arrives early (from another node, or from a
//! later batch) waits in a reorder buffer, and a gap that does not close by itself is read
//! from the store. A message that commits after its sender was told `unavailable` (the
//! store's deadline passed first), or that a retry finds undelivered here, is delivered and
//! published like a fresh one: the room never acknowledges a seq it does not deliver.
//!
//! A handler that panics stops the actor; its supervisor restarts it, `restarting()` drops
//! the store-derived state, and `started()` reloads it. The joined sessions and the newest seq
//! they were sent are connection state and survive the restart, so members stay joined and
//! anything committed meanwhile is delivered from the store exactly once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use corral_protocol::ops::{
    ChatMessage, DmSendOk, PresenceState, RoomHistoryOk, RoomId, RoomJoinOk, RoomLeaveOk,
    RoomSendOk,
};
use corral_protocol::{ErrorCode, Push, UserId, reply};
use tokio::sync::{mpsc, watch};

use crate::clock::now_ms;
use crate::metric_catalogue as metric;
use crate::outbound::Outbound;
use crate::overload::Overload;
use crate::ports::chat::{
    Appended, Broker, BrokerFrame, ChatStoreError, MessageStore, NewMessage, Online, PresenceStore,
    RoomInfo,
};
use crate::registry::Registry;
use crate::replier::OnceReply;
use crate::supervision::{Guarded, guarded};
use crate::users::UserSessions;

mod config;
mod messages;
mod online;
mod ordering;
mod reorder;

pub use config::ChatConfig;
#[cfg(feature = "fault-injection")]
pub(crate) use messages::Crash;
pub(crate) use messages::{History, Join, Leave, MemberAdded, Post, RoomRequest};
use reorder::Reorder;

/// Frames from other room actors waiting to be handled.
const BROKER_QUEUE: usize = 4096;
/// Requests waiting in a room's mailbox before senders wait.
const MAILBOX: usize = 4096;
/// How long a room whose store failed to load waits before trying again.
const RELOAD_AFTER: Duration = Duration::from_secs(1);
/// How long a read of the cluster's presence serves join replies.
const REMOTE_FOR: Duration = Duration::from_secs(1);

/// What the room actors of a node share: limits, ports, where to deliver, and the registry
/// an actor leaves when it stops. Owned by the node's [`Rooms`](crate::rooms::Rooms).
pub struct RoomsShared {
    /// Limits and windows.
    pub config: ChatConfig,
    /// Durable messages.
    pub store: Arc<dyn MessageStore>,
    /// Frames to and from the room's actors on other nodes.
    pub broker: Arc<dyn Broker>,
    /// Who is online on the other nodes (`None` on a single node: its rooms know everyone).
    pub presence: Option<Arc<dyn PresenceStore>>,
    /// The node's sessions by user, which room frames are delivered to.
    pub(crate) users: Arc<UserSessions>,
    /// The node's load: a message fanned out late counts as fan-out pressure.
    pub(crate) overload: Arc<Overload>,
    pub(crate) registry: Registry<RoomId, Room>,
    /// Room actors that have left the registry since the node started.
    pub(crate) forgotten: AtomicU64,
}

impl RoomsShared {
    /// Forgets the room's actor `addr` (it is stopping); a newer actor of the room stays.
    fn forget(&self, room: RoomId, addr: &Addr<Room>) {
        self.registry.remove_if_same(&room, addr);
        self.forgotten.fetch_add(1, Ordering::Relaxed);
    }
}

/// One room's actor.
pub struct Room {
    id: RoomId,
    chat: Arc<RoomsShared>,
    /// Tells this actor's broker frames from everyone else's.
    origin: u64,
    /// Sessions that joined, by user (connection state: kept across restarts).
    joined: HashMap<UserId, Vec<(u64, Outbound)>>,
    /// The newest seq delivered to the local members (kept across restarts, so a restart
    /// neither repeats nor skips a message).
    delivered: Option<u64>,
    /// When a session of this node last asked something of the room (join, send, history).
    last_request: Instant,
    /// Whether the broker's link to the other nodes is up (`None`: it cannot lose frames).
    link: Option<watch::Receiver<bool>>,
    /// Who was online over every node when last asked (`None` inside: asking failed); join
    /// replies reuse it for [`REMOTE_FOR`], so a crowd joining costs one read a second.
    remote: Option<(Instant, Option<Online>)>,
    state: State,
}

enum State {
    Loading,
    Missing,
    Failed,
    Ready(Box<Loaded>),
}

/// What a room knows from the store.
struct Loaded {
    info: RoomInfo,
    /// Stored members (private rooms and DMs).
    members: HashSet<UserId>,
    /// The newest delivered messages, contiguous, ending at `delivered`.
    recent: VecDeque<ChatMessage>,
    /// Committed messages that arrived ahead of a missing seq.
    pending: Reorder<Early>,
    /// Armed while a gap waits to close.
    gap_timer: Option<SpawnHandle>,
}

/// A room as read from the store: its row, stored members, newest messages.
type Snapshot = (RoomInfo, Vec<UserId>, Vec<ChatMessage>);

struct Early {
    message: ChatMessage,
    frame: ByteString,
    started: Option<Instant>,
}

impl Room {
    pub(crate) fn new(id: RoomId, chat: Arc<RoomsShared>) -> Room {
        let link = chat.broker.link();
        Room {
            id,
            chat,
            origin: rand::random(),
            joined: HashMap::new(),
            delivered: None,
            last_request: Instant::now(),
            link,
            remote: None,
            state: State::Loading,
        }
    }
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        let (tx, rx) = mpsc::channel(BROKER_QUEUE);
        ctx.add_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|frame| (frame, rx))
        }));
        let store = self.chat.store.clone();
        let broker = self.chat.broker.clone();
        let window = self.chat.config.catch_up_window as u64;
        let (room, origin) = (self.id, self.origin);
        // Subscribe before loading, so nothing committed elsewhere falls between the two.
        let load = async move {
            broker.subscribe(room, origin, tx).await;
            let Some(info) = store.room(room).await? else {
                return Ok(None);
            };
            let members = if info.private {
                store.members(room).await?
            } else {
                Vec::new()
            };
            let recent = store
                .range(room, info.last_seq.saturating_sub(window), info.last_seq)
                .await?;
            Ok::<_, ChatStoreError>(Some((info, members, recent)))
        };
        ctx.wait(
            load.into_actor(self)
                .map(|result, act, ctx| act.loaded(result, ctx)),
        );
        let idle_after = self.chat.config.idle_after;
        ctx.run_interval(idle_after / 4, move |act, ctx| {
            if act.joined.is_empty() && act.last_request.elapsed() >= idle_after {
                act.retire(ctx);
            }
        });
        if let Some(link) = self.link.clone() {
            // Frames published while the link was down never arrive: once it is back, read
            // them from the store; and check now and then, so that the last message of a
            // quiet room is never stranded (nothing later would reveal its gap).
            ctx.add_stream(futures_util::stream::unfold(link, |mut link| async move {
                link.changed().await.ok()?;
                let up = *link.borrow_and_update();
                Some((LinkChanged(up), link))
            }));
            let every = self.chat.config.resync_every;
            if !every.is_zero() {
                ctx.run_interval(every, |act, ctx| {
                    if !act.joined.is_empty() {
                        let catch_up = act.catch_up();
                        ctx.spawn(catch_up);
                    }
                });
            }
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.chat.broker.unsubscribe(self.id, self.origin);
    }
}

impl Supervised for Room {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        metrics::counter!(metric::ACTOR_RESTARTS, "kind" => "room").increment(1);
        tracing::warn!(
            room = self.id,
            "room actor restarting; reloading from the store"
        );
        self.state = State::Loading;
    }
}

impl Room {
    /// Stops a room nobody on this node uses any more: it leaves the registry (the next use
    /// starts a fresh actor that reloads from the store) and its broker subscription. Should
    /// a request already hold its address, the supervisor restarts it to serve that request;
    /// it then retires again once idle.
    fn retire(&mut self, ctx: &mut Context<Self>) {
        self.chat.forget(self.id, &ctx.address());
        metrics::counter!(metric::ROOM_ACTORS_RETIRED).increment(1);
        ctx.stop();
    }

    fn loaded(
        &mut self,
        result: Result<Option<Snapshot>, ChatStoreError>,
        ctx: &mut Context<Self>,
    ) {
        let (info, members, mut recent) = match result {
            Ok(Some(loaded)) => loaded,
            Ok(None) => {
                self.state = State::Missing;
                return;
            }
            Err(err) => {
                tracing::error!(room = self.id, %err, "loading room failed");
                self.state = State::Failed;
                ctx.run_later(RELOAD_AFTER, |_, ctx| ctx.stop());
                return;
            }
        };
        let last_seq = info.last_seq;
        // After a restart, members were sent up to `delivered`: keep that point and deliver
        // whatever committed meanwhile; on a first start, they were sent nothing before now.
        let delivered = self.delivered.unwrap_or(last_seq).min(last_seq);
        recent.retain(|m| m.seq <= delivered);
        self.delivered = Some(delivered);
        self.state = State::Ready(Box::new(Loaded {
            info,
            members: members.into_iter().collect(),
            recent: recent.into(),
            pending: Reorder::default(),
            gap_timer: None,
        }));
        if last_seq > delivered {
            self.fill(delivered, last_seq, ctx);
        }
    }

    fn ready(&mut self) -> Option<&mut Loaded> {
        match &mut self.state {
            State::Ready(loaded) => Some(loaded),
            _ => None,
        }
    }

    /// Checks that the room exists and `user` may use it. Private rooms not yet knowing the
    /// user ask the store (the member may have been added on another node) and retry `msg`.
    fn admit<M>(&mut self, msg: M, ctx: &mut Context<Self>) -> Option<M>
    where
        M: RoomRequest,
        Room: Handler<M>,
    {
        self.last_request = Instant::now();
        let user = msg.user();
        let loaded = match &self.state {
            State::Ready(loaded) => loaded,
            State::Missing => {
                msg.refuse(ErrorCode::NotFound, "no such room");
                return None;
            }
            State::Loading | State::Failed => {
                msg.refuse(ErrorCode::Unavailable, "the room is loading; retry");
                return None;
            }
        };
        if !loaded.info.private || loaded.members.contains(&user) {
            return Some(msg);
        }
        let store = self.chat.store.clone();
        let room = self.id;
        ctx.spawn(
            async move { store.is_member(room, user).await }
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(true) => {
                        if let Some(loaded) = act.ready() {
                            loaded.members.insert(user);
                            ctx.notify(msg);
                        } else {
                            msg.refuse(ErrorCode::Unavailable, "the room is loading; retry");
                        }
                    }
                    Ok(false) => msg.refuse(ErrorCode::Forbidden, "this room is private"),
                    Err(err) => msg.refuse(ErrorCode::Unavailable, &err.to_string()),
                }),
        );
        None
    }

    /// Delivers `frame` to the local recipients except `except`; returns how many sessions
    /// took it. Recipients are the joined sessions (each device that joined), plus every other
    /// device of a private room's stored members. A device that has not joined a public room
    /// gets nothing from it: one reconnecting gets the messages it missed from its join
    /// reply, once, and not also as pushes that raced ahead of the join.
    fn fan_out(&self, frame: &ByteString, except: Option<UserId>) -> usize {
        let mut sent = 0;
        for (user, sessions) in &self.joined {
            if Some(*user) != except {
                sent += sessions
                    .iter()
                    .filter(|(_, out)| out.send(frame.clone()))
                    .count();
            }
        }
        if let State::Ready(loaded) = &self.state {
            for user in &loaded.members {
                if Some(*user) == except {
                    continue;
                }
                let joined = self.joined.get(user).map_or(&[][..], Vec::as_slice);
                sent += self.chat.users.deliver_unless(*user, frame, |conn| {
                    joined.iter().any(|(id, _)| *id == conn)
                });
            }
        }
        sent
    }

    /// Tells the room's members (here and on other nodes) that `user` came or went, unless
    /// the room is too large for presence (see [`crate::ChatConfig::presence_max_online`]).
    fn presence(&self, user: UserId, state: PresenceState) {
        if self.joined.len() > self.chat.config.presence_max_online {
            metrics::counter!(metric::PRESENCE_SUPPRESSED).increment(1);
            return;
        }
        let frame = ByteString::from(reply::push(&Push::Presence {
            room: self.id,
            user,
            state,
        }));
        self.chat.broker.publish(
            self.id,
            BrokerFrame {
                origin: self.origin,
                seq: 0,
                frame: frame.clone(),
            },
        );
        self.fan_out(&frame, Some(user));
    }
}

/// Encodes a message's `room.message` push, once for all its recipients.
fn encode(message: &ChatMessage) -> ByteString {
    ByteString::from(reply::push(&Push::RoomMessage(message.clone())))
}

impl Guarded for Room {
    fn identity(&self) -> (&'static str, i64) {
        ("room", self.id)
    }
}

/// What a chat request dropped unanswered (the room went away or is restarting) tells the
/// client.
pub(crate) const ROOM_RESTARTING: &str =
    "the room is restarting; retry (sends are idempotent on client_msg_id)";

/// The store's answer to a [`Post`].
#[derive(Message)]
#[rtype(result = "()")]
struct Committed {
    result: Result<Appended, ChatStoreError>,
    started: Instant,
    dm: bool,
    reply: OnceReply,
}

impl Handler<Join> for Room {
    type Result = ();

    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) {
        // With the broker's link down, the window in memory may lack messages committed on
        // other nodes: bring it up to date from the store before answering (other requests
        // wait meanwhile, so nothing is delivered twice or out of order).
        if self.link_down() {
            let catch_up = self.catch_up();
            ctx.wait(catch_up.map(move |(), act, ctx| act.join_with_presence(msg, ctx)));
            return;
        }
        self.join_with_presence(msg, ctx);
    }
}

impl Room {
    /// Joins once the cluster's presence is known (read again when older than
    /// [`REMOTE_FOR`]), so the reply's `online` names members on every node.
    fn join_with_presence(&mut self, msg: Join, ctx: &mut Context<Self>) {
        let fresh = self
            .remote
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < REMOTE_FOR);
        let Some(presence) = self.chat.presence.clone().filter(|_| !fresh) else {
            return self.join(msg, ctx);
        };
        let (room, cap) = (self.id, self.chat.config.presence_max_online.max(1));
        ctx.wait(
            async move { presence.online(room, cap).await }
                .into_actor(self)
                .map(move |online, act, ctx| {
                    if let Err(err) = &online {
                        tracing::warn!(room, %err, "reading the cluster's presence failed");
                    }
                    act.remote = Some((Instant::now(), online.ok()));
                    act.join(msg, ctx);
                }),
        );
    }

    /// The join reply's `online` and `online_count` (see [`online::online`]).
    fn online(&self, joiner: UserId) -> (Vec<UserId>, usize) {
        let cap = self.chat.config.presence_max_online.max(1);
        let remote = self.remote.as_ref().and_then(|(_, online)| online.as_ref());
        online::online(joiner, self.joined.keys().copied(), remote, cap)
    }

    fn join(&mut self, msg: Join, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, ctx| {
            let Some(msg) = act.admit(msg, ctx) else {
                return;
            };
            let is_new = !act.joined.contains_key(&msg.user);
            let public = act.ready().is_some_and(|l| !l.info.private);
            if is_new && public && act.joined.len() >= act.chat.config.members_per_room {
                return msg.refuse(ErrorCode::LimitReached, "the room is full");
            }
            let sessions = act.joined.entry(msg.user).or_default();
            if !sessions.iter().any(|(id, _)| *id == msg.conn_id) {
                sessions.push((msg.conn_id, msg.out));
            }
            if is_new {
                if let Some(presence) = &act.chat.presence {
                    presence.joined(act.id, msg.user);
                }
                act.presence(msg.user, PresenceState::Joined);
            }
            let last_seq = act.delivered.unwrap_or(0);
            let (online, online_count) = act.online(msg.user);
            let room = act.id;
            let Some(loaded) = act.ready() else { return };
            let (missed, truncated, caught_up) = match msg.since {
                None => (Vec::new(), false, true),
                Some(since) if since >= last_seq => (Vec::new(), false, since == last_seq),
                Some(since) => {
                    let oldest = loaded.recent.front().map_or(last_seq + 1, |m| m.seq);
                    let complete = since + 1 >= oldest;
                    let missed = loaded
                        .recent
                        .iter()
                        .filter(|m| m.seq > since)
                        .cloned()
                        .collect();
                    (missed, !complete, complete)
                }
            };
            let ok = RoomJoinOk {
                room,
                last_seq,
                epoch: loaded.info.epoch,
                missed,
                truncated,
                caught_up,
                online,
                online_count,
            };
            let _ = msg.joined.send(true);
            msg.reply.ok(&ok);
        });
    }
}

impl Handler<Leave> for Room {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, _ctx| {
            let mut gone = false;
            if let Some(sessions) = act.joined.get_mut(&msg.user) {
                sessions.retain(|(id, _)| *id != msg.conn_id);
                gone = sessions.is_empty();
            }
            if gone {
                act.joined.remove(&msg.user);
                if let Some(presence) = &act.chat.presence {
                    presence.left(act.id, msg.user);
                }
                act.presence(msg.user, PresenceState::Left);
            }
            if let Some(reply) = msg.reply {
                reply.ok(&RoomLeaveOk {});
            }
        });
    }
}

impl Handler<Post> for Room {
    type Result = ();

    fn handle(&mut self, msg: Post, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, ctx| {
            let Some(msg) = act.admit(msg, ctx) else {
                return;
            };
            let store = act.chat.store.clone();
            let addr = ctx.address();
            let new = NewMessage {
                room: act.id,
                from: msg.user,
                client_msg_id: msg.client_msg_id,
                text: msg.text,
                ts: now_ms(),
            };
            let (started, dm, reply) = (msg.started, msg.dm, msg.reply);
            // Not tied to the actor's context: a restart must not lose a commit's answer.
            actix::spawn(async move {
                let (result, late) = match store.append(new).await {
                    Err(ChatStoreError::Undecided { cause, outcome }) => {
                        (Err(ChatStoreError::Unavailable(cause)), Some(outcome))
                    }
                    result => (result, None),
                };
                addr.do_send(Committed {
                    result,
                    started,
                    dm,
                    reply,
                });
                // Its sender was told `unavailable` and may never retry: should it commit
                // after all, the room delivers it like any other.
                if let Some(message) = match late {
                    Some(late) => late.stored().await,
                    None => None,
                } {
                    addr.do_send(CommittedLate(message));
                }
            });
        });
    }
}

impl Handler<Committed> for Room {
    type Result = ();

    fn handle(&mut self, msg: Committed, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, ctx| {
            let (message, fresh) = match msg.result {
                Ok(Appended::Stored(message)) => (message, true),
                Ok(Appended::Duplicate(message)) => (message, false),
                Err(ChatStoreError::NotFound) => {
                    return msg.reply.error(ErrorCode::NotFound, "no such room");
                }
                Err(err) => return msg.reply.error(ErrorCode::Unavailable, &err.to_string()),
            };
            if msg.dm {
                msg.reply.ok(&DmSendOk {
                    room: act.id,
                    seq: message.seq,
                    ts: message.ts,
                });
            } else {
                msg.reply.ok(&RoomSendOk {
                    seq: message.seq,
                    ts: message.ts,
                });
            }
            if fresh {
                metrics::counter!(metric::MESSAGES_STORED).increment(1);
                act.announce(message, Some(msg.started), ctx);
            } else if message.seq > act.delivered.unwrap_or(0) {
                // A retry found a message this room has not delivered: its first append's
                // answer was lost (it committed past its deadline, or on a node that died
                // before telling anyone). Nothing is acknowledged that the room does not
                // deliver, so it is news here and, for all this node knows, everywhere.
                act.announce(message, None, ctx);
            }
        });
    }
}

/// A message whose append was answered `unavailable` at the store's deadline and committed
/// afterwards.
#[derive(Message)]
#[rtype(result = "()")]
struct CommittedLate(ChatMessage);

impl Handler<CommittedLate> for Room {
    type Result = ();

    fn handle(&mut self, CommittedLate(message): CommittedLate, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, ctx| {
            metrics::counter!(metric::MESSAGES_STORED).increment(1);
            act.announce(message, None, ctx);
        });
    }
}

impl Room {
    /// Publishes a committed message to the room's actors on other nodes and takes it into
    /// this one's delivery order (an actor that already has it drops it).
    fn announce(
        &mut self,
        message: ChatMessage,
        started: Option<Instant>,
        ctx: &mut Context<Self>,
    ) {
        let frame = encode(&message);
        self.chat.broker.publish(
            self.id,
            BrokerFrame {
                origin: self.origin,
                seq: message.seq,
                frame: frame.clone(),
            },
        );
        self.offer(message, frame, started, ctx);
    }
}

impl Handler<History> for Room {
    type Result = ();

    fn handle(&mut self, msg: History, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, ctx| {
            let Some(msg) = act.admit(msg, ctx) else {
                return;
            };
            let limit = msg.limit.clamp(1, act.chat.config.history_page_max.max(1));
            let end = act.delivered.unwrap_or(0) + 1;
            let before = msg.before.map_or(end, |b| b.min(end));
            let low = before.saturating_sub(u64::from(limit)).max(1);
            let Some(loaded) = act.ready() else { return };
            if loaded.recent.front().is_some_and(|m| m.seq <= low) || before <= 1 {
                let messages = loaded
                    .recent
                    .iter()
                    .filter(|m| m.seq >= low && m.seq < before)
                    .cloned()
                    .collect();
                return msg.reply.ok(&RoomHistoryOk { messages });
            }
            let store = act.chat.store.clone();
            let room = act.id;
            actix::spawn(async move {
                match store.page(room, before, limit).await {
                    Ok(messages) => msg.reply.ok(&RoomHistoryOk { messages }),
                    Err(err) => msg.reply.error(ErrorCode::Unavailable, &err.to_string()),
                }
            });
        });
    }
}

impl Handler<MemberAdded> for Room {
    type Result = ();

    fn handle(&mut self, MemberAdded(user): MemberAdded, _ctx: &mut Context<Self>) {
        if let Some(loaded) = self.ready() {
            loaded.members.insert(user);
        }
    }
}

impl StreamHandler<BrokerFrame> for Room {
    fn handle(&mut self, frame: BrokerFrame, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, ctx| {
            if frame.seq == 0 {
                act.fan_out(&frame.frame, None);
                return;
            }
            match serde_json::from_str::<Push>(&frame.frame) {
                Ok(Push::RoomMessage(message)) if message.seq == frame.seq => {
                    act.offer(message, frame.frame, None, ctx)
                }
                _ => tracing::warn!(room = act.id, "ignoring a malformed broker frame"),
            }
        });
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        // The subscription was replaced (a restart re-subscribes): nothing to do.
    }
}

/// The broker's link went down (`false`) or came back (`true`).
struct LinkChanged(bool);

impl StreamHandler<LinkChanged> for Room {
    fn handle(&mut self, LinkChanged(up): LinkChanged, ctx: &mut Context<Self>) {
        if up {
            let catch_up = self.catch_up();
            ctx.spawn(catch_up);
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        // The broker is gone (shutdown): nothing more to follow.
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<Crash> for Room {
    type Result = ();

    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        guarded(self, ctx, |act, _| {
            panic!("fault injected into room {}", act.id);
        });
    }
}

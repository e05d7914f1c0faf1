//! Chat ports: the durable message store (with group commit behind `append`) and the broker
//! that carries pre-encoded room frames between nodes.

use async_trait::async_trait;
use bytestring::ByteString;
use corral_protocol::ops::{ChatMessage, RoomId};
use corral_protocol::{EpochMs, UserId};
use tokio::sync::{mpsc, oneshot, watch};

/// A room as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// Its id.
    pub id: RoomId,
    /// Whether only its stored members may read and write it.
    pub private: bool,
    /// Whether it is a two-member direct-message room.
    pub dm: bool,
    /// Who created it.
    pub owner: UserId,
    /// The history epoch (changes only when the history is reset).
    pub epoch: i64,
    /// The newest committed message's seq (0 when empty).
    pub last_seq: u64,
}

/// A message to store; the store assigns its `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The room.
    pub room: RoomId,
    /// The sender.
    pub from: UserId,
    /// The sender's idempotency key.
    pub client_msg_id: String,
    /// Text.
    pub text: String,
    /// When the server accepted it.
    pub ts: EpochMs,
}

/// The outcome of an append, known once its transaction committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored now, as this message.
    Stored(ChatMessage),
    /// The same sender already stored this `client_msg_id` in this room: the original.
    Duplicate(ChatMessage),
}

/// Why the message store failed.
#[derive(Debug, thiserror::Error)]
pub enum ChatStoreError {
    /// The room (or the other user of a DM) does not exist.
    #[error("not found")]
    NotFound,
    /// The store is down or overloaded; nothing was stored.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An append was not answered within the store's deadline, but it was queued and may
    /// still commit: `outcome` tells once its transaction ends.
    #[error("store did not answer in time: {cause}")]
    Undecided {
        /// Why it was not answered in time.
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
        /// The append's outcome, once known.
        outcome: LateOutcome,
    },
}

/// The outcome of an append answered [`ChatStoreError::Undecided`], once its transaction
/// ends: the room then delivers a message that committed after its sender was told
/// `unavailable` (the sender may never retry it).
#[derive(Debug)]
pub struct LateOutcome(oneshot::Receiver<Result<Appended, ChatStoreError>>);

impl LateOutcome {
    /// The outcome `outcome` will carry.
    pub fn new(outcome: oneshot::Receiver<Result<Appended, ChatStoreError>>) -> LateOutcome {
        LateOutcome(outcome)
    }

    /// The message, if this append stored it (a duplicate, a failure or a store that stopped:
    /// `None`).
    pub async fn stored(self) -> Option<ChatMessage> {
        match self.0.await {
            Ok(Ok(Appended::Stored(message))) => Some(message),
            _ => None,
        }
    }
}

/// Durable chat storage.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// The room, if it exists.
    async fn room(&self, room: RoomId) -> Result<Option<RoomInfo>, ChatStoreError>;

    /// A private room's stored members.
    async fn members(&self, room: RoomId) -> Result<Vec<UserId>, ChatStoreError>;

    /// Whether `user` is a stored member of `room`.
    async fn is_member(&self, room: RoomId, user: UserId) -> Result<bool, ChatStoreError>;

    /// Stores a message and assigns its seq, idempotently on (room, sender, client_msg_id).
    /// Resolves only after the transaction holding it committed; many concurrent appends
    /// share one transaction (group commit). Past the store's deadline it resolves
    /// [`ChatStoreError::Undecided`] if the append may still commit.
    async fn append(&self, message: NewMessage) -> Result<Appended, ChatStoreError>;

    /// Messages with `after < seq <= until`, oldest first.
    async fn range(
        &self,
        room: RoomId,
        after: u64,
        until: u64,
    ) -> Result<Vec<ChatMessage>, ChatStoreError>;

    /// The newest `limit` messages with `seq < before`, oldest first.
    async fn page(
        &self,
        room: RoomId,
        before: u64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, ChatStoreError>;

    /// The direct-message room of `a` and `b`, created (with both as members) on first use.
    async fn open_dm(&self, a: UserId, b: UserId) -> Result<RoomId, ChatStoreError>;
}

/// A pre-encoded room frame travelling between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerFrame {
    /// The publishing room actor (its own frames are not handed back to it).
    pub origin: u64,
    /// The message seq the frame carries, or 0 for frames outside the message order
    /// (presence).
    pub seq: u64,
    /// The frame, exactly as sent to clients.
    pub frame: ByteString,
}

/// Publish/subscribe of room frames across room actors (on this node and on others).
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes `frame` on `room`'s topic; never waits. A frame lost on the way is repaired
    /// by the receivers, who notice the seq gap and read the store.
    fn publish(&self, room: RoomId, frame: BrokerFrame);

    /// Hands frames published on `room` by others than `origin` to `sink` (bounded; a full
    /// sink drops frames, repaired the same way). Resolves once the subscription is live, and
    /// replaces an earlier one of the same `origin`.
    async fn subscribe(&self, room: RoomId, origin: u64, sink: mpsc::Sender<BrokerFrame>);

    /// Stops handing `room`'s frames to `origin`.
    fn unsubscribe(&self, room: RoomId, origin: u64);

    /// For a broker that can lose frames while its link is down (pub/sub between nodes):
    /// whether the link is up. It turns false when the link is lost and true once frames flow
    /// again; what was published in between never arrives, so rooms read it from the store.
    /// `None` for a broker that cannot lose a frame this way.
    fn link(&self) -> Option<watch::Receiver<bool>> {
        None
    }
}

/// Who is online in a room, up to a cap, over every node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Online {
    /// Users online (each once), at most the cap asked for.
    pub users: Vec<UserId>,
    /// How many are online: exact when every one is in `users`, otherwise an upper bound
    /// (a user with sessions on several nodes may count once per node).
    pub count: usize,
}

/// Room presence shared by the nodes of a cluster (a room's actor knows only its own node's
/// sessions). Entries of a node that dies expire by themselves.
#[async_trait]
pub trait PresenceStore: Send + Sync + 'static {
    /// `user` has a session in `room` on this node (kept alive until [`PresenceStore::left`]).
    fn joined(&self, room: RoomId, user: UserId);

    /// `user` has no session in `room` on this node any more.
    fn left(&self, room: RoomId, user: UserId);

    /// Up to `limit` users online in `room` on any node, and how many there are.
    async fn online(&self, room: RoomId, limit: usize) -> Result<Online, ChatStoreError>;
}

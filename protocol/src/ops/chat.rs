//! Chat ops: rooms and direct messages.

use serde::{Deserialize, Serialize};

use crate::limits::DEFAULT_HISTORY_PAGE;
use crate::{EpochMs, UserId};

/// Room identifiers.
pub type RoomId = i64;

/// `room.join {room, since?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomJoinParams {
    /// The room.
    pub room: RoomId,
    /// The last `seq` the client saw; missed messages after it come in the reply.
    #[serde(default)]
    pub since: Option<u64>,
}

/// `room.leave {room}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRef {
    /// The room.
    pub room: RoomId,
}

/// `room.send {room, text, client_msg_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSendParams {
    /// The room.
    pub room: RoomId,
    /// Message text.
    pub text: String,
    /// The client's idempotency key for this message.
    pub client_msg_id: String,
}

/// `room.history {room, before_seq?, limit?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomHistoryParams {
    /// The room.
    pub room: RoomId,
    /// Page back from (excluding) this seq; the newest messages when absent.
    #[serde(default)]
    pub before_seq: Option<u64>,
    /// Page size ([`DEFAULT_HISTORY_PAGE`] when absent; clamped to the server's maximum).
    #[serde(default = "default_history_page")]
    pub limit: u32,
}

fn default_history_page() -> u32 {
    DEFAULT_HISTORY_PAGE
}

/// `dm.send {to, text, client_msg_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmSendParams {
    /// The other user.
    pub to: UserId,
    /// Message text.
    pub text: String,
    /// The client's idempotency key for this message.
    pub client_msg_id: String,
}

/// One stored chat message, as pushed in `room.message` and listed in `missed[]` and
/// `messages[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// The room (for a DM, the pair's private room).
    pub room: RoomId,
    /// Position in the room: gap-free and increasing from 1.
    pub seq: u64,
    /// The sender.
    pub from: UserId,
    /// Message text.
    pub text: String,
    /// When the server accepted it.
    pub ts: EpochMs,
    /// The sender's idempotency key (lets the sender's devices match their own messages).
    pub client_msg_id: String,
}

/// Reply to `room.join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomJoinOk {
    /// The room.
    pub room: RoomId,
    /// The newest `seq` delivered in the room when the join took effect; every later message
    /// comes as a `room.message` push.
    pub last_seq: u64,
    /// The room's history epoch: it changes only when the room's history was reset, so a
    /// client seeing a new epoch drops what it cached instead of treating it as a gap.
    pub epoch: i64,
    /// Messages after `since` up to `last_seq`, oldest first (at most the catch-up window).
    pub missed: Vec<ChatMessage>,
    /// More messages were missed than the catch-up window holds: `missed` holds the newest
    /// ones and `room.history` with `before_seq = missed[0].seq` pages back through the rest.
    pub truncated: bool,
    /// With `missed` applied the client holds every message up to `last_seq`. False when
    /// `truncated`, or when `since` is ahead of `last_seq` (a reset history: compare `epoch`).
    pub caught_up: bool,
    /// Users with a session in the room on this node, the joining user included; at most
    /// the node's `chat.presence_max_online` of them (a larger room sends no presence).
    pub online: Vec<UserId>,
    /// How many users have a session in the room on this node (`online` may list fewer).
    #[serde(default)]
    pub online_count: usize,
}

/// Reply to `room.leave`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomLeaveOk {}

/// Reply to `room.send`, sent once the message is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSendOk {
    /// The message's position in the room (the original one when `client_msg_id` repeats).
    pub seq: u64,
    /// When the server accepted it.
    pub ts: EpochMs,
}

/// Reply to `room.history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomHistoryOk {
    /// Up to `limit` messages before `before_seq`, oldest first.
    pub messages: Vec<ChatMessage>,
}

/// Reply to `dm.send`, sent once the message is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmSendOk {
    /// The pair's private room (join it or page its history like any room).
    pub room: RoomId,
    /// The message's position in that room.
    pub seq: u64,
    /// When the server accepted it.
    pub ts: EpochMs,
}

/// `presence.state`: whether a user came or went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceState {
    /// The user's first session joined the room.
    Joined,
    /// The user's last session left the room (or disconnected).
    Left,
}

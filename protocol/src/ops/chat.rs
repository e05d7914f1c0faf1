//! Chat ops: rooms and direct messages.

use serde::{Deserialize, Serialize};

use crate::UserId;

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

/// `room.history {room, before_seq?, limit}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomHistoryParams {
    /// The room.
    pub room: RoomId,
    /// Page back from (excluding) this seq; the newest messages when absent.
    #[serde(default)]
    pub before_seq: Option<u64>,
    /// Page size.
    pub limit: u32,
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

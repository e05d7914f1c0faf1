//! The requests a room actor answers (sent by sessions) and the notices it takes, as plain
//! messages: each carries its own exactly-once reply, so a room that refuses one, or drops it
//! in a restart, still answers.

use std::time::Instant;

use actix::prelude::*;
use corral_protocol::{ErrorCode, UserId};

use crate::outbound::Outbound;
use crate::replier::OnceReply;

/// A request answered by the room.
pub(crate) trait RoomRequest: Message<Result = ()> + Send + 'static {
    /// Who asks.
    fn user(&self) -> UserId;
    /// Answers with an error.
    fn refuse(self, code: ErrorCode, message: &str);
}

/// `room.join`: a session enters the room.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Join {
    pub user: UserId,
    pub conn_id: u64,
    pub out: Outbound,
    pub since: Option<u64>,
    pub reply: OnceReply,
    /// Told whether the session joined (it counts its rooms).
    pub joined: tokio::sync::oneshot::Sender<bool>,
}

/// `room.leave`, or a joined session went away (no reply then).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Leave {
    pub user: UserId,
    pub conn_id: u64,
    pub reply: Option<OnceReply>,
}

/// `room.send` / `dm.send`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Post {
    pub user: UserId,
    pub text: String,
    pub client_msg_id: String,
    pub started: Instant,
    /// Answer `dm.send`'s shape (with the room id).
    pub dm: bool,
    pub reply: OnceReply,
}

/// `room.history`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct History {
    pub user: UserId,
    pub before: Option<u64>,
    pub limit: u32,
    pub reply: OnceReply,
}

/// A stored member was added to this private room.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct MemberAdded(pub UserId);

/// Makes the actor panic (test-only: exercises supervision).
#[cfg(feature = "fault-injection")]
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Crash;

impl RoomRequest for Join {
    fn user(&self) -> UserId {
        self.user
    }
    fn refuse(self, code: ErrorCode, message: &str) {
        let _ = self.joined.send(false);
        self.reply.error(code, message);
    }
}

impl RoomRequest for Post {
    fn user(&self) -> UserId {
        self.user
    }
    fn refuse(self, code: ErrorCode, message: &str) {
        self.reply.error(code, message);
    }
}

impl RoomRequest for History {
    fn user(&self) -> UserId {
        self.user
    }
    fn refuse(self, code: ErrorCode, message: &str) {
        self.reply.error(code, message);
    }
}

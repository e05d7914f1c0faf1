//! A chat request's pending reply that cannot be lost: dropped unanswered (the room's mailbox
//! was closed, or a handler panicked and the actor is restarting), it answers `unavailable`,
//! so every request still gets exactly one reply.

use corral_protocol::{ErrorBody, ErrorCode};
use serde::Serialize;

use crate::replier::Replier;

/// The reply to one chat request, travelling with it to the room actor.
pub struct ChatReply(Option<Replier>);

impl ChatReply {
    /// Wraps a session's replier.
    pub fn new(replier: Replier) -> Self {
        ChatReply(Some(replier))
    }

    /// Sends `{"re", "ok"}`.
    pub fn ok<T: Serialize>(mut self, ok: &T) {
        if let Some(replier) = self.0.take() {
            replier.ok(ok);
        }
    }

    /// Sends `{"re", "error"}`.
    pub fn error(mut self, code: ErrorCode, message: &str) {
        if let Some(replier) = self.0.take() {
            replier.error(code, message);
        }
    }
}

impl ChatReply {
    /// Sends `{"re", "error"}` for an error already in the protocol's shape.
    pub fn fail(self, error: ErrorBody) {
        self.error(error.code, &error.message);
    }
}

impl Drop for ChatReply {
    fn drop(&mut self) {
        if let Some(replier) = self.0.take() {
            replier.error(
                ErrorCode::Unavailable,
                "the room is restarting; retry (sends are idempotent on client_msg_id)",
            );
        }
    }
}

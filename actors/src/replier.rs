//! Answers one request exactly once, recording the reply metrics. [`Replier`] is movable into
//! the future that computes an asynchronous reply; [`OnceReply`] wraps it for a request that
//! travels to an actor, so that a reply dropped unanswered (the mailbox closed, a handler
//! panicked and the actor is restarting) still answers, with `unavailable`.

use std::time::Instant;

use bytestring::ByteString;
use corral_protocol::{ErrorBody, ErrorCode, reply};
use serde::Serialize;

use crate::metric_catalogue as metric;
use crate::outbound::Outbound;

/// The pending reply to one request.
pub struct Replier {
    id: Option<u64>,
    op: &'static str,
    started: Instant,
    out: Outbound,
}

impl Replier {
    /// A reply to request `id` (op `op`, received at `started`) on `out`.
    pub fn new(id: Option<u64>, op: &'static str, started: Instant, out: Outbound) -> Self {
        Replier {
            id,
            op,
            started,
            out,
        }
    }

    /// Sends `{"re", "ok"}`.
    pub fn ok<T: Serialize>(self, ok: &T) {
        let text = match self.id {
            Some(id) => reply::ok(id, ok),
            None => reply::error(None, ErrorCode::Internal, "reply without request id"),
        };
        self.finish(text, "ok");
    }

    /// Sends `{"re", "error"}`.
    pub fn error(self, code: ErrorCode, message: &str) {
        let text = reply::error(self.id, code, message);
        self.finish(text, code.as_str());
    }

    /// Sends `{"re", "error"}` for an error already in the protocol's shape (its retry hint
    /// included).
    pub fn fail(self, error: ErrorBody) {
        let text = reply::failure(self.id, &error);
        self.finish(text, error.code.as_str());
    }

    fn finish(self, text: String, outcome: &'static str) {
        let op = self.op;
        metrics::counter!(metric::FRAMES_OUT, "kind" => "reply", "op" => op).increment(1);
        metrics::counter!(metric::REPLIES, "op" => op, "outcome" => outcome).increment(1);
        metrics::histogram!(metric::REPLY_LATENCY, "op" => op)
            .record(self.started.elapsed().as_secs_f64());
        // The reply lane: an answer overtakes the pushes already queued for the connection.
        self.out.reply(ByteString::from(text));
    }
}

/// A pending reply that cannot be lost: dropped unanswered, it answers `unavailable` with the
/// message it was made with, so every request still gets exactly one reply. The one helper for
/// requests answered by an actor (rooms, activities).
pub struct OnceReply {
    replier: Option<Replier>,
    /// What a dropped reply tells the client (how to retry).
    on_drop: &'static str,
}

impl OnceReply {
    /// Wraps a session's replier; `on_drop` is the `unavailable` message if it is dropped.
    pub fn new(replier: Replier, on_drop: &'static str) -> Self {
        OnceReply {
            replier: Some(replier),
            on_drop,
        }
    }

    /// Sends `{"re", "ok"}`.
    pub fn ok<T: Serialize>(mut self, ok: &T) {
        if let Some(replier) = self.replier.take() {
            replier.ok(ok);
        }
    }

    /// Sends `{"re", "error"}`.
    pub fn error(mut self, code: ErrorCode, message: &str) {
        if let Some(replier) = self.replier.take() {
            replier.error(code, message);
        }
    }

    /// Sends `{"re", "error"}` for an error already in the protocol's shape.
    pub fn fail(mut self, error: ErrorBody) {
        if let Some(replier) = self.replier.take() {
            replier.fail(error);
        }
    }
}

impl Drop for OnceReply {
    fn drop(&mut self) {
        if let Some(replier) = self.replier.take() {
            replier.error(ErrorCode::Unavailable, self.on_drop);
        }
    }
}

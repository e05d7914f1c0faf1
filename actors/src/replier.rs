//! Answers one request exactly once, recording the reply metrics. Movable into the future
//! that computes an asynchronous reply.

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

    /// Sends `{"re", "error"}` for an error already in the protocol's shape.
    pub fn fail(self, error: ErrorBody) {
        self.error(error.code, &error.message);
    }

    fn finish(self, text: String, outcome: &'static str) {
        let op = self.op;
        metrics::counter!(metric::FRAMES_OUT, "kind" => "reply", "op" => op).increment(1);
        metrics::counter!(metric::REPLIES, "op" => op, "outcome" => outcome).increment(1);
        metrics::histogram!(metric::REPLY_LATENCY, "op" => op)
            .record(self.started.elapsed().as_secs_f64());
        self.out.send(ByteString::from(text));
    }
}

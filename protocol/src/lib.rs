//! Corral protocol v1: every frame that crosses a Corral WebSocket, the error codes and the
//! protocol limits.
//!
//! This crate does no I/O and knows nothing of actors or storage: the server, the load
//! generator and the tests all speak through these types. `README.md` beside this crate is the
//! client developer's manual, with a JSON example of every frame.
//!
//! Frames are JSON text:
//! - request: `{"id": <u64>, "op": "<name>", ...params}` ([`Request`], decoded by [`decode_request`]);
//! - reply: `{"re": <id>, "ok": {...}}` or `{"re": <id>, "error": {"code", "message"}}` ([`reply`]);
//! - push: `{"ev": "<name>", ...}` ([`Push`]).

pub mod envelope;
pub mod error;
pub mod limits;
pub mod ops;
pub mod push;
pub mod rules;

pub use envelope::{DecodeError, Request, ServerFrame, decode_request, reply};
pub use error::{ErrorBody, ErrorCode};
pub use ops::Op;
pub use push::Push;

/// The WebSocket subprotocol a client must offer.
pub const SUBPROTOCOL: &str = "corral.v1";

/// User identifiers (database ids).
pub type UserId = i64;

/// Milliseconds since the Unix epoch, the unit of every time on the wire.
pub type EpochMs = i64;

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An app user: chat, feeds, claims.
    User,
    /// A merchant: also runs promotions and a catalogue of animals.
    Merchant,
    /// An operator: everything, plus approvals and other users' data.
    Admin,
}

impl Role {
    /// The role's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Merchant => "merchant",
            Role::Admin => "admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "merchant" => Some(Role::Merchant),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

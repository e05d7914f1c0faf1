//! Protocol-level limits and their defaults. Servers may configure tighter or looser values;
//! these are what a client can expect from a default Corral.

/// Largest frame a client may send, in bytes (the connection is closed above it).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;

/// Longest chat message or post text, in characters.
pub const DEFAULT_MAX_TEXT_CHARS: usize = 4000;

/// Longest `client_msg_id` / claim `key`, in bytes.
pub const MAX_CLIENT_KEY_BYTES: usize = 128;

/// Messages in a `room.history` page when the request gives no `limit` (a server clamps any
/// `limit` to its `chat.history_page_max`, 200 by default).
pub const DEFAULT_HISTORY_PAGE: u32 = 50;

/// WebSocket close codes Corral uses, besides the standard ones.
pub mod close {
    /// Normal close (RFC 6455).
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down or draining; a `server.going_away` push came first.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame was not text (binary frames are not part of protocol v1).
    pub const UNSUPPORTED: u16 = 1003;
    /// Policy violation: no `auth` before the timeout, or a hostile pattern.
    pub const POLICY: u16 = 1008;
    /// A text frame that is not valid UTF-8 (RFC 6455).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A frame over the configured size limit.
    pub const TOO_LARGE: u16 = 1009;
    /// The node is overloaded; try again later (RFC 6455). Like 4008, its reason is
    /// `{"retry_after_ms":N}`.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The client did not read its frames fast enough (slow consumer). The reason is
    /// `{"retry_after_ms":N}`: reconnect no sooner than that.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The client missed its heartbeats.
    pub const IDLE: u16 = 4000;
}

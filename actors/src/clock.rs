//! The server clock. Every time on the wire and every promotion decision uses it, never a
//! client's clock.

use std::time::{SystemTime, UNIX_EPOCH};

use corral_protocol::EpochMs;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> EpochMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as EpochMs)
        .unwrap_or(0)
}

//! Times a client gives the API (`starts_at`, `ends_at`, the webhook's `X-Corral-Timestamp`)
//! are milliseconds since the Unix epoch. A value in seconds is the commonest mistake, and the
//! checks it fails ("must be in the future") do not say why; this says it first.

use corral_protocol::EpochMs;

use crate::http::ApiError;

/// Below this a positive time is taken for seconds: 10^11 ms is March 1973, while 10^11 s is
/// the year 5138, so no date a client means falls on the wrong side.
const SECONDS_BELOW: EpochMs = 100_000_000_000;

/// Whether `value` looks like seconds since the epoch rather than milliseconds.
pub fn looks_like_seconds(value: EpochMs) -> bool {
    (1..SECONDS_BELOW).contains(&value)
}

/// Refuses `value` for `field` when it looks like seconds, saying what was meant.
pub fn require_ms(field: &str, value: EpochMs) -> Result<EpochMs, ApiError> {
    if looks_like_seconds(value) {
        return Err(ApiError::bad_request(format!(
            "{field} is {value}, which looks like seconds: times are milliseconds since the \
             Unix epoch (did you mean {}?)",
            value.saturating_mul(1000)
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_told_apart_from_milliseconds() {
        // 2026-11-12 in seconds and in milliseconds.
        assert!(looks_like_seconds(1_796_000_000));
        assert!(!looks_like_seconds(1_796_000_000_000));
        // Zero and negative times are not seconds: the later checks refuse them.
        assert!(!looks_like_seconds(0));
        assert!(!looks_like_seconds(-5));
        let err = require_ms("starts_at", 1_796_000_000).err();
        let message = err.map(|e| e.error.message).unwrap_or_default();
        assert!(
            message.contains("starts_at")
                && message.contains("milliseconds")
                && message.contains("1796000000000"),
            "{message}"
        );
        assert_eq!(
            require_ms("ends_at", 1_796_000_000_000).ok(),
            Some(1_796_000_000_000)
        );
    }
}

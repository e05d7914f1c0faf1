//! The stable error codes shared by WebSocket replies and HTTP error bodies, and
//! [`ErrorBody`], the one error shape at the protocol boundary: every layer's refusals and
//! failures convert into it (typed errors keep their cause with `#[source]` and convert with
//! `From`), and it is what a WebSocket error reply and an HTTP error answer carry.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Every error a client can be told about. The wire names (snake_case) are stable: clients
/// switch on them, so a variant is never renamed; new ones may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not valid JSON, or a field is missing or has the wrong type.
    BadRequest,
    /// The `op` is not one this server knows.
    UnknownOp,
    /// No valid authentication yet, or a bad token.
    Unauthenticated,
    /// Authenticated, but not allowed to do this.
    Forbidden,
    /// The thing named does not exist.
    NotFound,
    /// Too many requests; slow down and retry later.
    RateLimited,
    /// A text, list or frame is over its limit.
    TooLarge,
    /// The promotion has not started yet (by the server's clock).
    NotStarted,
    /// The promotion is over.
    Ended,
    /// No slot left.
    SoldOut,
    /// The user reached a limit (per-user claims, rooms per connection, connections).
    LimitReached,
    /// The user is outside the promotion's audience or short of one of its requirements; the
    /// message names what is missing.
    NotEligible,
    /// The hold expired before it was confirmed.
    HoldExpired,
    /// The request conflicts with the current state (e.g. a taken username).
    Conflict,
    /// A dependency is down or the server is shedding load; retry later.
    Unavailable,
    /// A bug or an unexpected failure on the server.
    Internal,
}

impl ErrorCode {
    /// Every code, in documentation order.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::BadRequest,
        ErrorCode::UnknownOp,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::RateLimited,
        ErrorCode::TooLarge,
        ErrorCode::NotStarted,
        ErrorCode::Ended,
        ErrorCode::SoldOut,
        ErrorCode::LimitReached,
        ErrorCode::NotEligible,
        ErrorCode::HoldExpired,
        ErrorCode::Conflict,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The wire name, e.g. `"bad_request"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::NotStarted => "not_started",
            ErrorCode::Ended => "ended",
            ErrorCode::SoldOut => "sold_out",
            ErrorCode::LimitReached => "limit_reached",
            ErrorCode::NotEligible => "not_eligible",
            ErrorCode::HoldExpired => "hold_expired",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status the HTTP API answers this code with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::UnknownOp => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::RateLimited => 429,
            ErrorCode::TooLarge => 413,
            ErrorCode::NotStarted
            | ErrorCode::Ended
            | ErrorCode::SoldOut
            | ErrorCode::LimitReached
            | ErrorCode::NotEligible
            | ErrorCode::HoldExpired
            | ErrorCode::Conflict => 409,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` object of a reply or an HTTP error body: what a client is told when a request
/// gets no `ok`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[error("{code}: {message}")]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation; may change between versions.
    pub message: String,
    /// How long to wait before retrying, in milliseconds, when the server knows (a shed
    /// request, a node refusing for load). Absent otherwise, so other errors keep their shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorBody {
    /// Builds an error body.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// The same error telling the client to wait `wait` before retrying (whole milliseconds,
    /// rounded up so a hint is never shorter than meant).
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        let ms = wait.as_millis() + u128::from(!wait.subsec_nanos().is_multiple_of(1_000_000));
        self.retry_after_ms = Some(u64::try_from(ms).unwrap_or(u64::MAX));
        self
    }

    /// The retry hint as a duration, when there is one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_ms.map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap_or(ErrorCode::Internal);
            assert_eq!(back, code);
        }
    }

    #[test]
    fn retry_hint_is_serialized_only_when_set() {
        let plain = ErrorBody::new(ErrorCode::Unavailable, "down");
        let json = serde_json::to_string(&plain).unwrap_or_default();
        assert_eq!(json, r#"{"code":"unavailable","message":"down"}"#);
        let hinted = plain.with_retry_after(Duration::from_micros(2_300_001));
        let json = serde_json::to_string(&hinted).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"code":"unavailable","message":"down","retry_after_ms":2301}"#
        );
        let back: Option<ErrorBody> = serde_json::from_str(&json).ok();
        assert_eq!(
            back.and_then(|b| b.retry_after()),
            Some(Duration::from_millis(2_301))
        );
    }
}

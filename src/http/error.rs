//! HTTP error bodies: `{"error": {"code", "message"}}` with the protocol's stable codes.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use corral_protocol::{ErrorBody, ErrorCode};
use serde::Serialize;

use crate::store::StoreError;

/// An error answered to an HTTP client: the protocol's [`ErrorBody`] (the one error shape, the
/// same a WebSocket reply carries) plus what only HTTP has, a status and a `Retry-After`. It
/// is actix-web's `ResponseError`; every layer's error reaches it through `From<ErrorBody>`.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ApiError {
    /// The code and the explanation.
    pub error: ErrorBody,
    /// A status other than the code's usual one (e.g. 429 for a connection limit).
    pub status: Option<u16>,
    /// When to try again (`Retry-After`, whole seconds rounded up).
    pub retry_after: Option<Duration>,
}

/// Every HTTP error body: `{"error": {"code", "message"}}` (the OpenAPI document's `Error`).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorEnvelope {
    /// The code and the explanation, as in a WebSocket error reply.
    pub error: ErrorBody,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::from(ErrorBody::new(code, message))
    }

    /// The same error answered with another HTTP status.
    pub fn with_status(mut self, status: u16) -> ApiError {
        self.status = Some(status);
        self
    }

    /// The same error telling the client when to retry. A body that already carries a hint
    /// (`retry_after_ms`) gets this one too, so header and body never disagree.
    pub fn with_retry_after(mut self, wait: Duration) -> ApiError {
        self.retry_after = Some(wait);
        if self.error.retry_after_ms.is_some() {
            self.error = self.error.with_retry_after(wait);
        }
        self
    }

    /// `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    /// `unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unauthenticated, message)
    }

    /// `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Forbidden, message)
    }

    /// `internal`, logging the cause (which is not shown to the client).
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(%cause, "internal error");
        ApiError::new(ErrorCode::Internal, "internal error")
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status.unwrap_or(self.error.code.http_status()))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self.retry_after {
            Some(wait) => {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                response.insert_header(("Retry-After", secs.max(1).to_string()));
            }
            None if self.status_code() == StatusCode::TOO_MANY_REQUESTS => {
                response.insert_header(("Retry-After", "1"));
            }
            None => {}
        }
        response.json(ErrorEnvelope {
            error: self.error.clone(),
        })
    }
}

impl From<ErrorBody> for ApiError {
    fn from(error: ErrorBody) -> Self {
        // A body's own hint becomes the `Retry-After` header.
        ApiError {
            retry_after: error.retry_after(),
            error,
            status: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(msg) => ApiError::new(ErrorCode::Conflict, msg),
            StoreError::NotFound => ApiError::new(ErrorCode::NotFound, "not found"),
            other => ApiError::internal(other),
        }
    }
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _req: &actix_web::HttpRequest) -> HttpResponse {
        self.error_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_after_header(err: &ApiError) -> Option<String> {
        err.error_response()
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    #[test]
    fn a_body_hint_becomes_retry_after_and_they_stay_in_step() {
        let shed = ErrorBody::new(ErrorCode::Unavailable, "busy")
            .with_retry_after(Duration::from_millis(2_300));
        let err = ApiError::from(shed);
        assert_eq!(retry_after_header(&err).as_deref(), Some("3"));
        let err = err.with_retry_after(Duration::from_millis(900));
        assert_eq!(err.error.retry_after_ms, Some(900));
        assert_eq!(retry_after_header(&err).as_deref(), Some("1"));
    }

    #[test]
    fn other_errors_keep_their_shape() {
        let err =
            ApiError::new(ErrorCode::NotFound, "gone").with_retry_after(Duration::from_secs(2));
        assert_eq!(err.error.retry_after_ms, None);
        assert_eq!(retry_after_header(&err).as_deref(), Some("2"));
        assert_eq!(
            retry_after_header(&ApiError::new(ErrorCode::NotFound, "gone")),
            None
        );
    }
}

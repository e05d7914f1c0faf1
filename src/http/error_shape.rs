//! Every error response in the protocol's error shape. Handlers answer [`ApiError`]s already;
//! this middleware rewrites the rest — actix-web's own answers (a body over the payload limit,
//! a malformed request) and anything else that is not JSON — into
//! `{"error": {"code", "message"}}`, keeping the status and headers such as `Retry-After`.

use actix_web::Error;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use corral_protocol::ErrorCode;

use crate::http::ApiError;

/// The stable code closest to an HTTP status.
fn code_for(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        401 => ErrorCode::Unauthenticated,
        403 => ErrorCode::Forbidden,
        404 | 405 => ErrorCode::NotFound,
        409 => ErrorCode::Conflict,
        413 | 431 => ErrorCode::TooLarge,
        429 => ErrorCode::RateLimited,
        503 => ErrorCode::Unavailable,
        400..=499 => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    }
}

/// The middleware (`App::wrap(from_fn(error_shape))`).
pub async fn error_shape(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let res = next.call(req).await?;
    let status = res.status();
    let is_json = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return Ok(res.map_into_boxed_body());
    }
    let (req, old) = res.into_parts();
    let message = match old.error() {
        // Internal causes stay in the log.
        Some(err) if status.is_client_error() => err.to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let mut new: HttpResponse = ApiError::new(code_for(status), message)
        .with_status(status.as_u16())
        .error_response();
    for (name, value) in old.headers() {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(req, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_their_codes() {
        assert_eq!(code_for(StatusCode::PAYLOAD_TOO_LARGE), ErrorCode::TooLarge);
        assert_eq!(code_for(StatusCode::REQUEST_TIMEOUT), ErrorCode::BadRequest);
        assert_eq!(
            code_for(StatusCode::METHOD_NOT_ALLOWED),
            ErrorCode::NotFound
        );
        assert_eq!(code_for(StatusCode::BAD_GATEWAY), ErrorCode::Internal);
    }
}

//! The total time limit of an HTTP request: its head (actix-web's `client_request_timeout`)
//! and, here, reading its body and answering it. A client trickling a body byte by byte is
//! answered 408 and its connection closed, instead of holding a worker's attention forever.

use std::time::Duration;

use actix_web::Error;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use corral_actors::metric_catalogue as metric;
use corral_protocol::ErrorCode;

use crate::http::ApiError;

/// Runs the rest of the chain within `limit` (use through `from_fn` with a closure).
pub async fn within(
    limit: Duration,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(res) => Ok(res?.map_into_boxed_body()),
        // The request itself went into the chain (routing needs it unshared), so the answer
        // is an error that actix-web renders with `ApiError`'s body.
        Err(_) => {
            metrics::counter!(metric::HTTP_TIMEOUTS).increment(1);
            Err(ApiError::new(
                ErrorCode::BadRequest,
                format!("the request took longer than {} ms", limit.as_millis()),
            )
            .with_status(408)
            .into())
        }
    }
}

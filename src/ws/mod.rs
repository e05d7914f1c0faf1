//! `GET /ws`: admission checks, the `corral.v1` upgrade, and one Session actor plus one task
//! owning the socket per connection. The handler answers 101 and hands the connection's parts
//! to the public server's upgrade hook ([`upgrade::factory`]), which takes the raw socket over
//! from actix-http and runs it on Corral's own codec ([`codec`], [`socket`], [`connection`]).

mod codec;
mod connection;
mod lag;
mod socket;
pub mod upgrade;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use corral_actors::metric_catalogue as metric;
use corral_actors::{Outbound, Refusal, SessionHandle, TokenVerifier};
use std::time::Duration;

use corral_protocol::{ErrorBody, ErrorCode, SUBPROTOCOL};

use crate::http::conn_limit::PeerPermit;
use crate::http::error::ApiError;
use crate::http::extract::bearer_token;
use crate::http::responses::{BadRequest, Forbidden, RateLimited, Unauthenticated, Unavailable};
use crate::state::AppState;

pub use connection::{Accepted, ConnectionLimits};

/// The answer to a refused upgrade, with `Retry-After` from the node's retry hint (jittered
/// and growing with load, so a reconnect storm told to wait comes back spread out). The
/// `unavailable` body carries the same hint as `retry_after_ms`; the other codes' bodies stay
/// as they were. Cheap by design: no work beyond the message before refusing.
fn refused(refusal: Refusal, wait: Duration) -> ApiError {
    let (code, status) = match refusal {
        Refusal::Rate => (ErrorCode::RateLimited, 429),
        Refusal::PerUser => (ErrorCode::LimitReached, 429),
        Refusal::NodeFull | Refusal::PerIp => (ErrorCode::Unavailable, 503),
    };
    let mut body = ErrorBody::new(code, refusal.to_string());
    if code == ErrorCode::Unavailable {
        body = body.with_retry_after(wait);
    }
    ApiError::from(body)
        .with_status(status)
        .with_retry_after(wait)
}

/// WebSocket upgrade (protocol v1)
///
/// Offer subprotocol `corral.v1`. Authenticate with the `auth` op, or send
/// `Authorization: Bearer <token>` on the upgrade. Frames are described in protocol/README.md.
#[utoipa::path(
    get,
    path = "/ws",
    operation_id = "openSocket",
    tag = "operations",
    security(()),
    responses(
        (status = 101, description = "Switching protocols (no body: the socket speaks `corral.v1`)"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
pub async fn upgrade(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if state.is_draining() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "node is shutting down; connect to another",
        ));
    }
    // A browser page from another site must not open sockets with its visitors' tokens.
    if let Some(origin) = crate::http::origin::of(&req)
        && !crate::http::origin::allowed(&req, &state.settings.server.allowed_origins, origin)
    {
        metrics::counter!(metric::CONNECTIONS_REFUSED, "reason" => "origin").increment(1);
        return Err(ApiError::forbidden(format!(
            "origin {origin} is not allowed"
        )));
    }
    // Admission before the token's signature check: a reconnect storm is refused by counters
    // alone, before the node spends any crypto on it.
    let ip = state.client_ip(&req);
    let permit = state
        .hub
        .admission
        .admit(ip)
        .map_err(|refusal| refused(refusal, state.hub.overload.retry_after()))?;
    let identity = match bearer_token(&req) {
        Some(token) => Some(state.keys.verify(token).map_err(|e| {
            metrics::counter!(metric::AUTH_FAILURES, "reason" => "bearer").increment(1);
            ApiError::unauthenticated(e.to_string())
        })?),
        None => None,
    };
    let mut response = actix_http::ws::handshake(req.head())
        .map_err(|e| ApiError::bad_request(format!("not a WebSocket upgrade: {e}")))?;
    if offers_subprotocol(&req) {
        response.insert_header((header::SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL));
    }
    let (out, rx) = Outbound::channel(state.hub.session.outbound_queue);
    let session = SessionHandle::start(state.hub.clone(), out, identity)
        .map_err(|e| refused(e.0, state.hub.overload.retry_after()))?;
    metrics::counter!(metric::CONNECTIONS_ACCEPTED).increment(1);
    let mut response = HttpResponse::from(response.finish().map_into_boxed_body());
    // Taken by the upgrade hook, which writes the 101 and runs the connection.
    response.extensions_mut().insert(Accepted {
        session,
        out: rx,
        permit,
        peer: req.conn_data::<Arc<PeerPermit>>().cloned(),
        limits: ConnectionLimits::from(&state.settings.ws),
        overload: state.hub.overload.clone(),
    });
    Ok(response)
}

/// Whether the client offers `corral.v1` in `Sec-WebSocket-Protocol` (a list, maybe over
/// several headers).
fn offers_subprotocol(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|list| list.split(','))
        .any(|offered| offered.trim() == SUBPROTOCOL)
}

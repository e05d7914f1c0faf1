//! Browser origins. A browser sends `Origin` on cross-site requests and on every WebSocket
//! upgrade; only the node's own origin and those in `server.allowed_origins` may use `/ws` or
//! get CORS answers. Requests without `Origin` (native apps, servers) are not browsers' and are
//! not affected.

use actix_web::Error;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::state::AppState;

/// Whether `origin` (e.g. `https://app.example.com`) is the request's own host or listed.
pub fn allowed(req: &HttpRequest, allowed: &[String], origin: &str) -> bool {
    let own = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| {
            origin
                .split_once("://")
                .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
        });
    own || allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
}

/// The request's `Origin`, when it has one.
pub fn of(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
}

/// CORS for the API: a preflight from an allowed origin is answered 204 with what it may send;
/// other answers to an allowed origin carry `Access-Control-Allow-Origin`. Requests from
/// other origins get no CORS headers (the browser then withholds the answer).
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let list = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.settings.server.allowed_origins.clone())
        .unwrap_or_default();
    let origin = of(req.request())
        .filter(|o| allowed(req.request(), &list, o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight && let Some(origin) = origin {
        let response = HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "GET, POST, PUT, PATCH, DELETE",
            ))
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type, x-request-id",
            ))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
            .insert_header((header::VARY, "Origin"))
            .finish();
        return Ok(req.into_response(response));
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    if let Some(origin) = origin {
        let headers = res.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    Ok(res)
}

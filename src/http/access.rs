//! Every HTTP request, measured and logged once: `corral_http_requests_total` and
//! `corral_http_request_duration_seconds` by method, route pattern and status, and one access
//! log line (target `corral::access`) with the method, route, path, status, duration, client
//! address and request id. A WebSocket upgrade is one request like any other: it is logged
//! once, at the upgrade (status 101); its frames never pass through here.
//!
//! The outermost middleware, so it sees the status every other layer settled on (a refusal of
//! the connection limit, a cut-off of the deadline) and the `X-Request-Id` the request id
//! middleware put on the response.

use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web;
use corral_actors::metric_catalogue as metric;

use crate::state::AppState;

/// The route label of a request that matched no route. Raw paths never become labels: a scan
/// of random URLs must not grow the number of series without bound.
pub const UNMATCHED: &str = "unmatched";

/// Routes that machines poll (Prometheus, load balancer probes): logged at debug while they
/// succeed, so the access log is not a line every few seconds per prober. A failing probe is
/// logged at info like any request.
const POLLED: &[&str] = &["/metrics", "/healthz", "/readyz"];

/// The middleware (`App::wrap(from_fn(observe))`).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req.match_pattern();
    let path = req.path().to_string();
    let client = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.edge.proxies.of(req.request()));
    let result = next.call(req).await;
    let elapsed = started.elapsed();
    // An error here becomes its response after this middleware: its status is the error's.
    let (status, request_id) = match &result {
        Ok(response) => (
            response.status(),
            response
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        ),
        Err(err) => (err.as_response_error().status_code(), None),
    };
    let route_label = route.as_deref().unwrap_or(UNMATCHED);
    let status_label = status.as_u16().to_string();
    metrics::counter!(metric::HTTP_REQUESTS,
        "method" => method, "route" => route_label.to_string(), "status" => status_label.clone())
    .increment(1);
    metrics::histogram!(metric::HTTP_REQUEST_DURATION,
        "method" => method, "route" => route_label.to_string(), "status" => status_label)
    .record(elapsed.as_secs_f64());

    let polled = status.is_success() && POLLED.contains(&route_label);
    let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
    let duration_ms = elapsed.as_micros() as f64 / 1000.0;
    let request_id = request_id.as_deref().unwrap_or("-");
    let client = client.map(|ip| ip.to_string());
    let client = client.as_deref().unwrap_or("-");
    macro_rules! access {
        ($level:ident, $what:literal) => {
            tracing::$level!(
                target: "corral::access",
                method = %method,
                route = %route_label,
                path = %path,
                status = status.as_u16(),
                duration_ms,
                client = %client,
                request_id = %request_id,
                $what
            )
        };
    }
    if polled {
        access!(debug, "http request");
    } else if upgrade {
        access!(info, "websocket upgrade");
    } else {
        access!(info, "http request");
    }
    result
}

/// The method as a label: the standard ones by name, anything else as `other` (a client may
/// send any token as a method).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let odd = Method::from_bytes(b"BREW").unwrap_or(Method::TRACE);
        assert_eq!(method_label(&odd), "other");
        assert_eq!(method_label(&Method::TRACE), "other");
    }
}

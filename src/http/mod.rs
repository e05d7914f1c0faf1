//! The HTTP API (`/api/v1`), health, readiness and metrics endpoints, and the WebSocket route.

pub mod access;
pub mod accounts;
pub mod activities;
pub mod animals;
pub mod auth;
pub mod claims;
pub mod client_ip;
pub mod conn_limit;
pub mod coupon_codes;
pub mod coupons;
pub mod deadline;
pub mod epoch_ms;
pub mod error;
pub mod error_shape;
pub mod extract;
pub mod feeds;
pub mod health;
pub mod listings;
pub mod merchants;
pub mod openapi;
pub mod origin;
pub mod payments;
pub mod request_id;
pub mod responses;
pub mod rooms;
pub mod table;
pub mod web_app;

use actix_web::http::Method;
use actix_web::web;

pub use error::ApiError;

/// Where the JSON API lives.
pub const API_PREFIX: &str = "/api/v1";

/// Routes at the root: health, readiness, metrics and the WebSocket upgrade.
pub const ROOT_ROUTES: &[table::ApiRoute] = &[
    table::ApiRoute {
        method: Method::GET,
        path: "/healthz",
        handler: |r| r.to(health::healthz),
    },
    table::ApiRoute {
        method: Method::GET,
        path: "/readyz",
        handler: |r| r.to(health::readyz),
    },
    table::ApiRoute {
        method: Method::GET,
        path: "/metrics",
        handler: |r| r.to(health::metrics),
    },
    table::ApiRoute {
        method: Method::GET,
        path: "/ws",
        handler: |r| r.to(crate::ws::upgrade),
    },
];

/// The route tables served under [`API_PREFIX`]. A new area adds its table here (and its
/// `#[utoipa::path]` handlers to the document's list in `openapi.rs`, which a test checks).
const API_TABLES: &[&[table::ApiRoute]] = &[
    auth::ROUTES,
    merchants::ROUTES,
    accounts::ROUTES,
    animals::ROUTES,
    activities::ROUTES,
    coupons::ROUTES,
    claims::ROUTES,
    payments::ROUTES,
    feeds::ROUTES,
    rooms::ROUTES,
    listings::ROUTES,
    openapi::ROUTES,
];

/// Every route served, as `(method, full path)`: what the OpenAPI document must describe.
pub fn documented_routes() -> Vec<(Method, String)> {
    let root = ROOT_ROUTES
        .iter()
        .chain(web_app::ROUTES)
        .map(|r| (r.method.clone(), r.path.to_string()));
    let api = API_TABLES
        .iter()
        .flat_map(|table| table.iter())
        .map(|r| (r.method.clone(), format!("{API_PREFIX}{}", r.path)));
    root.chain(api).collect()
}

/// A body that is not the JSON expected: 413 `too_large` when it is over the limit.
fn json_error(err: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError;
    match err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::new(corral_protocol::ErrorCode::TooLarge, err.to_string())
        }
        other => ApiError::bad_request(other.to_string()),
    }
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Every route (one listener, the default).
    Everything,
    /// All but the operators' routes (when `server.admin_listen` is set).
    Public,
    /// The operators' routes and the health probes, on `server.admin_listen`.
    Operator,
}

impl Surface {
    /// Whether a listener of this kind serves `path` (a full route path).
    pub fn serves(self, path: &str) -> bool {
        let operator = path == "/metrics" || path.starts_with("/api/v1/admin/");
        let probe = path == "/healthz" || path == "/readyz";
        match self {
            Surface::Everything => true,
            Surface::Public => !operator,
            Surface::Operator => operator || probe,
        }
    }
}

/// Registers every route `surface` serves.
pub fn routes(cfg: &mut web::ServiceConfig, surface: Surface) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(256 * 1024)
            .error_handler(|err, _req| json_error(err).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _req| ApiError::bad_request(err.to_string()).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|err, _req| ApiError::bad_request(err.to_string()).into()),
    )
    .configure(|cfg| table::register(cfg, ROOT_ROUTES, |r| surface.serves(r.path)))
    .configure(|cfg| {
        if surface != Surface::Operator {
            web_app::register(cfg);
        }
    })
    .service(web::scope(API_PREFIX).configure(|cfg| {
        for table in API_TABLES {
            table::register(cfg, table, |r| {
                surface.serves(&format!("{API_PREFIX}{}", r.path))
            });
        }
    }))
    .default_service(web::to(|| async {
        ApiError::new(corral_protocol::ErrorCode::NotFound, "no such route")
    }));
}

#[cfg(test)]
mod tests {
    use super::Surface;

    #[test]
    fn the_operator_listener_takes_metrics_and_admin_routes_from_the_public_one() {
        for path in [
            "/metrics",
            "/api/v1/admin/users/{id}",
            "/api/v1/admin/audit",
        ] {
            assert!(Surface::Everything.serves(path), "{path}");
            assert!(!Surface::Public.serves(path), "{path}");
            assert!(Surface::Operator.serves(path), "{path}");
        }
        for path in ["/healthz", "/readyz"] {
            assert!(
                Surface::Public.serves(path) && Surface::Operator.serves(path),
                "{path}"
            );
        }
        for path in ["/ws", "/api/v1/auth/login", "/api/v1/administrators", "/"] {
            assert!(Surface::Public.serves(path), "{path}");
            assert!(!Surface::Operator.serves(path), "{path}");
        }
    }
}

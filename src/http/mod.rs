//! The HTTP API (`/api/v1`), health, readiness and metrics endpoints, and the WebSocket route.

pub mod accounts;
pub mod activities;
pub mod animals;
pub mod auth;
pub mod claims;
pub mod client_ip;
pub mod conn_limit;
pub mod deadline;
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
/// paths to `openapi.json`, which a test checks).
const API_TABLES: &[&[table::ApiRoute]] = &[
    auth::ROUTES,
    merchants::ROUTES,
    accounts::ROUTES,
    animals::ROUTES,
    activities::ROUTES,
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

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
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
    .configure(|cfg| table::register(cfg, ROOT_ROUTES))
    .configure(web_app::register)
    .service(web::scope(API_PREFIX).configure(|cfg| {
        for table in API_TABLES {
            table::register(cfg, table);
        }
    }))
    .default_service(web::to(|| async {
        ApiError::new(corral_protocol::ErrorCode::NotFound, "no such route")
    }));
}

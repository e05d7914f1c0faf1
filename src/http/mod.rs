//! The HTTP API (`/api/v1`), health, readiness and metrics endpoints, and the WebSocket route.

pub mod auth;
pub mod error;
pub mod extract;
pub mod feeds;
pub mod health;

use actix_web::web;

pub use error::ApiError;

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(256 * 1024)
            .error_handler(|err, _req| ApiError::bad_request(err.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _req| ApiError::bad_request(err.to_string()).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|err, _req| ApiError::bad_request(err.to_string()).into()),
    )
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(health::metrics))
    .route("/ws", web::get().to(crate::ws::upgrade))
    .service(
        web::scope("/api/v1")
            .configure(auth::routes)
            .configure(feeds::routes),
    )
    .default_service(web::to(|| async {
        ApiError::new(corral_protocol::ErrorCode::NotFound, "no such route")
    }));
}

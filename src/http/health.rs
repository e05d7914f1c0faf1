//! `/healthz` (the process answers), `/readyz` (its dependencies answer and it is not
//! draining) and `/metrics` (Prometheus text).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// Liveness: the process is up and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: SQL (and Redis when configured) reachable, and not draining.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let sql = state.db.ping().await.map_err(|e| e.to_string());
    let redis = match &state.redis {
        Some(redis) => Some(redis.ping().await.map_err(|e| e.to_string())),
        None => None,
    };
    let draining = state.is_draining();
    let ready = sql.is_ok() && redis.as_ref().is_none_or(|r| r.is_ok()) && !draining;
    let check = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "sql": check(&sql),
        "redis": redis.as_ref().map(check).unwrap_or_else(|| "not configured".into()),
        "draining": draining,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

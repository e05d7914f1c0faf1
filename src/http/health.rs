//! `/healthz` (the process answers), `/readyz` (its dependencies answer and it is not
//! draining) and `/metrics` (Prometheus text).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// Liveness: the process is up and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// How long `/readyz` waits for each dependency: one that has not answered by then is
/// reported down (a hung dependency must not hang the load balancer's probe).
const READY_DEADLINE: Duration = Duration::from_secs(1);

/// A dependency's round trip within [`READY_DEADLINE`].
async fn probe<E: std::fmt::Display>(
    ping: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), String> {
    match tokio::time::timeout(READY_DEADLINE, ping).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!(
            "no answer within {} ms",
            READY_DEADLINE.as_millis()
        )),
    }
}

/// Readiness: SQL (and Redis when configured) answering within their deadline, and not
/// draining. The body names each dependency's state, so an operator sees which one is down.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let redis = async {
        match &state.redis {
            Some(redis) => Some(probe(redis.ping()).await),
            None => None,
        }
    };
    let (sql, redis) = futures_util::join!(probe(state.db.ping()), redis);
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
        .body(crate::telemetry::render_metrics(&state.metrics))
}

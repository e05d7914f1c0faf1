//! `/healthz` (the process answers), `/readyz` (its dependencies answer and it is not
//! draining) and `/metrics` (Prometheus text).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// The liveness answer.
#[derive(Serialize, ToSchema)]
struct Liveness {
    status: Alive,
}

/// The only liveness status: a process that answers is alive.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Alive {
    Ok,
}

/// Liveness
///
/// The process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The process serves HTTP", body = Liveness))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { status: Alive::Ok })
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

/// Whether the node is ready, and each dependency's state (so an operator sees which is down).
#[derive(Serialize, ToSchema)]
struct Readiness {
    status: ReadyStatus,
    /// `ok`, or why the SQL store did not answer.
    sql: String,
    /// `ok`, `not configured`, or why Redis did not answer.
    redis: String,
    /// The node is shutting down and takes no new work.
    draining: bool,
}

/// `ready` when every dependency answers and the node is not draining.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum ReadyStatus {
    Ready,
    NotReady,
}

/// Readiness: SQL (and Redis when configured) answer and the node is not draining
///
/// Each dependency must answer within its deadline. The body names each one's state, so an
/// operator sees which one is down.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready", body = Readiness),
    )
)]
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
    let body = Readiness {
        status: if ready {
            ReadyStatus::Ready
        } else {
            ReadyStatus::NotReady
        },
        sql: check(&sql),
        redis: redis
            .as_ref()
            .map(check)
            .unwrap_or_else(|| "not configured".into()),
        draining,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus metrics
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    security(()),
    responses((
        status = 200,
        description = "Prometheus text exposition",
        body = String,
        content_type = "text/plain; version=0.0.4",
    ))
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // Counted here rather than on every start and stop: the registry knows, and a scrape is rare.
    metrics::gauge!(corral_actors::metric_catalogue::ROOM_ACTORS)
        .set(state.hub.rooms.running() as f64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::telemetry::render_metrics(&state.metrics))
}

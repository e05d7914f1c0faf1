//! Registration, login, health, readiness and metrics over HTTP.

use serde_json::json;

use crate::engine_tests;
use crate::support::{Engine, TestApp, unique};

engine_tests!(register_login_and_errors, health_ready_and_metrics);

#[actix_web::test]
async fn readyz_checks_redis_when_configured_and_requests_get_ids() {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| {
        s.redis.url = corral::config::Secret::from(crate::support::redis_url());
    })
    .await;
    let (status, body) = app.get("/readyz", None).await;
    assert_eq!(
        (status, body["redis"].as_str()),
        (200, Some("ok")),
        "{body}"
    );

    let resp = app
        .http
        .get(app.url("/healthz"))
        .header("X-Request-Id", "trace-me-1")
        .send()
        .await
        .expect("get");
    assert_eq!(
        resp.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-me-1")
    );
    let resp = app.http.get(app.url("/healthz")).send().await.expect("get");
    assert!(resp.headers().get("x-request-id").is_some());
}

async fn register_login_and_errors(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let name = unique("al");
    let creds = json!({"username": name, "password": "correct-horse"});

    let (status, body) = app.post("/api/v1/auth/register", None, creds.clone()).await;
    assert_eq!(status, 201, "{body}");
    let user_id = body["user_id"].as_i64().expect("user_id");

    let (status, body) = app.post("/api/v1/auth/register", None, creds.clone()).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "conflict");

    let (status, body) = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "x", "password": "correct-horse"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "bad_request");

    let (status, body) = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": unique("b"), "password": "short"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );

    let (status, body) = app
        .post("/api/v1/auth/register", None, json!({"username": 5}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );

    let (status, body) = app.post("/api/v1/auth/login", None, creds).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], user_id);
    assert_eq!(body["role"], "user");
    assert!(
        body["token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );

    let (status, body) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": name, "password": "wrong-horse"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );

    let (status, body) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": unique("nobody"), "password": "correct-horse"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );

    let (status, body) = app.get("/api/v1/nothing-here", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

async fn health_ready_and_metrics(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (status, body) = app.get("/healthz", None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));

    let (status, body) = app.get("/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sql"], "ok");

    // One authenticated round trip, so per-op series exist.
    let (_, token) = app.user("m").await;
    let mut ws = app.client(Some(&token)).await;
    assert!(ws.is_open().await);

    let (status, body) = app.get("/metrics", None).await;
    assert_eq!(status, 200);
    let text = body.as_str().expect("metrics text");
    for series in [
        "corral_connections",
        "corral_frames_in_total{op=\"auth\"}",
        "corral_reply_latency_seconds_bucket{op=\"time.sync\"",
        "corral_frames_out_total",
    ] {
        assert!(text.contains(series), "missing {series} in metrics");
    }

    // Draining makes the node not ready.
    app.state.start_draining();
    let (status, body) = app.get("/readyz", None).await;
    assert_eq!((status, body["draining"].as_bool()), (503, Some(true)));
}

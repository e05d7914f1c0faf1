//! Provisioning and the load generator against a real node: `seed_users` bulk-creates
//! accounts whose tokens authenticate, and a tiny connect-capacity run (200 clients, two
//! in-process workers) connects them all and reports the server's memory.

use corral::admin::{SeedRequest, seed_users};
use corral_actors::TokenVerifier;
use corral_loadtest::coordinator::{self, RunOptions, WorkerMode};
use corral_loadtest::scenario::Scenario;
use corral_protocol::Role;

use crate::engine_tests;
use crate::support::{Engine, TestApp};

async fn seed(app: &TestApp, count: usize, prefix: &str) -> Vec<corral::admin::SeededUser> {
    let request = SeedRequest {
        count,
        prefix: prefix.into(),
        role: Role::User,
        password: "seeded-password".into(),
    };
    seed_users(&app.state.db, &app.state.keys, &request)
        .await
        .expect("seed users")
}

async fn seeds_users_whose_tokens_work(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let users = seed(&app, 1500, "seed_").await;
    assert_eq!(users.len(), 1500);
    assert_eq!(users[1499].username, "seed_1499");
    let identity = app
        .state
        .keys
        .verify(&users[7].token)
        .expect("token verifies");
    assert_eq!(identity.user_id, users[7].id);
    assert_eq!(identity.role, Role::User);
    // The shared password logs in over HTTP like any other account.
    let (status, body) = app
        .post(
            "/api/v1/auth/login",
            None,
            serde_json::json!({"username": "seed_3", "password": "seeded-password"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], users[3].id);
    // Seeding again reuses the accounts instead of failing or duplicating them.
    let again = seed(&app, 1501, "seed_").await;
    assert_eq!(
        again[..1500].iter().map(|u| u.id).collect::<Vec<_>>(),
        users.iter().map(|u| u.id).collect::<Vec<_>>()
    );
    assert!(!users.iter().any(|u| u.id == again[1500].id));
    // And a token authenticates a WebSocket.
    let mut ws = app.client(None).await;
    let ok = ws
        .request("auth", serde_json::json!({ "token": again[1500].token }))
        .await
        .expect("auth");
    assert_eq!(ok["user_id"], again[1500].id);
}

engine_tests!(seeds_users_whose_tokens_work);

#[actix_web::test]
async fn connect_capacity_run_connects_every_client_and_reports_memory() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let users = seed(&app, 200, "cap_").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.json");
    std::fs::write(&tokens, serde_json::to_vec(&users).expect("json")).expect("write tokens");
    let scenario = format!(
        r#"
        name = "ci-capacity"
        kind = "connect-capacity"
        target = "{}"
        tokens = "{}"
        workers = 2
        source_addrs = 2
        max_seconds = 60
        [connect]
        clients = 200
        ramp_per_sec = 2000
        [capacity]
        settle_seconds = 1
        "#,
        app.ws_url(),
        tokens.display()
    );
    let file = dir.path().join("capacity.toml");
    std::fs::write(&file, scenario).expect("write scenario");
    let scenario = Scenario::load(&file).expect("scenario");
    let out = dir.path().join("out");
    let opts = RunOptions {
        target: None,
        out: out.clone(),
        mode: WorkerMode::InProcess,
        server_pid: Some(std::process::id()),
        progress: false,
    };
    let result = coordinator::run(scenario, &opts).await.expect("run");
    assert!(result.passed, "{:?}", result.checks);
    assert_eq!(result.connected, 200);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("result.json")).expect("result.json"))
            .expect("json");
    assert_eq!(written["connected"], 200);
    assert_eq!(written["latency"]["reply.auth"]["count"], 200);
    assert_eq!(written["latency"]["connect"]["count"], 200);
    assert_eq!(written["capacity"]["connections"], 200);
    assert!(written["capacity"]["rss_after_bytes"].as_u64().unwrap_or(0) > 0);
    assert_eq!(written["passed"], true);
    assert!(out.join("report.html").exists());
    // The node saw the 200 authenticated sockets go away again.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
}

#[actix_web::test]
async fn connect_capacity_fails_when_tokens_are_wrong() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.json");
    let forged: Vec<_> = (0..20)
        .map(|i| serde_json::json!({"id": i, "username": format!("f{i}"), "token": "not.a.token"}))
        .collect();
    std::fs::write(&tokens, serde_json::to_vec(&forged).expect("json")).expect("write");
    let scenario = format!(
        r#"
        name = "ci-bad-tokens"
        kind = "connect-capacity"
        target = "{}"
        tokens = "{}"
        max_seconds = 30
        [connect]
        clients = 20
        [capacity]
        settle_seconds = 0
        "#,
        app.ws_url(),
        tokens.display()
    );
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, scenario).expect("write scenario");
    let opts = RunOptions {
        target: None,
        out: dir.path().join("out"),
        mode: WorkerMode::InProcess,
        server_pid: Some(std::process::id()),
        progress: false,
    };
    let result = coordinator::run(Scenario::load(&file).expect("scenario"), &opts)
        .await
        .expect("run");
    assert!(!result.passed);
    assert_eq!(result.connected, 0);
    assert_eq!(result.errors.get("unauthenticated"), Some(&20));
}

//! The public edge (SPEC section 12), tried as a hostile client would: password hashing
//! floods, login throttling, revoked tokens, webhook amounts, per-user rates, standard close
//! and status codes, origins, proxies, file modes and TLS.

use std::time::Duration;

use serde_json::{Value, json};

use crate::engine_tests;
use crate::support::NodeProcess;
use crate::support::{Engine, TestApp, WAIT, check, unique, upgrade_status, wait_until};

/// Resident memory of process `pid`, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn short_name(prefix: &str) -> String {
    unique(prefix).chars().take(30).collect()
}

#[actix_web::test]
async fn a_wrong_password_flood_keeps_memory_bounded_and_is_throttled() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The release defaults, but for the per-IP login limit: every client here is 127.0.0.1,
    // and this test wants the flood to reach the hashing pool as well as the limit.
    let node = NodeProcess::start(dir.path(), &[("CORRAL_AUTH__LOGIN_PER_IP_BURST", "40")]).await;
    let http = reqwest::Client::new();
    let name = short_name("victim");
    let creds = json!({"username": name, "password": "correct-horse"});
    let resp = http
        .post(node.url("/api/v1/auth/register"))
        .json(&creds)
        .send()
        .await
        .expect("register");
    assert_eq!(resp.status().as_u16(), 201);
    let before = rss_bytes(node.pid());
    assert!(before > 0, "no RSS reading");

    let mut calls = Vec::new();
    for n in 0..64 {
        let http = http.clone();
        let url = node.url("/api/v1/auth/login");
        // Half against the real account, half against names that do not exist.
        let username = if n % 2 == 0 {
            name.clone()
        } else {
            format!("ghost{n}")
        };
        calls.push(tokio::spawn(async move {
            let resp = http
                .post(url)
                .json(&json!({"username": username, "password": "wrong-password"}))
                .send()
                .await
                .expect("login");
            let status = resp.status().as_u16();
            let retry = resp.headers().get("retry-after").is_some();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, retry, body)
        }));
    }
    let mut statuses = Vec::new();
    for call in calls {
        let (status, retry, body) = call.await.expect("task");
        assert!(
            body["error"]["code"].is_string(),
            "not the error shape: {body}"
        );
        if status == 429 {
            assert!(retry, "429 without Retry-After");
            assert_eq!(body["error"]["code"], "rate_limited");
        }
        statuses.push(status);
    }
    let after = rss_bytes(node.pid());
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    let wrong = statuses.iter().filter(|&&s| s == 401).count();
    assert!(refused > 0, "no 429 among {statuses:?}");
    assert!(wrong > 0, "no password was checked: {statuses:?}");
    assert!(
        statuses.iter().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    let growth = after.saturating_sub(before);
    assert!(
        growth < 100 * 1024 * 1024,
        "RSS grew by {} MiB",
        growth / (1024 * 1024)
    );
}

async fn login_status(app: &TestApp, username: &str) -> (u16, Value) {
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"username": username, "password": "wrong-password"}),
    )
    .await
}

/// An unknown username costs a password check, like a known one, and is throttled alike.
#[actix_web::test]
async fn unknown_usernames_cost_a_hash_and_are_throttled_like_known_ones() {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| {
        s.auth.login_per_account_burst = 3.0;
        s.auth.login_per_account_per_min = 0.01;
    })
    .await;
    let known = short_name("known");
    let (status, _) = credentials(&app, "/api/v1/auth/register", &known).await;
    assert_eq!(status, 201);
    let unknown = short_name("nobody");
    let hasher = &app.state.edge.hasher;
    for name in [&known, &unknown] {
        let mut seen = Vec::new();
        for _ in 0..4 {
            let runs = hasher.runs();
            let (status, body) = login_status(&app, name).await;
            let hashed = hasher.runs() - runs;
            seen.push((status, hashed, body["error"]["code"].clone()));
        }
        assert_eq!(
            seen,
            vec![
                (401, 1, json!("unauthenticated")),
                (401, 1, json!("unauthenticated")),
                (401, 1, json!("unauthenticated")),
                (429, 0, json!("rate_limited")),
            ],
            "{name}"
        );
    }
    // The account limit is per name, case-insensitively: `KNOWN` shares `known`'s.
    let (status, _) = login_status(&app, &known.to_uppercase()).await;
    assert_eq!(status, 429);
}

#[actix_web::test]
async fn registrations_and_logins_are_limited_per_ip_with_retry_after() {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| {
        s.auth.register_per_ip_burst = 2.0;
        s.auth.register_per_ip_per_min = 1.0;
        s.auth.login_per_ip_burst = 2.0;
        s.auth.login_per_ip_per_min = 1.0;
    })
    .await;
    for expected in [201, 201, 429] {
        let resp = app
            .http
            .post(app.url("/api/v1/auth/register"))
            .json(&json!({"username": short_name("r"), "password": "correct-horse"}))
            .send()
            .await
            .expect("register");
        assert_eq!(resp.status().as_u16(), expected);
        if expected == 429 {
            let retry: u64 = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .expect("Retry-After in seconds");
            // One registration a minute: the next one is most of a minute away.
            assert!((30..=60).contains(&retry), "Retry-After {retry}");
        }
    }
    for expected in [401, 401, 429] {
        let (status, _) = login_status(&app, &short_name("x")).await;
        assert_eq!(status, expected);
    }
}

/// Registers or logs in (`path`) `username` with the password every test account has.
async fn credentials(app: &TestApp, path: &str, username: &str) -> (u16, Value) {
    app.post(
        path,
        None,
        json!({"username": username, "password": "correct-horse"}),
    )
    .await
}

/// `PATCH`es the account at `path` with `body` as the bearer of `token`.
async fn patch_user(app: &TestApp, path: &str, token: &str, body: Value) -> reqwest::Response {
    app.http
        .patch(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("patch")
}

/// A merchant through the API (auto-approved): (id, merchant token).
async fn merchant(app: &TestApp, name: &str) -> (i64, String) {
    let (id, token) = app.user(name).await;
    let (status, body) = app
        .post("/api/v1/merchants", Some(&token), json!({"name": "farm"}))
        .await;
    assert_eq!(status, 201, "{body}");
    (
        id,
        body["token"].as_str().expect("merchant token").to_string(),
    )
}

/// An admin (operators set the role in the database).
async fn admin(app: &TestApp) -> String {
    let (id, _) = app.user("admin").await;
    app.state
        .repos
        .accounts
        .set_role(id, corral_protocol::Role::Admin)
        .await
        .expect("set role");
    app.state
        .keys
        .issue(id, corral_protocol::Role::Admin)
        .expect("token")
}

async fn create_animal(app: &TestApp, token: &str) -> (u16, Value) {
    app.post(
        "/api/v1/animals",
        Some(token),
        json!({"name": "Daisy", "species": "cow", "price_cents": 500, "slots": 3}),
    )
    .await
}

fn auth_code(result: Result<Value, corral_protocol::ErrorBody>) -> String {
    match result {
        Ok(v) => format!("ok {v}"),
        Err(e) => e.code.as_str().to_string(),
    }
}

engine_tests!(a_demoted_merchants_token_is_refused_everywhere);

async fn a_demoted_merchants_token_is_refused_everywhere(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (merchant_id, old) = merchant(&app, "demoted").await;
    let admin = admin(&app).await;
    assert_eq!(create_animal(&app, &old).await.0, 201);
    let mut open = app.client(Some(&old)).await;

    let path = format!("/api/v1/admin/users/{merchant_id}");
    let resp = patch_user(&app, &path, &old, json!({"role": "user"})).await;
    assert_eq!(resp.status().as_u16(), 403, "only admins change roles");
    let resp = patch_user(&app, &path, &admin, json!({"role": "user"})).await;
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(
        (&body["role"], &body["token_version"]),
        (&json!("user"), &json!(1))
    );

    // HTTP, a new socket's `auth`, a new socket's bearer header: all refuse the old token.
    let (status, body) = create_animal(&app, &old).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("unauthenticated"))
    );
    let mut fresh = app.client(None).await;
    assert_eq!(
        auth_code(fresh.request("auth", json!({"token": old})).await),
        "unauthenticated"
    );
    let upgrade = crate::support::WsClient::connect(&app.ws_url(), Some(&old)).await;
    assert_eq!(
        upgrade_status(&upgrade),
        Some(401),
        "bearer upgrade with a revoked token: {upgrade:?}"
    );
    // The socket opened with it is closed.
    assert_eq!(open.close_code().await, Some(1008));

    // Logging in again gives a token with the new role, which works.
    let username = app
        .state
        .repos
        .accounts
        .user_by_id(merchant_id)
        .await
        .expect("user")
        .expect("exists")
        .username;
    let (status, body) = credentials(&app, "/api/v1/auth/login", &username).await;
    assert_eq!((status, &body["role"]), (200, &json!("user")));
    let new = body["token"].as_str().expect("token").to_string();
    assert_eq!(create_animal(&app, &new).await.0, 403);
    let mut again = app.client(None).await;
    assert!(again.request("auth", json!({"token": new})).await.is_ok());

    // Disabled: no login, and the newest token is refused too.
    let resp = patch_user(&app, &path, &admin, json!({"disabled": true})).await;
    assert_eq!(resp.status().as_u16(), 200);
    let (status, _) = credentials(&app, "/api/v1/auth/login", &username).await;
    assert_eq!(status, 403);
    let (status, _) = app.get("/api/v1/timeline", Some(&new)).await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn a_role_changed_in_the_database_is_noticed_by_the_refresh() {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| s.auth.standing_refresh_ms = 100).await;
    let (merchant_id, token) = merchant(&app, "sqlmerchant").await;
    assert_eq!(create_animal(&app, &token).await.0, 201);
    app.state
        .repos
        .accounts
        .set_role(merchant_id, corral_protocol::Role::User)
        .await
        .expect("demote");
    wait_until(
        "the demoted merchant's token is refused",
        WAIT,
        async || {
            let (status, body) = create_animal(&app, &token).await;
            check(status == 401, (status, body))
        },
    )
    .await;
}

#[actix_web::test]
async fn a_demotion_on_one_node_revokes_the_token_on_the_others() {
    // No periodic refresh: only the cluster bus can tell node B.
    let nodes = TestApp::cluster(2, |s| s.auth.standing_refresh_ms = 0).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (merchant_id, token) = merchant(a, "clustered").await;
    let admin = admin(a).await;
    // B learns of the promotion over the bus too.
    wait_until("node B accepts the new merchant", WAIT, async || {
        let (status, body) = create_animal(b, &token).await;
        check(status == 201, (status, body))
    })
    .await;
    let mut on_b = b.client(Some(&token)).await;
    let resp = a
        .http
        .patch(a.url(&format!("/api/v1/admin/users/{merchant_id}")))
        .bearer_auth(&admin)
        .json(&json!({"role": "user"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(on_b.close_code().await, Some(1008));
    let mut fresh = b.client(None).await;
    assert_eq!(
        auth_code(fresh.request("auth", json!({"token": token})).await),
        "unauthenticated"
    );
    assert_eq!(create_animal(b, &token).await.0, 401);
}

/// Posts a payment event signed with `secret` at timestamp `ts` with a new nonce.
async fn pay(app: &TestApp, secret: &str, ts: i64, body: &Value) -> (u16, Value) {
    crate::claims::pay(app, secret, ts, &unique("n"), body).await
}

async fn payment_rows(app: &TestApp, claim: i64) -> (String, i64, i64) {
    let status: String = sqlx::query_scalar("SELECT status FROM claims WHERE id = $1")
        .bind(claim)
        .fetch_one(&app.state.db.pool)
        .await
        .expect("claim");
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payment_events")
        .fetch_one(&app.state.db.pool)
        .await
        .expect("events");
    let nonces: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_nonces")
        .fetch_one(&app.state.db.pool)
        .await
        .expect("nonces");
    (status, events, nonces)
}

engine_tests!(the_webhook_refuses_wrong_amounts_and_overflowing_timestamps);

async fn the_webhook_refuses_wrong_amounts_and_overflowing_timestamps(engine: Engine) {
    const SECRET: &str = "edge-webhook-secret";
    let app = TestApp::spawn_with(engine, |s| {
        s.payments.webhook_secret = corral::config::Secret::from(SECRET);
    })
    .await;
    // The seeded animals cost 100 cents.
    let (activity, _, _) = crate::claims::seed(&app, &crate::claims::Promo::open(1)).await;
    let (_, alice) = crate::claims::bulk_users(&app, 1, corral_protocol::Role::User)
        .await
        .remove(0);
    let mut a = app.client(Some(&alice)).await;
    let held = a
        .request("claim", json!({"activity": activity, "key": "k"}))
        .await
        .expect("held");
    let claim = held["claim_id"].as_i64().expect("claim id");
    let now = crate::claims::now_ms();
    let event =
        |amount: i64| json!({"event_id": unique("e"), "claim_id": claim, "amount_cents": amount});

    for amount in [1, -100, 99, 101, 0, i64::MIN, i64::MAX] {
        let (status, body) = pay(&app, SECRET, now, &event(amount)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "amount {amount}: {body}"
        );
    }
    for ts in [
        i64::MIN,
        // now - 2^63: `now - ts` wraps to a small negative number.
        now + i64::MIN,
        now - i64::MAX,
        i64::MAX,
        now + 3_600_000,
    ] {
        let (status, body) = pay(&app, SECRET, ts, &event(100)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthenticated")),
            "timestamp {ts}: {body}"
        );
    }
    assert_eq!(payment_rows(&app, claim).await, ("held".to_string(), 0, 0));
    // The right amount, now: confirmed.
    let (status, body) = pay(&app, SECRET, now, &event(100)).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("confirmed")),
        "{body}"
    );
}

#[actix_web::test]
async fn one_users_sockets_together_stay_within_the_per_user_rate() {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| {
        s.ws.user_rate_per_sec = 10.0;
        s.ws.user_rate_burst = 20.0;
    })
    .await;
    let (_, token) = app.user("many").await;
    let mut sockets = Vec::new();
    for _ in 0..8 {
        sockets.push(app.client(Some(&token)).await);
    }
    let started = std::time::Instant::now();
    let runs = sockets.into_iter().map(|mut ws| async move {
        let mut served = 0;
        let mut limited = 0;
        // Each socket alone stays well inside its own per-connection budget (burst 100).
        for _ in 0..25 {
            match ws.request("time.sync", json!({"client_time": 1})).await {
                Ok(_) => served += 1,
                Err(e) if e.code.as_str() == "rate_limited" => limited += 1,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        (served, limited)
    });
    let results = futures_util::future::join_all(runs).await;
    let elapsed = started.elapsed().as_secs_f64();
    let served: u32 = results.iter().map(|r| r.0).sum();
    let limited: u32 = results.iter().map(|r| r.1).sum();
    let allowed = 20.0 + 10.0 * elapsed;
    assert!(
        f64::from(served) <= allowed + 1.0,
        "{served} served in {elapsed:.2}s; the user's budget was {allowed:.0}"
    );
    assert_eq!(served + limited, 200);
    assert!(limited > 0);
    // Another user is not affected.
    let (_, other) = app.user("bystander").await;
    let mut ws = app.client(Some(&other)).await;
    assert!(ws.is_open().await);
}

#[actix_web::test]
async fn one_users_sockets_on_two_nodes_share_one_budget() {
    let (per_sec, burst) = (20.0, 5.0);
    let nodes = TestApp::cluster(2, |s| {
        s.ws.user_rate_per_sec = per_sec;
        s.ws.user_rate_burst = burst;
        s.ws.user_rate_settle_ms = 100;
    })
    .await;
    let (_, token) = nodes[0].user("roamer").await;
    let mut sockets = Vec::new();
    for node in &nodes {
        for _ in 0..4 {
            sockets.push(node.client(Some(&token)).await);
        }
    }
    // Every socket asks 50 times a second for 3 s: 400 a second offered, 20 a second allowed.
    let started = std::time::Instant::now();
    let runs = sockets.into_iter().map(|mut ws| async move {
        let (mut served, mut limited) = (0u32, 0u32);
        while started.elapsed() < Duration::from_secs(3) {
            match ws.request("time.sync", json!({"client_time": 1})).await {
                Ok(_) => served += 1,
                Err(e) if e.code.as_str() == "rate_limited" => limited += 1,
                Err(e) => panic!("unexpected {e:?}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (served, limited)
    });
    let results = futures_util::future::join_all(runs).await;
    let elapsed = started.elapsed().as_secs_f64();
    let served: u32 = results.iter().map(|r| r.0).sum();
    let limited: u32 = results.iter().map(|r| r.1).sum();
    // One budget, plus what each node may let through before its first settlement lands.
    let budget = burst + per_sec * elapsed;
    let slack = 2.0 * (burst + per_sec * 0.2);
    assert!(
        f64::from(served) <= budget + slack,
        "{served} served in {elapsed:.2}s; the user's one budget was {budget:.0} (+{slack:.0}); \
         two per-node budgets would be {:.0}",
        2.0 * budget
    );
    assert!(
        f64::from(served) >= budget * 0.6,
        "{served} served in {elapsed:.2}s: the shared budget ({budget:.0}) is over-enforced"
    );
    assert!(limited > 0);
}

#[actix_web::test]
async fn metrics_and_admin_routes_move_to_the_operators_listener() {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| {
        s.server.admin_listen = "127.0.0.1:0".to_string();
    })
    .await;
    let root = admin(&app).await;
    let operators = app.admin_port.expect("the operators' listener is bound");
    let (target, _) = app.user("target").await;
    let at = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");
    let disable = json!({"disabled": true});

    // The public listener: no metrics, no admin API (404, the error shape); the rest as usual.
    let resp = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(resp.status().as_u16(), 404);
    let body: Value = resp.json().await.expect("error shape");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let resp = app
        .http
        .patch(app.url(&format!("/api/v1/admin/users/{target}")))
        .bearer_auth(&root)
        .json(&disable)
        .send()
        .await
        .expect("admin on the public listener");
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(app.get("/healthz", None).await.0, 200);
    assert_eq!(app.get("/api/v1/openapi.json", None).await.0, 200);

    // The operators' listener: metrics, probes and the admin API (still behind an admin
    // token), and nothing public.
    let resp = app
        .http
        .get(at(operators, "/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await.expect("text").contains("corral_"));
    let resp = app
        .http
        .get(at(operators, "/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(resp.status().as_u16(), 200);
    let resp = app
        .http
        .patch(at(operators, &format!("/api/v1/admin/users/{target}")))
        .json(&disable)
        .send()
        .await
        .expect("admin without a token");
    assert_eq!(resp.status().as_u16(), 401);
    let resp = app
        .http
        .patch(at(operators, &format!("/api/v1/admin/users/{target}")))
        .bearer_auth(&root)
        .json(&disable)
        .send()
        .await
        .expect("admin");
    assert_eq!(resp.status().as_u16(), 200);
    for path in ["/ws", "/api/v1/openapi.json", "/"] {
        let resp = app
            .http
            .get(at(operators, path))
            .send()
            .await
            .expect("public path");
        assert_eq!(resp.status().as_u16(), 404, "{path}");
    }
}

async fn close_code_after(
    app: &TestApp,
    frames: Vec<tokio_tungstenite::tungstenite::Message>,
) -> Option<u16> {
    let (_, token) = app.user("framer").await;
    let mut ws = app.client(Some(&token)).await;
    for frame in frames {
        if ws.send_message(frame).await.is_err() {
            break;
        }
    }
    ws.close_code().await
}

#[actix_web::test]
async fn bad_frames_close_with_the_rfc_codes() {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let app = TestApp::spawn_with(Engine::Sqlite, |s| s.ws.max_frame_bytes = 4096).await;
    let text = |bytes: Vec<u8>, fin: bool| {
        Message::Frame(Frame::message(bytes, OpCode::Data(Data::Text), fin))
    };
    let more = |bytes: Vec<u8>, fin: bool| {
        Message::Frame(Frame::message(bytes, OpCode::Data(Data::Continue), fin))
    };
    // Invalid UTF-8 in one frame, and split across continuations.
    assert_eq!(
        close_code_after(&app, vec![text(vec![b'{', 0xff, 0xfe, b'}'], true)]).await,
        Some(1007)
    );
    assert_eq!(
        close_code_after(
            &app,
            vec![
                text(b"{\"a\":\"".to_vec(), false),
                more(vec![0xc3, 0x28], true)
            ]
        )
        .await,
        Some(1007)
    );
    // Continuations each under the limit, adding up past it.
    assert_eq!(
        close_code_after(
            &app,
            vec![
                text(vec![b' '; 3000], false),
                more(vec![b' '; 3000], false),
                more(vec![b' '; 10], true),
            ]
        )
        .await,
        Some(1009)
    );
}

#[actix_web::test]
async fn oversized_bodies_answer_413_in_the_error_shape() {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| {
        s.payments.webhook_secret = corral::config::Secret::from("k");
    })
    .await;
    let big = "x".repeat(300 * 1024);
    for path in ["/api/v1/auth/register", "/api/v1/payments/webhook"] {
        let resp = app
            .http
            .post(app.url(path))
            .header("Content-Type", "application/json")
            .body(json!({"username": big, "password": "correct-horse"}).to_string())
            .send()
            .await
            .expect("post");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (413, Some("too_large")),
            "{path}: {body}"
        );
    }
    // Other framework-made errors are in the shape too: a wrong method, a bad path parameter.
    let resp = app
        .http
        .delete(app.url("/api/v1/auth/login"))
        .send()
        .await
        .expect("delete");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(
        status >= 400 && body["error"]["code"].is_string(),
        "{status} {body}"
    );
    let (_, token) = app.user("pather").await;
    let (status, body) = app.get("/api/v1/users/not-a-number", Some(&token)).await;
    assert_eq!(
        (status, body["error"]["code"].is_string()),
        (400, true),
        "{body}"
    );
}

engine_tests!(usernames_are_unique_whatever_their_case);

async fn usernames_are_unique_whatever_their_case(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let name = short_name("Alice");
    let creds = |n: &str| json!({"username": n, "password": "correct-horse"});
    let (status, _) = app.post("/api/v1/auth/register", None, creds(&name)).await;
    assert_eq!(status, 201);
    let (status, body) = app
        .post("/api/v1/auth/register", None, creds(&name.to_uppercase()))
        .await;
    assert_eq!((status, &body["error"]["code"]), (409, &json!("conflict")));
    let (status, _) = app
        .post("/api/v1/auth/login", None, creds(&name.to_lowercase()))
        .await;
    assert_eq!(status, 200, "login is case-insensitive too");
}

#[actix_web::test]
async fn smaller_edges_hold() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (me, token) = app.user("small").await;
    let (other, _) = app.user("other").await;
    let admin = admin(&app).await;
    let admin_id = corral_actors::TokenVerifier::verify(app.state.keys.as_ref(), &admin)
        .expect("admin token")
        .user_id;

    // `bearer` in any case.
    let resp = app
        .http
        .get(app.url(&format!("/api/v1/users/{me}")))
        .header("Authorization", format!("bearer {token}"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.expect("json");
    // Your own role is yours to see; another user's, or an admin's, is not.
    assert_eq!(body["role"], "user");
    let (_, body) = app
        .get(&format!("/api/v1/users/{other}"), Some(&token))
        .await;
    assert!(body.get("role").is_none(), "{body}");
    let (_, body) = app
        .get(&format!("/api/v1/users/{admin_id}"), Some(&token))
        .await;
    assert!(body.get("role").is_none(), "admins are not listed: {body}");
    let (_, body) = app
        .get(&format!("/api/v1/users/{other}"), Some(&admin))
        .await;
    assert_eq!(body["role"], "user");

    // The database holding password hashes is the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = &app.state.settings.server.data_dir;
        for file in ["corral.db", "corral.db-wal", "corral.db-shm", "jwt.secret"] {
            let path = dir.join(file);
            if let Ok(meta) = std::fs::metadata(&path) {
                assert_eq!(
                    meta.permissions().mode() & 0o077,
                    0,
                    "{file} is readable by others"
                );
            } else {
                assert!(
                    file.ends_with("-shm") || file.ends_with("-wal"),
                    "{file} missing"
                );
            }
        }
    }
}

/// The status a WebSocket upgrade from `origin` gets (101 when it is accepted).
async fn status_with_origin(app: &TestApp, origin: &str) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = app.ws_url().into_client_request().expect("request");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "corral.v1".parse().expect("h"));
    req.headers_mut()
        .insert("Origin", origin.parse().expect("h"));
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(other) => panic!("{other}"),
    }
}

#[actix_web::test]
async fn browser_origins_are_checked_on_ws_and_cors() {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| {
        s.server.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let own = format!("http://127.0.0.1:{}", app.port);
    assert_eq!(status_with_origin(&app, "https://evil.example").await, 403);
    assert_eq!(status_with_origin(&app, &own).await, 101);
    assert_eq!(
        status_with_origin(&app, "https://app.example.com").await,
        101
    );

    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/login"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
    };
    let ok = preflight("https://app.example.com").await.expect("options");
    assert_eq!(ok.status().as_u16(), 204);
    assert_eq!(
        ok.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://app.example.com")
    );
    let refused = preflight("https://evil.example").await.expect("options");
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[actix_web::test]
async fn a_request_over_its_deadline_answers_408_in_the_error_shape() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(Engine::Sqlite, |s| s.server.request_timeout_ms = 300).await;
    // A body announced but never sent: the handler waits for it until the deadline.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    stream
        .write_all(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let head_and_body = tokio::time::timeout(WAIT, async {
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if n == 0 || text.contains("\"error\"") && text.ends_with('}') {
                break text.into_owned();
            }
        }
    })
    .await
    .expect("an answer within the wait");
    let lower = head_and_body.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 408"), "{head_and_body}");
    assert!(
        head_and_body.contains("took longer than 300 ms"),
        "{head_and_body}"
    );
}

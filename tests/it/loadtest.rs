//! Provisioning and the load generator against a real node: `seed_users` bulk-creates
//! accounts whose tokens authenticate; tiny runs of every Corral scenario (in-process
//! workers) provision what they need over HTTP, drive the node, and their `result.json`
//! says what happened: connect-capacity connects everyone and reports memory, flash-crowd
//! takes exactly the slots (embedded and Redis + PostgreSQL, and when a node dies mid-crowd
//! its clients claim again on another), chat-storm and soak deliver every message to every
//! member once and in order, feed-burst pushes every post to every follower.

use corral::admin::{SeedRequest, seed_users};
use corral_actors::TokenVerifier;
use corral_loadtest::coordinator::{self, RunOptions, WorkerMode};
use corral_loadtest::scenario::Scenario;
use corral_protocol::Role;
use std::time::Duration;

use crate::claims::redis_mode;
use crate::engine_tests;
use crate::support::{Engine, NodeProcess, TestApp, WAIT, check, unique, wait_until};

async fn seed(app: &TestApp, count: usize, prefix: &str) -> Vec<corral::admin::SeededUser> {
    seed_role(app, count, prefix, Role::User).await
}

async fn seed_role(
    app: &TestApp,
    count: usize,
    prefix: &str,
    role: Role,
) -> Vec<corral::admin::SeededUser> {
    let request = SeedRequest {
        count,
        prefix: prefix.into(),
        role,
        password: "seeded-password".into(),
    };
    seed_users(
        &app.state.db,
        &app.state.keys,
        &app.state.edge.hasher,
        &request,
    )
    .await
    .expect("seed users")
}

/// Seeds `clients` users (and a merchant), writes the tokens files and the scenario (the
/// TOML after the `target` and `tokens` lines), runs it with in-process workers and returns
/// the written `result.json`.
async fn run_scenario(app: &TestApp, clients: usize, scenario: &str) -> serde_json::Value {
    run_scenario_on(std::slice::from_ref(app), clients, scenario).await
}

/// The same against the nodes of one cluster: provisioning on the first, worker `i` on node
/// `i % nodes`.
async fn run_scenario_on(apps: &[TestApp], clients: usize, scenario: &str) -> serde_json::Value {
    let app = &apps[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let users = seed(app, clients, "lt_").await;
    let merchant = seed_role(app, 1, "lt_merchant_", Role::Merchant).await;
    std::fs::write(
        dir.path().join("tokens.json"),
        serde_json::to_vec(&users).expect("json"),
    )
    .expect("write tokens");
    std::fs::write(
        dir.path().join("merchant.json"),
        serde_json::to_vec(&merchant).expect("json"),
    )
    .expect("write merchant tokens");
    let (head, rest) = scenario.split_once('[').expect("a scenario with sections");
    let nodes: Vec<String> = match apps.len() {
        1 => Vec::new(),
        _ => apps.iter().map(TestApp::ws_url).collect(),
    };
    let text = format!(
        "{head}\ntarget = \"{}\"\nnodes = {nodes:?}\ntokens = \"tokens.json\"\nmax_seconds = 60\n[{rest}",
        app.ws_url()
    );
    let file = dir.path().join("scenario.toml");
    std::fs::write(&file, text).expect("write scenario");
    let out = dir.path().join("out");
    let opts = RunOptions {
        target: None,
        out: out.clone(),
        mode: WorkerMode::InProcess,
        server_pid: None,
        progress: false,
    };
    let result = coordinator::run(Scenario::load(&file).expect("scenario"), &opts)
        .await
        .expect("run");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("result.json")).expect("result.json"))
            .expect("json");
    assert_eq!(written["passed"], result.passed);
    assert!(out.join("report.html").exists());
    written
}

fn failed_checks(result: &serde_json::Value) -> Vec<serde_json::Value> {
    result["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["passed"] != true)
        .cloned()
        .collect()
}

/// A flash crowd of 200 clients (two workers) on 2 animals x 10 slots, one claim each, the
/// start 3 s after the connect phase; `crowd` sets the rest of `[crowd]` (jitter, retries,
/// seconds, rules).
fn crowd_of_200(name: &str, crowd: &str) -> String {
    format!(
        r#"
        name = "{name}"
        kind = "flash-crowd"
        workers = 2
        source_addrs = 2
        [connect]
        clients = 200
        ramp_per_sec = 2000
        [crowd]
        merchant_tokens = "merchant.json"
        items = 2
        slots_per_item = 10
        per_user_limit = 1
        start_margin_seconds = 3
        {crowd}
        "#
    )
}

/// 200 clients, 2 animals x 10 slots, one claim each at the start instant (over the nodes
/// given, worker `i` on node `i`).
async fn tiny_flash_crowd(apps: &[TestApp]) {
    let result = run_scenario_on(
        apps,
        200,
        &crowd_of_200("ci-crowd", "jitter_ms = 20\nretries = 3\nseconds = 10"),
    )
    .await;
    assert_eq!(result["passed"], true, "{:?}", failed_checks(&result));
    assert_eq!(result["connected"], 200);
    // The merchant view agrees with what the clients were told: exactly the 20 slots held.
    assert_eq!(result["claims"]["slots"], 20, "{}", result["claims"]);
    assert_eq!(result["claims"]["held"], 20, "{}", result["claims"]);
    // The rules' answers are outcomes, not errors; a crowd is rated by its decisions.
    assert_eq!(
        result["outcomes"]["claim.held"], 20,
        "{}",
        result["outcomes"]
    );
    assert_eq!(
        result["outcomes"]["claim.sold_out"], 180,
        "{}",
        result["outcomes"]
    );
    assert!(
        result["errors"].get("sold_out").is_none(),
        "{}",
        result["errors"]
    );
    assert_eq!(result["counters"]["decisions"], 200);
    let tp = &result["throughput"];
    assert!(
        tp["decisions_per_sec"].as_f64().is_some_and(|r| r > 0.0),
        "{tp}"
    );
    assert!(tp["deliveries_per_sec"].is_null(), "{tp}");
    // The active phase is marked at the promotion's start instant, where the decisions are.
    let phases: Vec<(String, f64)> = result["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["label"].as_str().unwrap_or_default().to_string(),
                p["at_seconds"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect();
    let labels: Vec<&str> = phases.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(labels, ["ready", "starts_at", "done"], "{phases:?}");
    let (ready, starts_at, done) = (phases[0].1, phases[1].1, phases[2].1);
    assert!(ready < starts_at && starts_at < done, "{phases:?}");
    let bin_s = result["timeline_bin_ms"].as_f64().expect("bin") / 1000.0;
    let first_decision = result["timelines"]["decisions"]
        .as_array()
        .and_then(|line| line.iter().position(|n| n.as_u64() > Some(0)))
        .expect("decisions timeline") as f64
        * bin_s;
    assert!(
        first_decision + bin_s >= starts_at && first_decision < starts_at + 1.0,
        "first decision at {first_decision}s, starts_at marked at {starts_at}s"
    );
    assert_eq!(result["latency"]["reply.claim"]["count"], 200);
    // Every subscriber saw the start, and opened claiming on its synced clock.
    assert_eq!(result["latency"]["start_skew"]["count"], 200);
    assert_eq!(result["latency"]["start_error"]["count"], 200);
    let checks = result["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 5, "{checks:?}");
    assert!(result["scenario"]["crowd"]["activity"].as_i64().is_some());
}

#[actix_web::test]
async fn flash_crowd_run_takes_exactly_the_slots_embedded() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    tiny_flash_crowd(std::slice::from_ref(&app)).await;
}

#[actix_web::test]
async fn flash_crowd_run_takes_exactly_the_slots_redis() {
    let prefix = unique("corral_test") + ":";
    let app = TestApp::spawn_with(Engine::Postgres, redis_mode(&prefix)).await;
    tiny_flash_crowd(std::slice::from_ref(&app)).await;
}

/// A coupon crowd: the load generator uploads one code per slot before the start, and the 20
/// winners hold 20 distinct codes.
#[actix_web::test]
async fn flash_crowd_run_with_coupons_gives_one_code_per_winner() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let result = run_scenario(
        &app,
        200,
        &crowd_of_200(
            "ci-coupon-crowd",
            "jitter_ms = 20\nretries = 3\nseconds = 10\nrules = { reward = { kind = \"coupon\" } }",
        ),
    )
    .await;
    assert_eq!(result["passed"], true, "{:?}", failed_checks(&result));
    assert_eq!(result["claims"]["held"], 20, "{}", result["claims"]);
    let activity = result["scenario"]["crowd"]["activity"]
        .as_i64()
        .expect("activity");
    let (loaded, bound, distinct): (i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(claim_id), COUNT(DISTINCT CASE WHEN claim_id IS NOT NULL THEN code END) \
         FROM coupon_codes WHERE activity_id = $1",
    )
    .bind(activity)
    .fetch_one(&app.state.db.pool)
    .await
    .expect("codes");
    assert_eq!((loaded, bound, distinct), (20, 20, 20));
}

/// Two nodes sharing PostgreSQL and Redis, each driven by one worker: still exactly the slots.
#[actix_web::test]
async fn flash_crowd_run_over_two_nodes_takes_exactly_the_slots() {
    let nodes = TestApp::cluster(2, |s| s.ws.max_per_ip = 100_000).await;
    tiny_flash_crowd(&nodes).await;
}

/// Two nodes, and the second stops abruptly (its sockets dropped, no close frame) 150 ms into a
/// crowd spread over 600 ms: its clients move to the first node, claim again with their keys
/// (or subscribe again, if they had not fired yet), and the run is still exact.
#[actix_web::test]
async fn flash_crowd_run_follows_its_clients_when_their_node_dies() {
    let nodes = TestApp::cluster(2, |s| s.ws.max_per_ip = 100_000).await;
    let pool = nodes[0].state.db.pool.clone();
    let victim = nodes[1].server.clone();
    let kill = actix_web::rt::spawn(async move {
        let starts_at = loop {
            let row: Option<i64> =
                sqlx::query_scalar("SELECT starts_at FROM activities ORDER BY id DESC LIMIT 1")
                    .fetch_optional(&pool)
                    .await
                    .expect("query");
            if let Some(at) = row {
                break at;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let now = corral_actors::clock::now_ms();
        tokio::time::sleep(Duration::from_millis((starts_at + 150 - now).max(0) as u64)).await;
        victim.stop(false).await;
    });
    let result = run_scenario_on(
        &nodes,
        200,
        &crowd_of_200(
            "ci-crowd-failover",
            "jitter_ms = 600\nretries = 5\nseconds = 15",
        ),
    )
    .await;
    kill.await.expect("the node was stopped");
    assert_eq!(result["passed"], true, "{:?}", failed_checks(&result));
    assert_eq!(result["claims"]["held"], 20, "{}", result["claims"]);
    let moved = result["counters"]["failovers"].as_u64().unwrap_or(0);
    assert!(moved > 0 && moved <= 100, "{}", result["counters"]);
    // Every client got its decision, from whichever node answered it.
    assert_eq!(
        result["outcomes"]["claim.held"], 20,
        "{}",
        result["outcomes"]
    );
    assert_eq!(
        result["outcomes"]["claim.sold_out"], 180,
        "{}",
        result["outcomes"]
    );
}

#[actix_web::test]
async fn chat_storm_run_delivers_every_message_to_every_member_of_two_rooms() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let result = run_scenario(
        &app,
        100,
        r#"
        name = "ci-chat"
        kind = "chat-storm"
        workers = 2
        [connect]
        clients = 100
        ramp_per_sec = 2000
        [broadcast]
        rooms = 2
        publishers = 4
        rate_per_sec = 5
        seconds = 2
        drain_seconds = 1
        "#,
    )
    .await;
    assert_eq!(result["passed"], true, "{:?}", failed_checks(&result));
    let rooms = result["scenario"]["broadcast"]["room_ids"]
        .as_array()
        .expect("created rooms");
    assert_eq!(rooms.len(), 2);
    assert_ne!(rooms[0], rooms[1]);
    // 4 publishers x 5/s x 2 s = 40 messages, 20 per room, each to the room's 50 members
    // (the sender's own sockets included).
    assert_eq!(result["counters"]["sends"], 40);
    assert_eq!(result["counters"]["deliveries"], 2000);
    assert_eq!(result["latency"]["reply.room.send"]["count"], 40);
    assert_eq!(result["latency"]["delivery"]["count"], 2000);
    assert!(
        result["checks"]
            .as_array()
            .and_then(|checks| checks
                .iter()
                .find(|c| c["name"] == "every message delivered to every member"))
            .and_then(|c| c["detail"].as_str())
            .is_some_and(|d| d.starts_with("40 messages over 2 streams, 100 receiver tallies")),
        "{}",
        result["checks"]
    );
}

#[actix_web::test]
async fn feed_burst_run_pushes_every_post_to_every_follower() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let result = run_scenario(
        &app,
        50,
        r#"
        name = "ci-feed"
        kind = "feed-burst"
        [connect]
        clients = 50
        ramp_per_sec = 2000
        [broadcast]
        publishers = 2
        rate_per_sec = 5
        seconds = 2
        drain_seconds = 1
        "#,
    )
    .await;
    assert_eq!(result["passed"], true, "{:?}", failed_checks(&result));
    // 2 authors x 10 posts, each to the author's 24 followers.
    assert_eq!(result["counters"]["sends"], 20);
    assert_eq!(result["latency"]["reply.follow"]["count"], 48);
    assert_eq!(result["counters"]["deliveries"], 480);
}

#[actix_web::test]
async fn soak_run_catches_up_after_every_reconnect() {
    // A small catch-up window, so coming back usually pages through `room.history` too.
    let app = TestApp::spawn_with(Engine::Sqlite, |s| s.chat.catch_up_window = 5).await;
    let result = run_scenario(
        &app,
        30,
        r#"
        name = "ci-soak"
        kind = "soak"
        [connect]
        clients = 30
        ramp_per_sec = 2000
        [soak]
        seconds = 4
        reconnect_every_ms = 1000
        rate_per_sec = 2
        "#,
    )
    .await;
    assert_eq!(result["passed"], true, "{:?}", failed_checks(&result));
    assert!(result["scenario"]["soak"]["room"].as_i64().is_some());
    let counter = |name: &str| result["counters"][name].as_u64().unwrap_or(0);
    assert!(counter("reconnects") >= 30, "{}", result["counters"]);
    assert!(counter("catch_up_truncated") > 0, "{}", result["counters"]);
    assert!(counter("sends") >= 100, "{}", result["counters"]);
    assert_eq!(
        result["latency"]["reply.room.send"]["count"].as_u64(),
        Some(counter("sends"))
    );
}

/// The soak's mix in a few seconds: besides chat and churn, every client posts to its feed and
/// claims on a promotion the run creates (2 s holds, half given back, half left to expire);
/// every acknowledged post is in its follower's timeline, every acknowledged hold in the
/// merchant view, and no item oversold at any instant.
#[actix_web::test]
async fn soak_run_mixes_posts_and_claims_into_the_churn() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let result = run_scenario(
        &app,
        30,
        r#"
        name = "ci-soak-mix"
        kind = "soak"
        [connect]
        clients = 30
        ramp_per_sec = 2000
        [soak]
        seconds = 6
        reconnect_every_ms = 1500
        rate_per_sec = 1
        posts_per_sec = 10
        [soak.claims]
        per_sec = 10
        merchant_tokens = "merchant.json"
        items = 2
        slots_per_item = 10
        hold_seconds = 2
        cancel_share = 0.5
        "#,
    )
    .await;
    assert_eq!(result["passed"], true, "{:?}", failed_checks(&result));
    let names: Vec<&str> = result["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for check in [
        "every message delivered to every member",
        "held + confirmed <= slots",
        "every acknowledged hold is in the merchant view",
        "no user above the per-user limit",
        "acknowledged holds within the slots and the limit at every instant",
    ] {
        assert!(names.contains(&check), "{check} missing from {names:?}");
    }
    let count = |name: &str| result["latency"][name]["count"].as_u64().unwrap_or(0);
    // Each client posts every 3 s and claims every 3 s for 6 s.
    assert!(count("reply.feed.post") >= 30, "{}", result["latency"]);
    // Every follower read its timeline at the start (the floor) and at the end.
    assert!(count("reply.feed.timeline") >= 60, "{}", result["latency"]);
    // The posts' streams were checked beside the room's.
    let delivered = result["checks"]
        .as_array()
        .and_then(|checks| {
            checks
                .iter()
                .find(|c| c["name"] == "every message delivered to every member")
        })
        .and_then(|c| c["detail"].as_str())
        .unwrap_or_default()
        .to_string();
    let streams: u64 = delivered
        .split(" over ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(streams > 20, "{delivered}");
    assert!(count("reply.claim") >= 30, "{}", result["latency"]);
    assert!(
        result["outcomes"]["claim.held"].as_u64() > Some(0),
        "{}",
        result["outcomes"]
    );
    assert!(
        result["scenario"]["soak"]["claims"]["activity"]
            .as_i64()
            .is_some()
    );
    // Slots churned: holds were given back and holds expired.
    let claims = &result["claims"];
    assert!(claims["cancelled"].as_u64() > Some(0), "{claims}");
    assert!(claims["expired"].as_u64() > Some(0), "{claims}");
    assert_eq!(claims["slots"], 20, "{claims}");
}

/// The soak of issue 20 at CI size: a real node process (embedded), 100 clients in one room
/// for three minutes, 0.2 msg/s each, each dropping its socket every 0-10 s and coming back
/// with `since`, while they post to their feeds (2 posts/s in all) and claim on a promotion (2
/// claims/s in all, 20 s holds, half given back, half left to expire); after a minute's
/// warm-up the node's RSS, open files, connections and actors stay within 5% (sampled once a
/// second), every message still reaches every member, every acknowledged post is in its
/// follower's timeline, and the claims never oversell nor lose an acknowledged hold.
#[actix_web::test]
async fn a_three_minute_soak_keeps_the_node_flat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = |count: &str, prefix: &str, role: &str, out: &str| {
        let seeded = std::process::Command::new(env!("CARGO_BIN_EXE_corral"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["admin", "seed-users", "--count", count, "--prefix", prefix])
            .args(["--role", role, "--out"])
            .arg(dir.path().join(out))
            .output()
            .expect("corral admin seed-users");
        assert!(seeded.status.success(), "{seeded:?}");
    };
    seed("100", "soak", "user", "tokens.json");
    seed("1", "soakmerchant", "merchant", "merchant.json");
    let node = NodeProcess::start(dir.path(), &[("CORRAL_WS__MAX_PER_IP", "100000")]).await;
    let file = dir.path().join("soak.toml");
    std::fs::write(
        &file,
        format!(
            r#"
            name = "ci-soak-3min"
            kind = "soak"
            target = "{}"
            tokens = "tokens.json"
            workers = 1
            max_seconds = 400
            [connect]
            clients = 100
            ramp_per_sec = 1000
            [soak]
            seconds = 180
            reconnect_every_ms = 10000
            rate_per_sec = 0.2
            warmup_seconds = 60
            posts_per_sec = 2
            [soak.claims]
            per_sec = 2
            merchant_tokens = "merchant.json"
            items = 2
            slots_per_item = 20
            hold_seconds = 20
            cancel_share = 0.5
            "#,
            node.ws_url()
        ),
    )
    .expect("write scenario");
    let opts = RunOptions {
        target: None,
        out: dir.path().join("out"),
        mode: WorkerMode::InProcess,
        server_pid: Some(node.pid()),
        progress: false,
    };
    let result = coordinator::run(Scenario::load(&file).expect("scenario"), &opts)
        .await
        .expect("run");
    let watch = result.server_watch.as_ref().expect("the node was watched");
    assert!(
        watch.samples.len() >= 170,
        "{} samples",
        watch.samples.len()
    );
    let flat: Vec<_> = result
        .checks
        .iter()
        .filter(|c| c.name.contains("flat after warm-up"))
        .collect();
    // RSS, open files, and the three gauges from /metrics.
    assert_eq!(flat.len(), 5, "{:?}", result.checks);
    assert!(result.passed, "{:?}", result.checks);
    assert!(result.counters.get("reconnects").copied().unwrap_or(0) >= 1000);
    // The mix ran through the churn: ~360 posts and ~360 claims, and slots churned.
    let replies = |op: &str| result.latency.get(op).map_or(0, |s| s.count);
    assert!(replies("reply.feed.post") >= 250, "{:?}", result.latency);
    assert!(replies("reply.claim") >= 250, "{:?}", result.latency);
    let claims = result.claims.as_ref().expect("the merchant view");
    assert!(claims.cancelled > 50 && claims.expired > 50, "{claims:?}");
    for check in &result.checks {
        println!("{}: {}", check.name, check.detail);
    }
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
    let hub = &app.state.hub;
    wait_until(
        "the node has no socket and no user online",
        WAIT,
        async || {
            let (sockets, online) = (hub.connections.len(), hub.users.online_count());
            check(
                sockets == 0 && online == 0,
                format!("{sockets} sockets, {online} users online"),
            )
        },
    )
    .await;
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

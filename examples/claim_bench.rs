//! Claim decisions per second end to end (WebSocket in, durable hold committed, reply out):
//! 200 authenticated sockets each send 100 `claim` requests one after the other, with fresh
//! keys, against one item with 10^6 slots (so every request takes a slot and commits a row), on
//! one in-process node with the shipped pool size. Right after each mode it runs the bare Redis
//! Lua peer (`redis-benchmark` calling the server's claim script by EVALSHA, 200 clients) and
//! prints the ratio, so both figures come from the same conditions. BENCHMARKS.md has the
//! figures.
//!
//! `cargo run --release --example claim_bench [embedded] [redis]` (both by default). The
//! Redis mode needs PostgreSQL (`CORRAL_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; a fresh database is created) and Redis
//! (`CORRAL_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`; keys under a fresh prefix).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use corral::Application;
use corral::admin::{SeedRequest, seed_users};
use corral::config::{Secret, Settings};
use corral::state::AppState;
use corral::store::redis::ledger::{CLAIM_LUA, RedisArbiter};
use corral_protocol::Role;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const CLIENTS: usize = 200;
const PER: usize = 100;
const SLOTS: i64 = 1_000_000;

fn main() {
    let modes: Vec<String> = std::env::args().skip(1).collect();
    let modes = if modes.is_empty() {
        vec!["embedded".to_string(), "redis".to_string()]
    } else {
        modes
    };
    actix_web::rt::System::new().block_on(async move {
        for mode in &modes {
            match mode.as_str() {
                "embedded" => run("embedded (SQLite)", false).await,
                "redis" => run("Redis + PostgreSQL", true).await,
                other => panic!("unknown mode {other:?}: embedded or redis"),
            }
        }
    });
}

/// A name unique to this run.
fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), rand::random::<u32>())
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

/// Creates a fresh PostgreSQL database and returns its URL.
async fn fresh_postgres_database() -> String {
    sqlx::any::install_default_drivers();
    let admin = env_or(
        "CORRAL_TEST_DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    let name = unique("corral_bench");
    let mut conn = sqlx::AnyConnection::connect(&admin)
        .await
        .expect("PostgreSQL reachable");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create the database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

/// Starts a node (embedded, or cluster mode on PostgreSQL + Redis) with the shipped pool size.
async fn node(dir: &std::path::Path, redis: bool) -> (u16, actix_web::web::Data<AppState>) {
    let mut s = Settings::defaults().expect("defaults");
    s.server.listen = "127.0.0.1:0".into();
    s.server.data_dir = dir.to_path_buf();
    s.server.workers = 1;
    s.database.sqlite_synchronous = "normal".into();
    s.ws.max_per_ip = 100_000;
    s.log.filter = "warn".into();
    if redis {
        s.database.url = Secret::from(fresh_postgres_database().await);
        s.redis.url = Secret::from(env_or("CORRAL_TEST_REDIS_URL", "redis://127.0.0.1:6379"));
        s.redis.key_prefix = unique("corral_bench") + ":";
    }
    corral::telemetry::init_logging(&s.log);
    let app = Application::build(s).await.expect("build the node");
    let (port, state) = (app.port(), app.state());
    actix_web::rt::spawn(app.run_until_stopped());
    (port, state)
}

/// POSTs JSON as `token`, returning the body of a 201.
async fn created(port: u16, path: &str, token: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v1{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("http");
    assert_eq!(resp.status().as_u16(), 201, "{path}");
    resp.json().await.expect("json")
}

/// An activity of one animal with [`SLOTS`] slots and no practical per-user limit, live once
/// this returns.
async fn activity(port: u16, state: &AppState) -> i64 {
    let merchant = seed(state, 1, Role::Merchant).await.remove(0);
    let animal = created(
        port,
        "/animals",
        &merchant,
        json!({"name": "Bench", "species": "cow", "price_cents": 100, "slots": SLOTS}),
    )
    .await["animal_id"]
        .as_i64()
        .expect("animal");
    let starts_at = corral_actors::clock::now_ms() + 1_000;
    let activity = created(
        port,
        "/activities",
        &merchant,
        json!({
            "title": "bench", "starts_at": starts_at, "ends_at": starts_at + 3_600_000,
            "items": [{"animal_id": animal, "slots": SLOTS}],
            "per_user_limit": SLOTS, "hold_seconds": 3_600,
        }),
    )
    .await["activity_id"]
        .as_i64()
        .expect("activity");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    activity
}

/// `n` accounts with `role`; returns their tokens.
async fn seed(state: &AppState, n: usize, role: Role) -> Vec<String> {
    let request = SeedRequest {
        count: n,
        prefix: unique("b"),
        role,
        password: "bench-password".into(),
    };
    seed_users(&state.db, &state.keys, &state.edge.hasher, &request)
        .await
        .expect("seed users")
        .into_iter()
        .map(|u| u.token)
        .collect()
}

/// One socket claiming [`PER`] times in a row; returns how many were held.
async fn client(port: u16, token: String, activity: i64, tag: usize) -> usize {
    let mut req = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .expect("request");
    let headers = req.headers_mut();
    headers.insert("Sec-WebSocket-Protocol", "corral.v1".parse().expect("h"));
    headers.insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("h"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    let mut held = 0;
    for id in 1..=PER as u64 {
        let frame =
            json!({"id": id, "op": "claim", "activity": activity, "key": format!("{tag}-{id}")});
        ws.send(Message::text(frame.to_string()))
            .await
            .expect("send");
        loop {
            let text = match ws.next().await {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                other => panic!("the socket closed: {other:?}"),
            };
            let reply: Value = serde_json::from_str(&text).expect("json");
            if reply["re"] == id {
                held += usize::from(reply["ok"]["status"] == "held");
                break;
            }
        }
    }
    held
}

/// The node's hold batches so far: (batches, rows, seconds committing), from its metrics.
fn claim_batches(state: &AppState) -> (f64, f64, f64) {
    let text = state.metrics.render();
    let read = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains("table=\"claims\""))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    (
        read("corral_sql_batch_size_count"),
        read("corral_sql_batch_size_sum"),
        read("corral_sql_batch_seconds_sum"),
    )
}

async fn run(label: &str, redis: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, state) = node(dir.path(), redis).await;
    let tokens = seed(&state, CLIENTS, Role::User).await;
    let activity = activity(port, &state).await;
    let before = claim_batches(&state);
    let started = Instant::now();
    // The clients run on a runtime of their own, off the node's threads.
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let tasks: Vec<_> = tokens
                .into_iter()
                .enumerate()
                .map(|(tag, token)| tokio::spawn(client(port, token, activity, tag)))
                .collect();
            let mut held = 0;
            for task in tasks {
                held += task.await.expect("client");
            }
            held
        })
    });
    while !handle.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = handle.join().expect("clients");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(held, CLIENTS * PER, "every claim is a durable hold");
    let rate = (CLIENTS * PER) as f64 / secs;
    println!(
        "{label}: {} durable claim decisions in {secs:.2} s = {rate:.0}/s ({CLIENTS} sockets, sequential per socket)",
        CLIENTS * PER,
    );
    let (count, rows, commit) = claim_batches(&state);
    let count = count - before.0;
    println!(
        "  {count:.0} hold batches, mean {:.1} rows, mean commit {:.2} ms",
        (rows - before.1) / count.max(1.0),
        1000.0 * (commit - before.2) / count.max(1.0),
    );
    match bare_lua_peer(CLIENTS).await {
        Some(peer) => println!(
            "  bare Redis Lua peer right after (redis-benchmark, {CLIENTS} clients): {peer:.0} calls/s; ratio {:.2}x",
            rate / peer
        ),
        None => println!("  (redis-benchmark not found: no peer figure)"),
    }
}

/// The peer: `redis-benchmark` calling the server's claim script by EVALSHA (`claims` op
/// with one claim a call, random user and key, one item with 10^9 slots), as BENCHMARKS.md describes. Calls per
/// second, or `None` without `redis-benchmark`.
async fn bare_lua_peer(clients: usize) -> Option<f64> {
    let url = env_or("CORRAL_TEST_REDIS_URL", "redis://127.0.0.1:6379");
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(CLAIM_LUA)
        .query_async(&mut conn)
        .await
        .expect("script load");
    let keys = RedisArbiter::keys(&(unique("bench:claims") + ":"), 1);
    let expire = (corral_actors::clock::now_ms() + 3_600_000).to_string();
    let _: Vec<String> = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(5)
        .arg(&keys)
        .arg(&["init", &expire, "1:1000000000", "1", "1", "1", "1000000000"][..])
        .query_async(&mut conn)
        .await
        .expect("init");
    let clients = clients.to_string();
    let mut args = vec!["-q", "-n", "100000", "-c", &clients, "-r", "100000000"];
    args.extend(["EVALSHA", &sha, "5"]);
    args.extend(keys.iter().map(String::as_str));
    args.extend([
        "claims",
        &expire,
        "1000000000",
        "__rand_int__",
        "k__rand_int__",
        "",
    ]);
    let out = std::process::Command::new("redis-benchmark")
        .args(&args)
        .output()
        .ok()?;
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .expect("cleanup");
    // "EVALSHA ...: 35236.00 requests per second, p50=1.2 msec"
    String::from_utf8_lossy(&out.stdout)
        .split('\r')
        .filter_map(|line| line.split(": ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .next_back()
}

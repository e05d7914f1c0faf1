//! Animal claims, end to end: flash crowds of real WebSocket clients (embedded and
//! Redis + PostgreSQL), the per-user limit, idempotent keys, expiry and cancel, the payment
//! webhook and the merchant view — each run checked against the durable rows by a history
//! checker.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use corral::auth::JwtKeys;
use corral::config::Settings;
use corral_protocol::Role;
use serde_json::{Value, json};
use sqlx::{AnyPool, Row};

use crate::support::{Engine, TestApp, WsClient, redis_url, unique};

/// Ids for seeded rows, unique across the nodes of one test process.
fn next_id() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static NEXT: AtomicI64 = AtomicI64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed) + (std::process::id() as i64 % 1000) * 1_000_000
}

pub fn now_ms() -> i64 {
    corral_actors::clock::now_ms()
}

/// One promotion to seed.
pub struct Promo {
    pub starts_at: i64,
    pub ends_at: i64,
    pub slots: Vec<i64>,
    pub per_user_limit: i64,
    pub hold_seconds: i64,
}

impl Promo {
    /// `items` one-slot animals, open now for a minute.
    pub fn open(items: usize) -> Promo {
        Promo {
            starts_at: now_ms() - 1,
            ends_at: now_ms() + 60_000,
            slots: vec![1; items],
            per_user_limit: 1,
            hold_seconds: 60,
        }
    }
}

/// Seeds a merchant, animals and an activity; returns (activity id, item ids, merchant token).
pub async fn seed(app: &TestApp, promo: &Promo) -> (i64, Vec<i64>, String) {
    seed_in(&app.state.db.pool, &app.state.keys, promo).await
}

/// [`seed`] through a pool and token keys.
pub async fn seed_in(pool: &AnyPool, keys: &JwtKeys, promo: &Promo) -> (i64, Vec<i64>, String) {
    let merchant = bulk_users_in(pool, keys, 1, Role::Merchant).await.remove(0);
    let activity = next_id();
    sqlx::query(
        "INSERT INTO activities (id, merchant_id, title, starts_at, ends_at, per_user_limit, \
         hold_seconds, status, created_at, updated_at) VALUES ($1, $2, 'promo', $3, $4, $5, $6, 'scheduled', 0, 0)",
    )
    .bind(activity)
    .bind(merchant.0)
    .bind(promo.starts_at)
    .bind(promo.ends_at)
    .bind(promo.per_user_limit)
    .bind(promo.hold_seconds)
    .execute(pool)
    .await
    .expect("activity");
    let mut items = Vec::new();
    for slots in &promo.slots {
        let animal = next_id();
        sqlx::query(
            "INSERT INTO animals (id, merchant_id, name, species, description, image_urls, price_cents, \
             slots, created_at, updated_at) VALUES ($1, $2, 'a', 'sheep', '', '[]', 100, $3, 0, 0)",
        )
        .bind(animal)
        .bind(merchant.0)
        .bind(*slots)
        .execute(pool)
        .await
        .expect("animal");
        let item = next_id();
        sqlx::query("INSERT INTO activity_items (id, activity_id, animal_id, slots) VALUES ($1, $2, $3, $4)")
            .bind(item)
            .bind(activity)
            .bind(animal)
            .bind(*slots)
            .execute(pool)
            .await
            .expect("item");
        items.push(item);
    }
    (activity, items, merchant.1)
}

/// `n` users inserted in bulk with tokens issued by the node's keys (register + argon2 would
/// dominate a 2,000-client test; the WebSocket only checks the token).
pub async fn bulk_users(app: &TestApp, n: usize, role: Role) -> Vec<(i64, String)> {
    bulk_users_in(&app.state.db.pool, &app.state.keys, n, role).await
}

/// [`bulk_users`] through a pool and token keys.
pub async fn bulk_users_in(
    pool: &AnyPool,
    keys: &JwtKeys,
    n: usize,
    role: Role,
) -> Vec<(i64, String)> {
    let mut out = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let values: Vec<String> = chunk
            .iter()
            .map(|_| format!("('{}', 'x', '{}', 0)", unique("b"), role.as_str()))
            .collect();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO users (username, password_hash, role, created_at) VALUES {} RETURNING id",
            values.join(", ")
        )))
        .fetch_all(pool)
        .await
        .expect("bulk users");
        for row in rows {
            let id: i64 = row.get(0);
            out.push((id, keys.issue(id, role).expect("token")));
        }
    }
    out
}

/// What one client saw for one claim invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Held {
        claim_id: i64,
        item: i64,
    },
    Refused(String),
    /// No answer (timeout, connection lost): the hold may or may not exist.
    Unknown,
}

/// One invocation and its outcome, as the history checker reads it.
#[derive(Debug, Clone)]
pub struct Event {
    pub user: i64,
    pub key: String,
    pub outcome: Outcome,
    /// From sending the claim to its reply (zero when unknown).
    pub latency: Duration,
}

fn outcome_of(reply: Result<Value, corral_protocol::ErrorBody>) -> Outcome {
    match reply {
        Ok(ok) => Outcome::Held {
            claim_id: ok["claim_id"].as_i64().expect("claim_id"),
            item: ok["item"].as_i64().expect("item"),
        },
        Err(err) => Outcome::Refused(err.code.as_str().to_string()),
    }
}

/// Checks a history against the durable rows: no acknowledged hold missing (and each is the
/// claimant's), no item with more active claims than slots, nobody above the limit, and
/// conservation (free + held + confirmed = slots, with `left` from the ledger when given).
pub async fn check_history(
    app: &TestApp,
    activity: i64,
    slots: &HashMap<i64, i64>,
    limit: i64,
    history: &[Event],
) {
    let stock = app
        .state
        .hub
        .claims
        .watch_stock(activity)
        .await
        .expect("stock")
        .expect("activity");
    // The coalesced view may lag by one period.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let left = stock.borrow().left;
    check_rows(
        &app.state.db.pool,
        activity,
        slots,
        limit,
        history,
        Some(left),
    )
    .await;
}

/// [`check_history`] against a pool, with the ledger's `left` when known.
pub async fn check_rows(
    pool: &AnyPool,
    activity: i64,
    slots: &HashMap<i64, i64>,
    limit: i64,
    history: &[Event],
    left: Option<i64>,
) {
    let rows = sqlx::query(
        "SELECT id, item_id, user_id, claim_key, status FROM claims WHERE activity_id = $1",
    )
    .bind(activity)
    .fetch_all(pool)
    .await
    .expect("claims");
    let mut by_id = HashMap::new();
    let mut per_item: HashMap<i64, i64> = HashMap::new();
    let mut per_user: HashMap<i64, i64> = HashMap::new();
    for row in &rows {
        let (id, item, user, key, status): (i64, i64, i64, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        if status == "held" || status == "confirmed" {
            *per_item.entry(item).or_default() += 1;
            *per_user.entry(user).or_default() += 1;
        }
        by_id.insert(id, (item, user, key, status));
    }
    for event in history {
        if let Outcome::Held { claim_id, item } = &event.outcome {
            let row = by_id
                .get(claim_id)
                .unwrap_or_else(|| panic!("acknowledged hold {claim_id} is missing"));
            assert_eq!((row.0, row.1, &row.2), (*item, event.user, &event.key));
        }
    }
    for (item, n) in &per_item {
        let cap = slots.get(item).copied().unwrap_or(0);
        assert!(*n <= cap, "item {item} has {n} owners for {cap} slots");
    }
    for (user, n) in &per_user {
        assert!(
            *n <= limit,
            "user {user} has {n} active claims, limit {limit}"
        );
    }
    let total: i64 = slots.values().sum();
    let active: i64 = per_item.values().sum();
    assert!(active <= total);
    if let Some(left) = left {
        assert_eq!(
            left + active,
            total,
            "conservation: free {left} + active {active} != {total}"
        );
    }
}

/// Runs `users.len()` clients (one socket each), split over `threads` OS threads with their
/// own runtimes: all connect and authenticate, then claim `activity` at `at` (any item, one
/// key each). Returns every client's invocation and outcome; `held_acks` counts the `held`
/// replies as they arrive.
pub fn crowd(
    ports: Vec<u16>,
    users: Vec<(i64, String)>,
    activity: i64,
    at: i64,
    threads: usize,
    answered: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<Vec<Event>> {
    std::thread::spawn(move || {
        let users = Arc::new(users);
        let per = users.len().div_ceil(threads);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let users = users.clone();
                let ports = ports.clone();
                let answered = answered.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(async move {
                        let mine: Vec<_> = users.iter().skip(t * per).take(per).cloned().collect();
                        let tasks: Vec<_> = mine
                            .into_iter()
                            .enumerate()
                            .map(|(i, (user, token))| {
                                let port = ports[(t + i) % ports.len()];
                                let answered = answered.clone();
                                let client = one_client(port, user, token, activity, at, answered);
                                (user, tokio::spawn(client))
                            })
                            .collect();
                        let mut out = Vec::new();
                        for (user, task) in tasks {
                            // A client whose connection dropped mid-request panics in the
                            // harness: its outcome is unknown.
                            out.push(task.await.unwrap_or_else(|_| Event {
                                user,
                                key: format!("k-{user}"),
                                outcome: Outcome::Unknown,
                                latency: Duration::ZERO,
                            }));
                        }
                        out
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect()
    })
}

async fn one_client(
    port: u16,
    user: i64,
    token: String,
    activity: i64,
    at: i64,
    held_acks: Arc<AtomicUsize>,
) -> Event {
    let key = format!("k-{user}"); // also in `crowd`
    let unknown = Event {
        user,
        key: key.clone(),
        outcome: Outcome::Unknown,
        latency: Duration::ZERO,
    };
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut ws = None;
    for _ in 0..20 {
        if let Ok(c) = WsClient::connect(&url, Some(&token)).await {
            ws = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(mut ws) = ws else {
        eprintln!("client {user} could not connect to {port}");
        return unknown;
    };
    let wait = at - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let sent = std::time::Instant::now();
    let id = ws
        .send_op("claim", json!({"activity": activity, "key": key}))
        .await;
    let reply = tokio::time::timeout(Duration::from_secs(30), ws.reply_to(Some(id))).await;
    match reply {
        Ok(reply) => {
            let outcome = outcome_of(reply);
            if matches!(outcome, Outcome::Held { .. }) {
                held_acks.fetch_add(1, Ordering::Relaxed);
            }
            Event {
                user,
                key,
                outcome,
                latency: sent.elapsed(),
            }
        }
        Err(_) => {
            eprintln!("client {user} got no reply from {port}");
            unknown
        }
    }
}

fn tally(history: &[Event]) -> (usize, usize, usize) {
    let held = history
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Held { .. }))
        .count();
    let sold_out = history
        .iter()
        .filter(|e| e.outcome == Outcome::Refused("sold_out".into()))
        .count();
    (held, sold_out, history.len())
}

pub(crate) fn redis_mode(prefix: &str) -> impl FnOnce(&mut Settings) + '_ {
    move |s: &mut Settings| {
        s.redis.url = corral::config::Secret::new(redis_url());
        s.redis.key_prefix = prefix.to_string();
        // Nodes of one cluster share the token key.
        s.auth.jwt_secret = corral::config::Secret::new(format!("{prefix}-jwt"));
        s.ws.max_per_ip = 100_000;
    }
}

/// The benchmarks run with the shipped pool size (the tests' default is smaller, so a long
/// run's many nodes do not exhaust PostgreSQL's connection slots).
fn shipped_pool(s: &mut Settings) {
    s.database.max_connections = Settings::defaults()
        .expect("defaults")
        .database
        .max_connections;
}

fn roomy(s: &mut Settings) {
    s.ws.max_per_ip = 100_000;
}

async fn flash_crowd(app: &TestApp, ports: Vec<u16>) {
    const CLIENTS: usize = 2000;
    const SLOTS: usize = 100;
    let users = bulk_users(app, CLIENTS, Role::User).await;
    let start = now_ms() + 6000;
    let promo = Promo {
        starts_at: start,
        ..Promo::open(SLOTS)
    };
    let (activity, items, _) = seed(app, &promo).await;
    let nodes = ports.len();
    let crowd = crowd(ports, users, activity, start, 4, Arc::default());
    let history = loop {
        if crowd.is_finished() {
            break crowd.join().expect("crowd");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (held, sold_out, answered) = tally(&history);
    assert_eq!(answered, CLIENTS);
    assert_eq!(
        (held, sold_out),
        (SLOTS, CLIENTS - SLOTS),
        "{:?}",
        &history[..3]
    );
    let slots = items.iter().map(|i| (*i, 1)).collect();
    check_history(app, activity, &slots, 1, &history).await;
    let owners: HashSet<i64> = history
        .iter()
        .filter_map(|e| match e.outcome {
            Outcome::Held { item, .. } => Some(item),
            _ => None,
        })
        .collect();
    assert_eq!(owners.len(), SLOTS, "each slot has exactly one owner");
    let mut latencies: Vec<Duration> = history.iter().map(|e| e.latency).collect();
    latencies.sort();
    eprintln!(
        "crowd of {CLIENTS} on {nodes} node(s): claim reply p50 {:?}, p99 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
        latencies[latencies.len() - 1],
    );
}

/// Claim decisions per second end to end (WebSocket in, durable hold, reply out): `CLIENTS`
/// sockets each claim `PER` times in a row with fresh keys from a large stock. Run with
/// `cargo test --release --test it claims::bench -- --ignored --nocapture`.
async fn decisions_per_second(app: &TestApp, label: &str) {
    const CLIENTS: usize = 200;
    const PER: usize = 100;
    let users = bulk_users(app, CLIENTS, Role::User).await;
    let promo = Promo {
        slots: vec![1_000_000],
        per_user_limit: 1_000_000,
        ..Promo::open(0)
    };
    let (activity, _, _) = seed(app, &promo).await;
    let url = app.ws_url();
    let batches_before = claim_batches(app);
    let started = std::time::Instant::now();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let tasks: Vec<_> = users
                .into_iter()
                .map(|(user, token)| {
                    let url = url.clone();
                    tokio::spawn(async move {
                        let mut ws = WsClient::connect(&url, Some(&token)).await.expect("ws");
                        let mut held = 0;
                        for i in 0..PER {
                            let r = ws
                                .request(
                                    "claim",
                                    json!({"activity": activity, "key": format!("{user}-{i}")}),
                                )
                                .await;
                            held += usize::from(r.is_ok());
                        }
                        held
                    })
                })
                .collect();
            let mut held = 0;
            for t in tasks {
                held += t.await.expect("client");
            }
            held
        })
    });
    let held = loop {
        if handle.is_finished() {
            break handle.join().expect("bench");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(held, CLIENTS * PER);
    let rate = (CLIENTS * PER) as f64 / secs;
    eprintln!(
        "{label}: {} durable claim decisions in {secs:.2} s = {rate:.0}/s ({CLIENTS} sockets, sequential per socket)",
        CLIENTS * PER,
    );
    let (count, rows, secs) = claim_batches(app);
    let count = count - batches_before.0;
    eprintln!(
        "  {count:.0} hold batches, mean {:.1} rows, mean commit {:.2} ms",
        (rows - batches_before.1) / count.max(1.0),
        1000.0 * (secs - batches_before.2) / count.max(1.0),
    );
    match bare_lua_peer(CLIENTS).await {
        Some(peer) => eprintln!(
            "  bare Redis Lua peer right after (redis-benchmark, {CLIENTS} clients): {peer:.0} calls/s; ratio {:.2}x",
            rate / peer
        ),
        None => eprintln!("  (redis-benchmark not found: no peer figure)"),
    }
}

/// The node's hold batches so far: (batches, rows, seconds committing), from `/metrics`.
fn claim_batches(app: &TestApp) -> (f64, f64, f64) {
    let text = app.state.metrics.render();
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

/// The peer of the claim benchmarks: `redis-benchmark` calling the server's claim script by
/// EVALSHA (`claim` op, random user and key, one item with 10^9 slots), as BENCHMARKS.md
/// describes. Calls per second, or `None` without `redis-benchmark`.
async fn bare_lua_peer(clients: usize) -> Option<f64> {
    use corral::store::redis_ledger::{CLAIM_LUA, RedisArbiter};
    let client = redis::Client::open(redis_url()).expect("redis url");
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
    let expire = (now_ms() + 3_600_000).to_string();
    let _: Vec<String> = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(5)
        .arg(&keys)
        .arg(&["init", &expire, "1:1000000000", "1", "1", "1000000000"][..])
        .query_async(&mut conn)
        .await
        .expect("init");
    let clients = clients.to_string();
    let mut args = vec!["-q", "-n", "100000", "-c", &clients, "-r", "100000000"];
    args.extend(["EVALSHA", &sha, "5"]);
    args.extend(keys.iter().map(String::as_str));
    args.extend([
        "claim",
        &expire,
        "__rand_int__",
        "k__rand_int__",
        "",
        "1000000000",
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

#[actix_web::test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
async fn bench_decisions_embedded() {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| {
        roomy(s);
        shipped_pool(s);
    })
    .await;
    decisions_per_second(&app, "embedded (SQLite)").await;
}

#[actix_web::test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
async fn bench_decisions_redis() {
    let prefix = unique("corral_bench") + ":";
    let app = TestApp::spawn_with(Engine::Postgres, |s| {
        redis_mode(&prefix)(s);
        shipped_pool(s);
    })
    .await;
    decisions_per_second(&app, "Redis + PostgreSQL").await;
}

#[actix_web::test]
async fn crowd_takes_exactly_the_slots_embedded() {
    let app = TestApp::spawn_with(Engine::Sqlite, roomy).await;
    flash_crowd(&app, vec![app.port]).await;
}

#[actix_web::test]
async fn crowd_takes_exactly_the_slots_redis_on_two_nodes() {
    let nodes = TestApp::cluster(2, |s| s.ws.max_per_ip = 100_000).await;
    flash_crowd(&nodes[0], vec![nodes[0].port, nodes[1].port]).await;
}

/// Claims `activity` with `key`, expecting a hold.
async fn hold(ws: &mut WsClient, activity: i64, key: String) {
    let reply = ws
        .request("claim", json!({"activity": activity, "key": key}))
        .await;
    assert_eq!(reply.expect("held")["status"], "held");
}

/// A node allowing one `activity.stock` frame a second per activity, an open activity with
/// 10 one-slot items (limit 10 per user), a claimant, and two watchers subscribed to it (so
/// stock frames are at least 2 s apart).
async fn two_watchers_on_a_budget() -> (TestApp, i64, WsClient, Vec<WsClient>) {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| s.promotions.stock_frames_per_sec = 1).await;
    let promo = Promo {
        per_user_limit: 10,
        ..Promo::open(10)
    };
    let (activity, _, _) = seed(&app, &promo).await;
    let (_, alice) = bulk_users(&app, 1, Role::User).await.remove(0);
    let claimant = app.client(Some(&alice)).await;
    let mut watchers = Vec::new();
    for _ in 0..2 {
        let mut watcher = app.client(Some(&alice)).await;
        let sub = watcher
            .request("activity.subscribe", json!({"activity": activity}))
            .await
            .expect("subscribe");
        assert_eq!(sub["stock_left"], 10);
        watchers.push(watcher);
    }
    (app, activity, claimant, watchers)
}

/// `activity.stock` stays within the node's frame budget: with a budget of one frame a second
/// and two watchers (a frame every 2 s), five holds over ~600 ms give the first count at once
/// and the other four folded into one frame with the newest count (without the budget, each
/// would have its own frame, 100 ms apart).
#[actix_web::test]
async fn stock_frames_stay_within_the_budget() {
    let (_app, activity, mut claimant, mut watchers) = two_watchers_on_a_budget().await;
    for i in 0..5 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        hold(&mut claimant, activity, format!("k{i}")).await;
    }
    for watcher in &mut watchers {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let stock = watcher.next_event("activity.stock").await.expect("stock");
            seen.push(stock["left"].as_i64().expect("left"));
        }
        assert_eq!(seen, [9, 5]);
        watcher.assert_silent("activity.stock", 300).await;
    }
}

/// A stock count waiting for its turn survives a supervised restart of the activity actor:
/// the restarted actor re-arms its timer and the newest count still goes out.
#[actix_web::test]
async fn a_waiting_stock_count_survives_an_actor_restart() {
    let (app, activity, mut claimant, mut watchers) = two_watchers_on_a_budget().await;
    hold(&mut claimant, activity, "k0".into()).await;
    let first = watchers[0]
        .next_event("activity.stock")
        .await
        .expect("stock");
    assert_eq!(first["left"], 9);
    // The next count waits (a frame every 2 s for two watchers); the actor restarts meanwhile.
    hold(&mut claimant, activity, "k1".into()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.state.hub.activities.inject_panic(activity));
    let second = watchers[0]
        .next_event("activity.stock")
        .await
        .expect("stock");
    assert_eq!(second["left"], 8);
}

/// A slot taken in Redis by a node that died before its hold row committed (here: the claim
/// script run directly, no row) is given back by reconciliation on the second pass that sees
/// it, while claims committing during the passes keep theirs and the counters match the rows.
#[actix_web::test]
async fn reconciliation_returns_orphan_slots_in_redis() {
    use corral::store::claims::{ClaimRows, SqlCatalog};
    use corral::store::ledger::SlotArbiter;
    use corral::store::reconcile::{Reconciled, Reconciler};
    use corral::store::redis_ledger::RedisArbiter;
    use corral_actors::claims::{ActivityCatalog, Decision};

    const SLOTS: i64 = 12;
    let prefix = unique("corral_test") + ":";
    let app = TestApp::spawn_with(Engine::Postgres, |s| {
        redis_mode(&prefix)(s);
        s.redis.claims_reconcile_ms = 0;
    })
    .await;
    let promo = Promo {
        slots: vec![SLOTS],
        per_user_limit: 100,
        ..Promo::open(0)
    };
    let (activity, items, _) = seed(&app, &promo).await;
    let users = bulk_users(&app, 2, Role::User).await;
    let (user, token) = users[0].clone();
    let mut ws = WsClient::connect(&app.ws_url(), Some(&token))
        .await
        .expect("ws");
    for i in 0..4 {
        hold(&mut ws, activity, format!("before-{i}")).await;
    }

    let db = Arc::new(app.state.db.clone());
    let catalog = Arc::new(SqlCatalog::new(db.clone()));
    let spec = catalog.spec(activity).await.unwrap().expect("spec");
    let arbiter = RedisArbiter::new(app.state.redis.clone().expect("redis"))
        .await
        .unwrap();
    let orphan_user = users[1].0;
    let took = arbiter.decide(&spec, orphan_user, "orphan", None).await;
    assert_eq!(took.unwrap(), Some(Decision::Take(items[0])));
    assert_eq!(arbiter.stock(&spec).await.unwrap().left, SLOTS - 5);

    let reconciler = Reconciler::new(
        arbiter.clone(),
        ClaimRows::start(app.state.db.clone(), 1),
        catalog,
    );
    let first = reconciler.pass().await.unwrap();
    assert_eq!((first.orphans, first.suspects), (0, 1), "{first:?}");
    assert_eq!(arbiter.stock(&spec).await.unwrap().left, SLOTS - 5);

    // Claims committing while the second pass runs: the pass may see their slots without
    // rows, but only as first-time suspects.
    let mut other = WsClient::connect(&app.ws_url(), Some(&token))
        .await
        .expect("ws");
    let during = async {
        for i in 0..4 {
            hold(&mut other, activity, format!("during-{i}")).await;
        }
    };
    let (second, ()) = tokio::join!(reconciler.pass(), during);
    assert_eq!(second.unwrap().orphans, 1);
    let third = reconciler.pass().await.unwrap();
    assert_eq!(
        third,
        Reconciled::default(),
        "the passes left nothing to fix"
    );

    // The orphan's slot is back: 8 committed holds, and the key is voided for good.
    let rows = app
        .state
        .db
        .claims_of_activity(activity)
        .await
        .expect("rows");
    let held: Vec<_> = rows
        .iter()
        .filter(|c| c.status.as_str() == "held")
        .collect();
    assert_eq!(held.len(), 8);
    assert!(held.iter().all(|c| c.user == user));
    let voided = rows.iter().find(|c| c.key == "orphan").expect("void row");
    assert_eq!(
        (voided.user, voided.status.as_str()),
        (orphan_user, "cancelled")
    );
    assert_eq!(arbiter.stock(&spec).await.unwrap().left, SLOTS - 8);
    let mut in_redis: Vec<String> = arbiter
        .held(&spec)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.key)
        .collect();
    in_redis.sort();
    let mut committed: Vec<String> = held.iter().map(|c| c.key.clone()).collect();
    committed.sort();
    assert_eq!(in_redis, committed);
    // Every remaining slot can still be claimed, and no more.
    for i in 0..SLOTS - 8 {
        hold(&mut ws, activity, format!("after-{i}")).await;
    }
    let sold_out = ws
        .request(
            "claim",
            json!({"activity": activity, "key": "one-too-many"}),
        )
        .await
        .expect_err("sold out");
    assert_eq!(sold_out.code.as_str(), "sold_out");
}

crate::engine_tests!(
    limit_holds_across_devices_and_keys_repeat,
    expiry_and_cancel_return_stock,
    webhook_confirms_exactly_once,
    window_is_decided_by_the_server_clock,
);

async fn limit_holds_across_devices_and_keys_repeat(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let promo = Promo {
        per_user_limit: 2,
        ..Promo::open(10)
    };
    let (activity, items, _) = seed(&app, &promo).await;
    let (user, token) = bulk_users(&app, 1, Role::User).await.remove(0);
    // Four devices of one user, three keys each, all at once.
    let mut devices = Vec::new();
    for _ in 0..4 {
        devices.push(app.client(Some(&token)).await);
    }
    // Replies on one socket may come in any order, so each round has one claim in flight
    // per device, the devices racing each other.
    let mut history = Vec::new();
    for k in 0..3 {
        let mut sent = Vec::new();
        for (d, ws) in devices.iter_mut().enumerate() {
            let key = format!("d{d}-k{k}");
            let id = ws
                .send_op("claim", json!({"activity": activity, "key": key}))
                .await;
            sent.push((d, id, key));
        }
        for (d, id, key) in sent {
            let outcome = outcome_of(devices[d].reply_to(Some(id)).await);
            history.push(Event {
                user,
                key,
                outcome,
                latency: Duration::ZERO,
            });
        }
    }
    let held: Vec<_> = history
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Held { .. }))
        .collect();
    assert_eq!(held.len(), 2, "{history:?}");
    assert_eq!(
        history
            .iter()
            .filter(|e| e.outcome == Outcome::Refused("limit_reached".into()))
            .count(),
        10
    );
    // Every device of the claimant is told about each hold.
    for ws in &mut devices {
        let pushed = ws.next_event("claim.updated").await.expect("claim.updated");
        assert_eq!(pushed["status"], "held");
    }
    // The same key gives the same claim, also on a new connection; a refused key stays refused.
    let first = held[0].clone();
    let mut again = app.client(Some(&token)).await;
    let reply = again
        .request("claim", json!({"activity": activity, "key": first.key}))
        .await;
    assert_eq!(outcome_of(reply), first.outcome);
    let refused = history
        .iter()
        .find(|e| matches!(e.outcome, Outcome::Refused(_)))
        .expect("a refusal");
    let reply = again
        .request("claim", json!({"activity": activity, "key": refused.key}))
        .await;
    assert_eq!(outcome_of(reply), refused.outcome);
    // Another user with the same key is another claim.
    let (_, other) = bulk_users(&app, 1, Role::User).await.remove(0);
    let mut ws = app.client(Some(&other)).await;
    let reply = ws
        .request("claim", json!({"activity": activity, "key": first.key}))
        .await;
    assert!(matches!(outcome_of(reply), Outcome::Held { claim_id, .. }
        if Outcome::Held { claim_id, item: 0 } != first.outcome));
    let slots = items.iter().map(|i| (*i, 1)).collect();
    check_history(&app, activity, &slots, 2, &history).await;
}

async fn window_is_decided_by_the_server_clock(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let later = Promo {
        starts_at: now_ms() + 60_000,
        ..Promo::open(1)
    };
    let (soon, _, _) = seed(&app, &later).await;
    let over = Promo {
        starts_at: now_ms() - 10_000,
        ends_at: now_ms() - 1,
        ..Promo::open(1)
    };
    let (past, _, _) = seed(&app, &over).await;
    let (_, token) = bulk_users(&app, 1, Role::User).await.remove(0);
    let mut ws = app.client(Some(&token)).await;
    let err = ws
        .request("claim", json!({"activity": soon, "key": "a"}))
        .await
        .expect_err("not started");
    assert_eq!(err.code.as_str(), "not_started");
    let err = ws
        .request("claim", json!({"activity": past, "key": "a"}))
        .await
        .expect_err("ended");
    assert_eq!(err.code.as_str(), "ended");
    let err = ws
        .request("claim", json!({"activity": 987_654_321, "key": "a"}))
        .await
        .expect_err("missing");
    assert_eq!(err.code.as_str(), "not_found");
}

async fn expiry_and_cancel_return_stock(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let promo = Promo {
        hold_seconds: 1,
        ..Promo::open(1)
    };
    let (activity, items, merchant) = seed(&app, &promo).await;
    let mut stock = app
        .state
        .hub
        .claims
        .watch_stock(activity)
        .await
        .expect("stock")
        .expect("activity");
    assert_eq!(stock.borrow_and_update().left, 1);
    let (_, alice) = bulk_users(&app, 1, Role::User).await.remove(0);
    let (_, bob) = bulk_users(&app, 1, Role::User).await.remove(0);
    let mut a = app.client(Some(&alice)).await;
    let mut b = app.client(Some(&bob)).await;
    let mut watcher = app.client(Some(&bob)).await;
    let sub = watcher
        .request("activity.subscribe", json!({"activity": activity}))
        .await
        .expect("subscribe");
    assert_eq!(sub["stock_left"], 1);
    let held = a
        .request("claim", json!({"activity": activity, "key": "a1"}))
        .await
        .expect("held");
    assert_eq!(held["status"], "held");
    let err = b
        .request("claim", json!({"activity": activity, "key": "b1"}))
        .await
        .expect_err("sold out");
    assert_eq!(err.code.as_str(), "sold_out");
    // The hold lapses: the claimant is told, the stock comes back.
    let pushed = a.next_event("claim.updated").await.expect("held push");
    assert_eq!(pushed["status"], "held");
    let pushed = a.next_event("claim.updated").await.expect("expired push");
    assert_eq!(
        (pushed["status"].as_str(), pushed["claim_id"].as_i64()),
        (Some("expired"), held["claim_id"].as_i64())
    );
    tokio::time::timeout(Duration::from_secs(3), stock.wait_for(|s| s.left == 1))
        .await
        .expect("stock returns in time")
        .expect("stock");
    // Subscribers saw the slot go, then come back.
    let gone = watcher
        .next_event("activity.stock")
        .await
        .expect("stock push");
    assert_eq!(
        (gone["activity"].as_i64(), gone["left"].as_i64()),
        (Some(activity), Some(0))
    );
    let back = watcher
        .next_event("activity.stock")
        .await
        .expect("stock push");
    assert_eq!(back["left"], 1);
    // Bob takes it, then gives it back early.
    let bob_hold = b
        .request("claim", json!({"activity": activity, "key": "b2"}))
        .await
        .expect("held");
    assert_eq!(bob_hold["item"], items[0]);
    let err = a
        .request("claim.cancel", json!({"claim_id": bob_hold["claim_id"]}))
        .await
        .expect_err("not alice's");
    assert_eq!(err.code.as_str(), "not_found");
    let cancelled = b
        .request("claim.cancel", json!({"claim_id": bob_hold["claim_id"]}))
        .await
        .expect("cancelled");
    assert_eq!(cancelled["status"], "cancelled");
    let err = a
        .request("claim.cancel", json!({"claim_id": held["claim_id"]}))
        .await
        .expect_err("expired");
    assert_eq!(err.code.as_str(), "hold_expired");
    tokio::time::timeout(Duration::from_secs(3), stock.wait_for(|s| s.left == 1))
        .await
        .expect("stock returns in time")
        .expect("stock");
    // The merchant view counts each state once.
    let (status, view) = app
        .get(
            &format!("/api/v1/activities/{activity}/claims"),
            Some(&merchant),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        view["summary"],
        json!({"slots": 1, "held": 0, "confirmed": 0, "expired": 1, "cancelled": 1, "refund_due": 0})
    );
    assert_eq!(view["claims"].as_array().map(Vec::len), Some(2));
    let (status, _) = app
        .get(
            &format!("/api/v1/activities/{activity}/claims"),
            Some(&alice),
        )
        .await;
    assert_eq!(status, 403);
    let (_, other_merchant) = bulk_users(&app, 1, Role::Merchant).await.remove(0);
    let (status, _) = app
        .get(
            &format!("/api/v1/activities/{activity}/claims"),
            Some(&other_merchant),
        )
        .await;
    assert_eq!(status, 403);
}

const SECRET: &str = "test-webhook-secret";

/// Posts a payment event signed with `secret` at `ts` with `nonce`.
pub async fn pay(app: &TestApp, secret: &str, ts: i64, nonce: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let ts = ts.to_string();
    let sig = corral::http::payments::sign(secret.as_bytes(), &ts, nonce, body.as_bytes());
    let resp = app
        .http
        .post(app.url("/api/v1/payments/webhook"))
        .header("Content-Type", "application/json")
        .header("X-Corral-Timestamp", ts)
        .header("X-Corral-Nonce", nonce)
        .header("X-Corral-Signature", sig)
        .body(body)
        .send()
        .await
        .expect("webhook");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn webhook_confirms_exactly_once(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| {
        s.payments.webhook_secret = corral::config::Secret::new(SECRET);
        s.payments.stale_window_secs = 60;
    })
    .await;
    let promo = Promo {
        hold_seconds: 1,
        ..Promo::open(1)
    };
    let (activity, _, merchant) = seed(&app, &promo).await;
    let (_, alice) = bulk_users(&app, 1, Role::User).await.remove(0);
    let (_, bob) = bulk_users(&app, 1, Role::User).await.remove(0);
    let mut a = app.client(Some(&alice)).await;
    let held = a
        .request("claim", json!({"activity": activity, "key": "a"}))
        .await
        .expect("held");
    let claim = held["claim_id"].as_i64().expect("id");
    let event =
        |id: &str, claim: i64| json!({"event_id": id, "claim_id": claim, "amount_cents": 100});
    let nonce = || unique("n");

    // Forged signature, stale timestamp, unknown claim: refused, nothing changes.
    let (status, body) = pay(&app, "wrong", now_ms(), &nonce(), &event("e1", claim)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (status, _) = pay(
        &app,
        SECRET,
        now_ms() - 120_000,
        &nonce(),
        &event("e1", claim),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = pay(&app, SECRET, now_ms(), &nonce(), &event("e0", claim + 1000)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    let mut watcher = app.client(Some(&bob)).await;
    watcher
        .request("activity.subscribe", json!({"activity": activity}))
        .await
        .expect("subscribe");
    // Valid: confirmed, pushed.
    let n = nonce();
    let (status, body) = pay(&app, SECRET, now_ms(), &n, &event("e1", claim)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("confirmed")),
        "{body}"
    );
    assert_eq!(body["changed"], true);
    let _held = a.next_event("claim.updated").await.expect("held push");
    let pushed = a.next_event("claim.updated").await.expect("confirmed push");
    assert_eq!(pushed["status"], "confirmed");
    // The adopter now follows the animal: the merchant's post tagged with it reaches her
    // timeline (and not a bystander's).
    let item = held["item"].as_i64().expect("item");
    let animal: i64 = sqlx::query_scalar("SELECT animal_id FROM activity_items WHERE id = $1")
        .bind(item)
        .fetch_one(&app.state.db.pool)
        .await
        .expect("animal of item");
    let mut m = app.client(Some(&merchant)).await;
    let post = m
        .request(
            "feed.post",
            json!({"text": "Your calf says hello", "animal": animal}),
        )
        .await
        .expect("tagged post")["post_id"]
        .as_i64();
    let timeline = a
        .request("feed.timeline", json!({"limit": 10}))
        .await
        .expect("timeline");
    assert_eq!(timeline["posts"][0]["post_id"].as_i64(), post, "{timeline}");
    let bystander = watcher
        .request("feed.timeline", json!({"limit": 10}))
        .await
        .expect("timeline");
    assert_eq!(bystander["posts"], json!([]));
    // Its only slot is paid for: the promotion is sold out for good.
    let ended = watcher.next_event("activity.ended").await.expect("ended");
    assert_eq!(ended["reason"], "sold_out");
    // Replayed nonce refused; same event again is a no-op; another event for it changes nothing.
    let (status, _) = pay(&app, SECRET, now_ms(), &n, &event("e1", claim)).await;
    assert_eq!(status, 409);
    let (status, body) = pay(&app, SECRET, now_ms(), &nonce(), &event("e1", claim)).await;
    assert_eq!(
        (status, body["duplicate"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let (status, body) = pay(&app, SECRET, now_ms(), &nonce(), &event("e2", claim)).await;
    assert_eq!(
        (status, body["status"].as_str(), body["changed"].as_bool()),
        (200, Some("confirmed"), Some(false))
    );
    // The confirmed hold never expires.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let err = a
        .request("claim.cancel", json!({"claim_id": claim}))
        .await
        .expect_err("confirmed");
    assert_eq!(err.code.as_str(), "conflict");

    // Out of order / late: a second activity; bob's hold lapses; the payment comes after.
    let (activity2, _, merchant2) = seed(&app, &promo).await;
    let mut b = app.client(Some(&bob)).await;
    let late = b
        .request("claim", json!({"activity": activity2, "key": "b"}))
        .await
        .expect("held");
    let late_id = late["claim_id"].as_i64().expect("id");
    let _ = b.next_event("claim.updated").await;
    let pushed = b.next_event("claim.updated").await.expect("expired");
    assert_eq!(pushed["status"], "expired");
    // Slot free: the payment re-takes it.
    let (status, body) = pay(&app, SECRET, now_ms(), &nonce(), &event("e3", late_id)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("confirmed")),
        "{body}"
    );
    let pushed = b.next_event("claim.updated").await.expect("confirmed");
    assert_eq!(pushed["status"], "confirmed");
    // Sold out: the late payment is recorded as refund_due, pushed and reported.
    let (activity3, _, merchant3) = seed(&app, &promo).await;
    let c = b
        .request("claim", json!({"activity": activity3, "key": "c"}))
        .await
        .expect("held");
    let c_id = c["claim_id"].as_i64().expect("id");
    let cancelled = b
        .request("claim.cancel", json!({"claim_id": c_id}))
        .await
        .expect("cancel");
    assert_eq!(cancelled["status"], "cancelled");
    let mut a3 = app.client(Some(&alice)).await;
    a3.request("claim", json!({"activity": activity3, "key": "a"}))
        .await
        .expect("alice takes the freed slot");
    let (status, body) = pay(&app, SECRET, now_ms(), &nonce(), &event("e4", c_id)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("refund_due")),
        "{body}"
    );
    let refund = loop {
        let pushed = b.next_event("claim.updated").await.expect("push");
        if pushed["claim_id"] == c_id && pushed["status"] == "refund_due" {
            break pushed;
        }
    };
    assert_eq!(refund["activity"], activity3);
    let (_, view) = app
        .get(
            &format!("/api/v1/activities/{activity3}/claims"),
            Some(&merchant3),
        )
        .await;
    assert_eq!(view["summary"]["refund_due"], 1, "{view}");
    assert_eq!(view["summary"]["held"], 1, "{view}");
    let (_, view) = app
        .get(
            &format!("/api/v1/activities/{activity2}/claims"),
            Some(&merchant2),
        )
        .await;
    assert_eq!(view["summary"]["confirmed"], 1, "{view}");
    let (_, view) = app
        .get(
            &format!("/api/v1/activities/{activity}/claims"),
            Some(&merchant),
        )
        .await;
    assert_eq!(view["summary"]["confirmed"], 1, "{view}");
}

/// A server binary on a fixed port and data directory.
struct Node {
    child: std::process::Child,
}

impl Node {
    fn start(port: u16, dir: &std::path::Path, secret: &str) -> Node {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_corral"))
            .env("CORRAL_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("CORRAL_SERVER__DATA_DIR", dir)
            .env("CORRAL_SERVER__WORKERS", "1")
            .env("CORRAL_AUTH__JWT_SECRET", secret)
            .env("CORRAL_DATABASE__SQLITE_SYNCHRONOUS", "normal")
            .env("CORRAL_WS__MAX_PER_IP", "100000")
            .env("CORRAL_LOG__FILTER", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start the server binary");
        Node { child }
    }

    fn kill(&mut self) {
        // SIGKILL: no drain, no flush.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn wait_healthy(port: u16) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        let ok = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server on {port} did not come up");
}

#[actix_web::test]
async fn sigkill_mid_crowd_loses_no_acknowledged_hold() {
    const CLIENTS: usize = 800;
    const SLOTS: usize = 300;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let secret = "crash-test-secret";
    let mut node = Node::start(port, dir.path(), secret);
    wait_healthy(port).await;
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", dir.path().join("corral.db").display());
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("open the node's database");
    let keys = JwtKeys::new(&corral::config::Secret::new(secret), "corral", 3600);
    let users = bulk_users_in(&pool, &keys, CLIENTS, Role::User).await;
    let start = now_ms() + 3000;
    let promo = Promo {
        starts_at: start,
        hold_seconds: 10,
        ..Promo::open(SLOTS)
    };
    let (activity, items, _) = seed_in(&pool, &keys, &promo).await;
    let answered = Arc::new(AtomicUsize::new(0));
    let crowd = crowd(vec![port], users, activity, start, 2, answered.clone());
    // Kill the node once it has acknowledged 100 holds, while the crowd is being answered.
    while answered.load(Ordering::Relaxed) < 100 && now_ms() < start + 30_000 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    node.kill();
    let history = loop {
        if crowd.is_finished() {
            break crowd.join().expect("crowd");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let acked = history
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Held { .. }))
        .count();
    let slots: HashMap<i64, i64> = items.iter().map(|i| (*i, 1)).collect();
    let _node = Node::start(port, dir.path(), secret);
    wait_healthy(port).await;
    // Every hold a client was told about survived; nothing is oversold.
    check_rows(&pool, activity, &slots, 1, &history, None).await;
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM claims WHERE activity_id = $1")
        .bind(activity)
        .fetch_one(&pool)
        .await
        .expect("count")
        .get(0);
    assert!(
        rows as usize >= acked,
        "{rows} rows for {acked} acknowledged holds"
    );
    assert!(
        acked > 0,
        "the node died before answering anyone; kill later"
    );
    // The restarted node re-armed the expiries: every hold lapses on time.
    let deadline = now_ms() + 15_000;
    loop {
        let left: i64 =
            sqlx::query("SELECT COUNT(*) FROM claims WHERE activity_id = $1 AND status = 'held'")
                .bind(activity)
                .fetch_one(&pool)
                .await
                .expect("count")
                .get(0);
        if left == 0 {
            break;
        }
        assert!(
            now_ms() < deadline,
            "{left} holds never expired after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let expired: i64 =
        sqlx::query("SELECT COUNT(*) FROM claims WHERE activity_id = $1 AND status = 'expired'")
            .bind(activity)
            .fetch_one(&pool)
            .await
            .expect("count")
            .get(0);
    assert_eq!(expired, rows);
}

/// Two nodes of a cluster: a claim taken on one node is pushed to the claimant's device on the
/// other, and that node's watchers of the activity see the stock move both ways.
#[actix_web::test]
async fn claim_updates_and_stock_reach_the_other_node() {
    let nodes = TestApp::cluster(2, |_| {}).await;
    let (activity, _, _) = seed(&nodes[0], &Promo::open(2)).await;
    let (_, user) = bulk_users(&nodes[0], 1, Role::User).await.remove(0);
    let (_, other) = bulk_users(&nodes[0], 1, Role::User).await.remove(0);
    let mut desk = nodes[0].client(Some(&user)).await;
    let mut phone = nodes[1].client(Some(&user)).await;
    let mut watcher = nodes[1].client(Some(&other)).await;
    let sub = watcher
        .request("activity.subscribe", json!({"activity": activity}))
        .await
        .expect("subscribe");
    assert_eq!(sub["stock_left"], 2);

    let held = desk
        .request("claim", json!({"activity": activity, "key": "k1"}))
        .await
        .expect("held");
    let pushed = phone.next_event("claim.updated").await.expect("held push");
    assert_eq!(
        (pushed["claim_id"].as_i64(), pushed["status"].as_str()),
        (held["claim_id"].as_i64(), Some("held"))
    );
    let stock = watcher.next_event("activity.stock").await.expect("stock");
    assert_eq!(stock["left"], 1);

    desk.request("claim.cancel", json!({"claim_id": held["claim_id"]}))
        .await
        .expect("cancel");
    let pushed = phone
        .next_event("claim.updated")
        .await
        .expect("cancel push");
    assert_eq!(pushed["status"], "cancelled");
    let stock = watcher.next_event("activity.stock").await.expect("stock");
    assert_eq!(stock["left"], 2);
    phone.assert_silent("claim.updated", 400).await;
}

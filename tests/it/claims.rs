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

use crate::support::{
    Engine, NodeProcess, QUIET, TestApp, WAIT, WsClient, check, redis_url, unique, wait_until,
};

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
        .stock(activity)
        .await
        .expect("stock")
        .expect("activity");
    // The coalesced view catches up with the last change within a period.
    let total: i64 = slots.values().sum();
    let pool = &app.state.db.pool;
    let left = wait_until(
        "the ledger's stock agrees with the rows",
        WAIT,
        async || {
            let left = stock.borrow().left;
            let active = active_rows(pool, activity).await;
            check(
                left + active == total,
                format!("{left} left + {active} active rows of {total}"),
            )
            .map(|()| left)
        },
    )
    .await;
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

/// Claims of `activity` holding a slot (held or confirmed).
async fn active_rows(pool: &AnyPool, activity: i64) -> i64 {
    sqlx::query(
        "SELECT COUNT(*) FROM claims WHERE activity_id = $1 AND status IN ('held', 'confirmed')",
    )
    .bind(activity)
    .fetch_one(pool)
    .await
    .expect("active claims")
    .get(0)
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
/// own runtimes: all connect and authenticate, then claim `activity` (any item, one key each)
/// at `at`, or spread evenly from `at` over `spread_ms`. Returns every client's invocation and
/// outcome; `held_acks` counts the `held` replies as they arrive.
pub fn crowd(
    ports: Vec<u16>,
    users: Vec<(i64, String)>,
    activity: i64,
    (at, spread_ms): (i64, i64),
    threads: usize,
    answered: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<Vec<Event>> {
    std::thread::spawn(move || {
        let users = Arc::new(users);
        let n = users.len().max(1) as i64;
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
                                let at = at + spread_ms * (t * per + i) as i64 / n;
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
    // As protocol/README.md tells clients: `unavailable` (the claim deadline passed on a
    // loaded node) is retried with the same key until the answer is final.
    for _ in 0..20 {
        let id = ws
            .send_op("claim", json!({"activity": activity, "key": key}))
            .await;
        let reply = tokio::time::timeout(Duration::from_secs(30), ws.reply_to(Some(id))).await;
        let Ok(reply) = reply else {
            eprintln!("client {user} got no reply from {port}");
            return unknown;
        };
        let outcome = outcome_of(reply);
        if outcome == Outcome::Refused("unavailable".into()) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        if matches!(outcome, Outcome::Held { .. }) {
            held_acks.fetch_add(1, Ordering::Relaxed);
        }
        return Event {
            user,
            key,
            outcome,
            latency: sent.elapsed(),
        };
    }
    eprintln!("client {user} was answered unavailable 20 times");
    unknown
}

/// (held, sold out, anything else) over a history; "anything else" includes claims left
/// unanswered.
fn tally(history: &[Event]) -> (usize, usize, usize) {
    let held = history
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Held { .. }))
        .count();
    let sold_out = history
        .iter()
        .filter(|e| e.outcome == Outcome::Refused("sold_out".into()))
        .count();
    (held, sold_out, history.len() - held - sold_out)
}

pub(crate) fn redis_mode(prefix: &str) -> impl FnOnce(&mut Settings) + '_ {
    move |s: &mut Settings| {
        s.redis.url = corral::config::Secret::from(redis_url());
        s.redis.key_prefix = prefix.to_string();
        // Nodes of one cluster share the token key.
        s.auth.jwt_secret = corral::config::Secret::from(format!("{prefix}-jwt"));
        s.ws.max_per_ip = 100_000;
    }
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
    let crowd = crowd(ports, users, activity, (start, 0), 4, Arc::default());
    wait_until(
        "every client of the crowd is answered",
        6 * WAIT,
        async || check(crowd.is_finished(), "clients still waiting"),
    )
    .await;
    let history = crowd.join().expect("crowd");
    assert_eq!(history.len(), CLIENTS);
    let (held, sold_out, other) = tally(&history);
    let others: Vec<&Event> = history
        .iter()
        .filter(|e| !matches!(&e.outcome, Outcome::Held { .. }))
        .filter(|e| e.outcome != Outcome::Refused("sold_out".into()))
        .take(5)
        .collect();
    assert_eq!(
        (held, sold_out, other),
        (SLOTS, CLIENTS - SLOTS, 0),
        "every client answered held or sold_out; others: {others:?}"
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

/// A node allowing one `activity.stock` frame a second per activity (and taking payments), an
/// open activity with `slots` one-slot items (no per-user limit in the way), a claimant, and
/// `watchers` sockets subscribed to it (so stock frames are at least `watchers` seconds apart).
async fn watchers_on_a_budget(watchers: usize, slots: usize) -> Budgeted {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| {
        s.promotions.stock_frames_per_sec = 1;
        s.payments.webhook_secret = corral::config::Secret::from(SECRET);
    })
    .await;
    let promo = Promo {
        per_user_limit: slots as i64,
        ..Promo::open(slots)
    };
    let (activity, _, _) = seed(&app, &promo).await;
    let (_, alice) = bulk_users(&app, 1, Role::User).await.remove(0);
    let claimant = app.client(Some(&alice)).await;
    let mut subscribed = Vec::new();
    for _ in 0..watchers {
        let mut watcher = app.client(Some(&alice)).await;
        let sub = watcher
            .request("activity.subscribe", json!({"activity": activity}))
            .await
            .expect("subscribe");
        assert_eq!(sub["stock_left"], slots);
        subscribed.push(watcher);
    }
    let desk = app
        .state
        .hub
        .claims
        .stock(activity)
        .await
        .expect("stock")
        .expect("activity");
    Budgeted {
        slots: slots as i64,
        gap: Duration::from_secs(watchers as u64),
        app,
        activity,
        claimant,
        watchers: subscribed,
        desk,
    }
}

/// The set-up of the stock-budget tests.
struct Budgeted {
    app: TestApp,
    activity: i64,
    claimant: WsClient,
    watchers: Vec<WsClient>,
    /// The claim desk's coalesced stock: a count shown here has been handed to the actor.
    desk: tokio::sync::watch::Receiver<corral_actors::ports::claims::StockLevel>,
    /// Slots of the activity.
    slots: i64,
    /// The least time between two stock frames.
    gap: Duration,
}

impl Budgeted {
    /// Takes one more slot and waits until the desk handed the new count to the actor;
    /// returns the count and the claim.
    async fn take(&mut self, key: &str) -> (i64, i64) {
        let held = self
            .claimant
            .request("claim", json!({"activity": self.activity, "key": key}))
            .await
            .expect("held");
        let claim = held["claim_id"].as_i64().expect("claim_id");
        let rows = self
            .app
            .state
            .db
            .claims_of_activity(self.activity)
            .await
            .expect("rows")
            .len() as i64;
        let left = self.slots - rows;
        let desk = &mut self.desk;
        tokio::time::timeout(WAIT, desk.wait_for(|s| s.left == left))
            .await
            .unwrap_or_else(|_| panic!("the desk never published {left} left"))
            .expect("desk");
        (left, claim)
    }
}

/// The `left` of every `activity.stock` frame up to and including the one carrying `last`.
async fn stock_frames_until(ws: &mut WsClient, last: i64, within: Duration) -> Vec<i64> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    while seen.last() != Some(&last) {
        let frame = ws
            .next_event_until("activity.stock", deadline)
            .await
            .unwrap_or_else(|| panic!("no stock frame with {last} left; saw {seen:?}"));
        seen.push(frame["left"].as_i64().expect("left"));
    }
    seen
}

/// `activity.stock` stays within the node's frame budget: with a budget of one frame a second
/// and two watchers (a frame every 2 s), five counts handed to the actor one after the other
/// give the first count at once and fold the rest into as few frames as the time they took
/// allows, the newest count last (without the budget each would have its own frame).
#[actix_web::test]
async fn stock_frames_stay_within_the_budget() {
    let mut b = watchers_on_a_budget(2, 10).await;
    assert_eq!(b.take("k0").await.0, 9);
    let first_change = std::time::Instant::now();
    for i in 1..5 {
        b.take(&format!("k{i}")).await;
    }
    let spread = first_change.elapsed();
    let most = 2 + (spread.as_secs_f64() / b.gap.as_secs_f64()).floor() as usize;
    let gap = b.gap;
    for watcher in &mut b.watchers {
        let seen = stock_frames_until(watcher, 5, gap + WAIT).await;
        assert_eq!(seen.first(), Some(&9), "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");
        assert!(
            seen.len() <= most && seen.len() < 5,
            "{seen:?}: more frames than the budget allows over {spread:?}"
        );
        watcher
            .assert_silent_for("activity.stock", gap + QUIET)
            .await;
    }
}

/// A stock count waiting for its turn survives a supervised restart of the activity actor:
/// the restarted actor re-arms its timer and the newest count still goes out.
#[actix_web::test]
async fn a_waiting_stock_count_survives_an_actor_restart() {
    let mut b = watchers_on_a_budget(2, 10).await;
    b.take("k0").await;
    let first = b.watchers[0]
        .next_event("activity.stock")
        .await
        .expect("stock");
    assert_eq!(first["left"], 9);
    // The next count waits (a frame every 2 s for two watchers); the actor restarts meanwhile.
    b.take("k1").await;
    assert!(b.app.state.hub.activities.inject_panic(b.activity));
    let gap = b.gap;
    assert_eq!(
        stock_frames_until(&mut b.watchers[0], 8, gap + WAIT).await,
        [8]
    );
}

/// A count that reaches the activity actor while it restarts is not lost to the reload (the
/// reload reads the ledger's new count; the change that follows must still go out).
#[actix_web::test]
async fn a_stock_change_during_an_actor_restart_goes_out() {
    let mut b = watchers_on_a_budget(1, 10).await;
    let activity = b.activity;
    for i in 0..3 {
        // The panic is queued right behind the hold's reply: the desk's count usually reaches
        // the actor while it reloads.
        hold(&mut b.claimant, activity, format!("k{i}")).await;
        assert!(b.app.state.hub.activities.inject_panic(activity));
        let left = 9 - i;
        let gap = b.gap;
        let seen = stock_frames_until(&mut b.watchers[0], left, gap + WAIT).await;
        assert_eq!(seen.last(), Some(&left), "{seen:?}");
    }
}

/// The newest count goes out before `activity.ended`, even while it waits for the budget:
/// both slots held back to back (the second count waiting for its turn) and paid for, the
/// promotion ends sold out after the count that says so.
#[actix_web::test]
async fn the_last_stock_count_goes_out_before_the_end() {
    // Five watchers: a frame every 5 s, so the second count is still waiting at the end.
    let mut b = watchers_on_a_budget(5, 2).await;
    let (_, first) = b.take("k0").await;
    let (_, second) = b.take("k1").await;
    for (i, claim) in [first, second].into_iter().enumerate() {
        let event = json!({"event_id": format!("e{i}"), "claim_id": claim, "amount_cents": 100});
        let (status, body) = pay(&b.app, SECRET, now_ms(), &unique("n"), &event).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("confirmed")),
            "{body}"
        );
    }
    for watcher in &mut b.watchers {
        let mut frames = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        while let Some(push) = watcher.next_push_until(deadline).await {
            let ev = push["ev"].as_str().unwrap_or_default().to_string();
            if ev.starts_with("activity.") {
                frames.push(push);
            }
            if ev == "activity.ended" {
                break;
            }
        }
        let evs: Vec<(&str, Option<i64>)> = frames
            .iter()
            .map(|f| (f["ev"].as_str().unwrap_or_default(), f["left"].as_i64()))
            .collect();
        assert_eq!(
            evs,
            [
                ("activity.stock", Some(1)),
                ("activity.stock", Some(0)),
                ("activity.ended", None)
            ],
            "{frames:?}"
        );
        assert_eq!(frames[2]["reason"], "sold_out");
        watcher.assert_silent("activity.stock").await;
    }
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
    use corral_actors::ActivityCatalog;
    use corral_actors::claims::Decision;

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
    let spec = catalog.activity(activity).await.unwrap().expect("spec");
    let arbiter = RedisArbiter::new(app.state.redis.clone().expect("redis"))
        .await
        .unwrap();
    let orphan_user = users[1].0;
    let took = arbiter.decide(&spec, orphan_user, "orphan", None).await;
    let took = took.unwrap().expect("counters stand");
    assert_eq!(took.decision, Decision::Take(items[0]));
    assert_eq!(left(&arbiter, &spec).await, SLOTS - 5);

    let reconciler = Reconciler::new(
        arbiter.clone(),
        ClaimRows::start(app.state.db.clone(), 1),
        catalog,
    );
    let first = reconciler.pass().await.unwrap();
    assert_eq!((first.orphans, first.suspects), (0, 1), "{first:?}");
    assert_eq!(left(&arbiter, &spec).await, SLOTS - 5);

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
    assert_eq!(left(&arbiter, &spec).await, SLOTS - 8);
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
    ledger_is_rebuilt_from_the_rows_at_start_up,
    webhook_refuses_bad_requests,
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
        .stock(activity)
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
    tokio::time::timeout(WAIT, stock.wait_for(|s| s.left == 1))
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
    tokio::time::timeout(WAIT, stock.wait_for(|s| s.left == 1))
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
    // Cancelling a cancelled claim succeeds again and gives nothing back twice: the one slot
    // takes one new hold, then the promotion is sold out.
    let again = b
        .request("claim.cancel", json!({"claim_id": bob_hold["claim_id"]}))
        .await
        .expect("cancelling again");
    assert_eq!(again["status"], "cancelled");
    let retaken = a
        .request("claim", json!({"activity": activity, "key": "a2"}))
        .await
        .expect("held");
    assert_eq!(retaken["item"], items[0]);
    let err = b
        .request("claim", json!({"activity": activity, "key": "b3"}))
        .await
        .expect_err("sold out");
    assert_eq!(err.code.as_str(), "sold_out");
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
    let headers = [
        ("X-Corral-Timestamp", ts),
        ("X-Corral-Nonce", nonce.to_string()),
        ("X-Corral-Signature", sig),
    ];
    webhook_post(app, &headers, body).await
}

/// Posts `body` to the payment webhook with exactly `headers` (besides the content type).
async fn webhook_post(app: &TestApp, headers: &[(&str, String)], body: String) -> (u16, Value) {
    let mut req = app
        .http
        .post(app.url("/api/v1/payments/webhook"))
        .header("Content-Type", "application/json");
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let resp = req.body(body).send().await.expect("webhook");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The webhook's refusals, each with its status and code and each changing nothing: missing
/// signature headers 401, a signed body that is not a payment event 400, an event id already
/// used for another claim 409; a node with no webhook secret answers 503.
async fn webhook_refuses_bad_requests(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| {
        s.payments.webhook_secret = corral::config::Secret::from(SECRET);
        s.payments.stale_window_secs = 60;
    })
    .await;
    let promo = Promo {
        per_user_limit: 2,
        ..Promo::open(2)
    };
    let (activity, _, merchant) = seed(&app, &promo).await;
    let (_, alice) = bulk_users(&app, 1, Role::User).await.remove(0);
    let mut a = app.client(Some(&alice)).await;
    let mut claims = Vec::new();
    for key in ["a1", "a2"] {
        let held = a
            .request("claim", json!({"activity": activity, "key": key}))
            .await
            .expect("held");
        claims.push(held["claim_id"].as_i64().expect("id"));
    }
    let event =
        |id: &str, claim: i64| json!({"event_id": id, "claim_id": claim, "amount_cents": 100});
    let code = |body: &Value| body["error"]["code"].as_str().map(str::to_string);
    let pay_now =
        async |app: &TestApp, event: &Value| pay(app, SECRET, now_ms(), &unique("n"), event).await;

    // Each signature header missing in turn: 401.
    let body = event("e1", claims[0]).to_string();
    let ts = now_ms().to_string();
    let nonce = unique("n");
    let sig = corral::http::payments::sign(SECRET.as_bytes(), &ts, &nonce, body.as_bytes());
    let all = [
        ("X-Corral-Timestamp", ts),
        ("X-Corral-Nonce", nonce),
        ("X-Corral-Signature", sig),
    ];
    for missing in 0..all.len() {
        let headers: Vec<(&str, String)> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != missing)
            .map(|(_, h)| h.clone())
            .collect();
        let (status, reply) = webhook_post(&app, &headers, body.clone()).await;
        assert_eq!(
            (status, code(&reply).as_deref()),
            (401, Some("unauthenticated")),
            "without {}: {reply}",
            all[missing].0
        );
    }
    // Signed, but not a payment event: 400.
    for bad in [
        json!("not an object"),
        json!({"claim_id": claims[0], "amount_cents": 500}),
        json!({"event_id": "", "claim_id": claims[0], "amount_cents": 500}),
        json!({"event_id": "e9", "claim_id": "one", "amount_cents": 500}),
    ] {
        let (status, reply) = pay_now(&app, &bad).await;
        assert_eq!(
            (status, code(&reply).as_deref()),
            (400, Some("bad_request")),
            "{bad}: {reply}"
        );
    }
    // An event id used for one claim cannot confirm another: 409.
    let (status, reply) = pay_now(&app, &event("e1", claims[0])).await;
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("confirmed")),
        "{reply}"
    );
    let (status, reply) = pay_now(&app, &event("e1", claims[1])).await;
    assert_eq!(
        (status, code(&reply).as_deref()),
        (409, Some("conflict")),
        "{reply}"
    );
    // Nothing else changed: one confirmed, one still held, one push each way.
    let (_, view) = app
        .get(
            &format!("/api/v1/activities/{activity}/claims"),
            Some(&merchant),
        )
        .await;
    assert_eq!(
        (&view["summary"]["confirmed"], &view["summary"]["held"]),
        (&json!(1), &json!(1)),
        "{view}"
    );
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let push = a.next_event("claim.updated").await.expect("claim.updated");
        statuses.push((
            push["claim_id"].as_i64(),
            push["status"].as_str().map(str::to_string),
        ));
    }
    assert_eq!(
        statuses,
        [
            (Some(claims[0]), Some("held".to_string())),
            (Some(claims[1]), Some("held".to_string())),
            (Some(claims[0]), Some("confirmed".to_string())),
        ]
    );
    a.assert_silent("claim.updated").await;

    // A node without a webhook secret refuses every call: 503.
    let bare = TestApp::spawn(app.engine).await;
    let (status, reply) = pay_now(&bare, &event("e1", 1)).await;
    assert_eq!(
        (status, code(&reply).as_deref()),
        (503, Some("unavailable")),
        "{reply}"
    );
}

async fn webhook_confirms_exactly_once(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| {
        s.payments.webhook_secret = corral::config::Secret::from(SECRET);
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
    // Exactly once: the duplicates pushed nothing, and the confirmed hold never expires
    // (nothing arrives past its `expires_at` and the desk's next sweep).
    let expires_at = held["expires_at"].as_i64().expect("expires_at");
    let past_expiry = Duration::from_millis((expires_at - now_ms()).max(0) as u64) + QUIET;
    a.assert_silent_for("claim.updated", past_expiry).await;
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

/// The rows of `activity` in each status.
async fn statuses(pool: &AnyPool, activity: i64) -> HashMap<String, i64> {
    sqlx::query("SELECT status, COUNT(*) FROM claims WHERE activity_id = $1 GROUP BY status")
        .bind(activity)
        .fetch_all(pool)
        .await
        .expect("claims by status")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// Where a node process keeps its claims.
#[derive(Debug, Clone, Copy)]
enum Storage {
    /// The embedded ledger over this SQL engine.
    Embedded(Engine),
    /// PostgreSQL rows with the ledger in Redis (cluster mode).
    Redis,
}

/// A node process (the real binary) in `dir` on `storage`, with a pool on its database and
/// its token keys, so a test can seed rows and issue tokens the node accepts.
async fn node_process(storage: Storage, dir: &std::path::Path) -> (NodeProcess, AnyPool, JwtKeys) {
    let secret = unique("node-process-secret");
    let mut env = vec![
        ("CORRAL_SERVER__WORKERS", "1".to_string()),
        ("CORRAL_AUTH__JWT_SECRET", secret.clone()),
        ("CORRAL_DATABASE__SQLITE_SYNCHRONOUS", "normal".to_string()),
        ("CORRAL_WS__MAX_PER_IP", "100000".to_string()),
    ];
    sqlx::any::install_default_drivers();
    let db_url = match storage {
        Storage::Embedded(Engine::Sqlite) => {
            format!("sqlite://{}", dir.join("corral.db").display())
        }
        Storage::Embedded(Engine::Postgres) => {
            let url = crate::support::fresh_postgres_database().await;
            env.push(("CORRAL_DATABASE__URL", url.clone()));
            url
        }
        Storage::Redis => {
            let url = crate::support::fresh_postgres_database().await;
            env.extend([
                ("CORRAL_DATABASE__URL", url.clone()),
                ("CORRAL_REDIS__URL", redis_url()),
                ("CORRAL_REDIS__KEY_PREFIX", unique("corral_node") + ":"),
                // Slots a dead node took in Redis without a row come back within two passes.
                ("CORRAL_REDIS__CLAIMS_RECONCILE_MS", "500".to_string()),
            ]);
            url
        }
    };
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let node = NodeProcess::start(dir, &env).await;
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(&db_url)
        .await
        .expect("open the node's database");
    let keys = JwtKeys::new(
        &corral::config::Secret::from(secret.as_str()),
        "corral",
        3600,
    );
    (node, pool, keys)
}

/// The activity's `stock_left` as the node reports it (its ledger's count).
async fn stock_left(node: &NodeProcess, token: &str, activity: i64) -> Result<i64, String> {
    let body: Value = reqwest::Client::new()
        .get(node.url(&format!("/api/v1/activities/{activity}")))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    body["stock_left"].as_i64().ok_or_else(|| body.to_string())
}

/// A crash in the middle of a flash crowd: the node (the real binary; embedded on SQLite, or
/// on PostgreSQL with its claim ledger in Redis) is SIGKILLed once it has acknowledged 30
/// holds, while claims are still arriving. After a restart every acknowledged hold exists,
/// nothing is oversold, the ledger rebuilt from the rows sells exactly the slots left (a
/// claimant's key gives back the same claim, a new key hits the per-user limit), and every
/// hold expires on time.
async fn sigkill_mid_crowd(storage: Storage) {
    const CLIENTS: usize = 800;
    const SLOTS: usize = 300;
    // Long enough that no hold lapses before the checks after the restart are done, on a
    // loaded host too.
    const HOLD_SECONDS: i64 = 45;
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut node, pool, keys) = node_process(storage, dir.path()).await;
    let users = bulk_users_in(&pool, &keys, CLIENTS, Role::User).await;
    let start = now_ms() + 3000;
    let promo = Promo {
        starts_at: start,
        hold_seconds: HOLD_SECONDS,
        ..Promo::open(SLOTS)
    };
    let (activity, items, _) = seed_in(&pool, &keys, &promo).await;
    let answered = Arc::new(AtomicUsize::new(0));
    // The claims arrive over ten seconds, so the node is still taking slots when it dies (all
    // at once, one commit could take every slot before the kill lands; on a loaded host the
    // acknowledgements lag the decisions by seconds).
    let crowd = crowd(
        vec![node.port],
        users,
        activity,
        (start, 10_000),
        2,
        answered.clone(),
    );
    // Kill the node once it has acknowledged 30 holds, while the crowd is being answered.
    wait_until("the node acknowledges 30 holds", 6 * WAIT, async || {
        let n = answered.load(Ordering::Relaxed);
        check(n >= 30, n)
    })
    .await;
    node.crash();
    wait_until("every client of the crowd is done", 6 * WAIT, async || {
        check(crowd.is_finished(), "clients still running")
    })
    .await;
    let history = crowd.join().expect("crowd");
    let acked: Vec<&Event> = history
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Held { .. }))
        .collect();
    let unanswered = history
        .iter()
        .filter(|e| e.outcome == Outcome::Unknown)
        .count();
    // The kill landed mid-crowd: some holds were acknowledged, the slots were not all gone,
    // and some claims were cut off unanswered.
    assert!(
        acked.len() >= 30 && acked.len() < SLOTS && unanswered > 0,
        "not a mid-crowd kill: {} held, {unanswered} unanswered of {CLIENTS}",
        acked.len()
    );
    node.restart().await;
    let slots: HashMap<i64, i64> = items.iter().map(|i| (*i, 1)).collect();
    // Every hold a client was told about survived; nothing is oversold.
    check_rows(&pool, activity, &slots, 1, &history, None).await;
    let rows = statuses(&pool, activity).await;
    let held_rows = rows.get("held").copied().unwrap_or(0);
    assert!(
        held_rows < SLOTS as i64,
        "every slot was held before the kill: nothing left to sell after it"
    );
    assert!(
        held_rows as usize >= acked.len(),
        "{rows:?} for {} acknowledged holds",
        acked.len()
    );

    // The restarted node's ledger is the rows': it has exactly the rest to sell.
    let (_, token) = bulk_users_in(&pool, &keys, 1, Role::User).await.remove(0);
    wait_until(
        "the restarted ledger agrees with the rows",
        3 * WAIT,
        async || {
            let left = stock_left(&node, &token, activity).await?;
            check(left == SLOTS as i64 - held_rows, format!("{left} left"))
        },
    )
    .await;
    let claimant = acked[0];
    let claimant_token = keys.issue(claimant.user, Role::User).expect("token");
    let mut ws = WsClient::connect(&node.ws_url(), Some(&claimant_token))
        .await
        .expect("reconnect");
    let again = ws
        .request("claim", json!({"activity": activity, "key": claimant.key}))
        .await;
    assert_eq!(
        outcome_of(again),
        claimant.outcome,
        "the same key, the same claim"
    );
    let more = ws
        .request(
            "claim",
            json!({"activity": activity, "key": "after-the-crash"}),
        )
        .await
        .expect_err("over the per-user limit");
    assert_eq!(more.code.as_str(), "limit_reached");
    let late = bulk_users_in(&pool, &keys, SLOTS - held_rows as usize + 1, Role::User).await;
    let ws_url = node.ws_url();
    let after = futures_util::future::join_all(late.into_iter().map(|(user, token)| {
        let ws_url = ws_url.clone();
        async move {
            let mut ws = WsClient::connect(&ws_url, Some(&token))
                .await
                .expect("connect");
            let key = format!("late-{user}");
            let reply = ws
                .request("claim", json!({"activity": activity, "key": key}))
                .await;
            Event {
                user,
                key,
                outcome: outcome_of(reply),
                latency: Duration::ZERO,
            }
        }
    }))
    .await;
    let held_after = after
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Held { .. }))
        .count();
    assert_eq!(
        tally(&after),
        (SLOTS - held_rows as usize, 1, 0),
        "after the restart: {held_after} held; refusals: {:?}",
        after
            .iter()
            .filter(|e| !matches!(e.outcome, Outcome::Held { .. }))
            .collect::<Vec<_>>()
    );
    let everything: Vec<Event> = history.iter().cloned().chain(after).collect();
    check_rows(&pool, activity, &slots, 1, &everything, Some(0)).await;

    // The restarted node re-armed the expiries: every hold lapses on time.
    wait_until(
        "every hold expires",
        Duration::from_secs(HOLD_SECONDS as u64) + 3 * WAIT,
        async || {
            let rows = statuses(&pool, activity).await;
            check(!rows.contains_key("held"), rows)
        },
    )
    .await;
    // Every hold expired; the only other rows are keys voided as orphans (cluster mode).
    let rows = statuses(&pool, activity).await;
    assert_eq!(
        rows.get("expired").copied(),
        Some(held_rows + held_after as i64),
        "{rows:?}"
    );
    assert!(
        rows.keys().all(|s| s == "expired" || s == "cancelled"),
        "{rows:?}"
    );
}

#[actix_web::test]
async fn sigkill_mid_crowd_loses_no_acknowledged_hold_embedded() {
    sigkill_mid_crowd(Storage::Embedded(Engine::Sqlite)).await;
}

#[actix_web::test]
async fn sigkill_mid_crowd_loses_no_acknowledged_hold_redis() {
    sigkill_mid_crowd(Storage::Redis).await;
}

/// The claim ledger is rebuilt from the rows when a node starts: after a restart the node
/// sells exactly the slots no row holds, a claimant's key gives back the same claim, a new key
/// of a user at the limit is `limit_reached`, and a slot given back is sold again, once.
async fn ledger_is_rebuilt_from_the_rows_at_start_up(engine: Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut node, pool, keys) = node_process(Storage::Embedded(engine), dir.path()).await;
    let promo = Promo {
        per_user_limit: 2,
        ..Promo::open(4)
    };
    let (activity, items, _) = seed_in(&pool, &keys, &promo).await;
    let users = bulk_users_in(&pool, &keys, 4, Role::User).await;
    let ws_url = node.ws_url();
    let claim = async |token: &str, key: &str| {
        let mut ws = WsClient::connect(&ws_url, Some(token))
            .await
            .expect("connect");
        ws.request("claim", json!({"activity": activity, "key": key}))
            .await
    };
    // Alice takes her two, bob one: one slot left.
    let mut history = Vec::new();
    for (who, key) in [(0, "a1"), (0, "a2"), (1, "b1")] {
        let (user, token) = &users[who];
        let outcome = outcome_of(claim(token, key).await);
        assert!(
            matches!(outcome, Outcome::Held { .. }),
            "{key}: {outcome:?}"
        );
        history.push(Event {
            user: *user,
            key: key.to_string(),
            outcome,
            latency: Duration::ZERO,
        });
    }
    node.restart().await;

    let (carol, carol_token) = &users[2];
    assert_eq!(stock_left(&node, carol_token, activity).await, Ok(1));
    let again = claim(&users[0].1, "a1").await;
    assert_eq!(
        outcome_of(again),
        history[0].outcome,
        "the same key, the same claim"
    );
    let over = claim(&users[0].1, "a3")
        .await
        .expect_err("alice is at her limit");
    assert_eq!(over.code.as_str(), "limit_reached");
    let last = outcome_of(claim(carol_token, "c1").await);
    assert!(matches!(last, Outcome::Held { .. }), "{last:?}");
    history.push(Event {
        user: *carol,
        key: "c1".into(),
        outcome: last,
        latency: Duration::ZERO,
    });
    let (_, dave_token) = &users[3];
    let none = claim(dave_token, "d1").await.expect_err("sold out");
    assert_eq!(none.code.as_str(), "sold_out");

    // Bob gives his back after another restart; the slot is sold again, once.
    node.restart().await;
    let Outcome::Held { claim_id, .. } = history[2].outcome else {
        unreachable!("checked above")
    };
    let mut bob = WsClient::connect(&node.ws_url(), Some(&users[1].1))
        .await
        .expect("connect");
    let cancelled = bob
        .request("claim.cancel", json!({"claim_id": claim_id}))
        .await
        .expect("cancel");
    assert_eq!(cancelled["status"], "cancelled");
    let resold = outcome_of(claim(dave_token, "d2").await);
    assert!(matches!(resold, Outcome::Held { .. }), "{resold:?}");
    let none = claim(carol_token, "c2").await.expect_err("sold out again");
    assert_eq!(none.code.as_str(), "sold_out");
    let slots = items.iter().map(|i| (*i, 1)).collect();
    check_rows(&pool, activity, &slots, 2, &history, None).await;
    let rows = statuses(&pool, activity).await;
    assert_eq!(rows.get("held"), Some(&4), "{rows:?}");
    assert_eq!(rows.get("cancelled"), Some(&1), "{rows:?}");
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
    phone.assert_silent("claim.updated").await;
}

/// Slots left in the Redis counters of `spec` (which must stand).
async fn left(
    arbiter: &corral::store::redis_ledger::RedisArbiter,
    spec: &corral_actors::ActivityRecord,
) -> i64 {
    use corral::store::ledger::SlotArbiter;
    let stock = arbiter.stock(spec).await.expect("stock read");
    stock.expect("counters stand").left
}

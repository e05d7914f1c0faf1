//! Flash crowds of real WebSocket clients: 2,000 clients claim 100 slots at the start
//! instant, on one embedded node and on two nodes over Redis + PostgreSQL; every client is
//! answered `held` or `sold_out`, each slot has one owner, and the history checks against the
//! rows. The crowd runner ([`crowd`]) also drives the crash tests in [`super::restarts`]. The
//! tests print the claim reply's p50/p99 (BENCHMARKS.md has the release figures).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use corral::config::Settings;
use corral_protocol::Role;
use serde_json::json;

use super::fixtures::{Promo, bulk_users, now_ms, seed};
use super::history::{Event, Outcome, check_history, outcome_of};
use crate::support::{Engine, TestApp, WAIT, WsClient, check, wait_until};

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
    let ports = Arc::new(ports);
    spawn_crowd(
        users,
        (at, spread_ms),
        threads,
        move |i, user, token, at| {
            let port = ports[i % ports.len()];
            one_client(port, user, token, activity, at, answered.clone())
        },
    )
}

/// What a failing-over crowd saw, counted as it happens.
#[derive(Debug, Default)]
pub struct Counts {
    /// `held` replies.
    pub held: AtomicUsize,
    /// `unavailable` replies (each retried with the same key).
    pub unavailable: AtomicUsize,
    /// Connections lost or replies missing (each followed by the same key on the next node).
    pub failovers: AtomicUsize,
}

/// As [`crowd`], with clients that survive a node or a dependency failing: `unavailable` is
/// retried with the same key on the same node, a lost connection or a reply missing for
/// 10 s with the same key on the next node of `ports`, until the answer is final or
/// `give_up_ms` after the claim was first sent (then the outcome is unknown).
pub fn crowd_failover(
    ports: Vec<u16>,
    users: Vec<(i64, String)>,
    activity: i64,
    (at, spread_ms): (i64, i64),
    give_up_ms: u64,
    counts: Arc<Counts>,
) -> std::thread::JoinHandle<Vec<Event>> {
    let ports = Arc::new(ports);
    spawn_crowd(users, (at, spread_ms), 2, move |i, user, token, at| {
        let client = FailoverClient {
            ports: ports.clone(),
            node: i % ports.len(),
            user,
            token,
            counts: counts.clone(),
        };
        client.claim(activity, at, Duration::from_millis(give_up_ms))
    })
}

/// Runs one client per user, split over `threads` OS threads with their own runtimes; the
/// `i`-th client (counting across threads) is `client(i, user, token, at)`, its `at` spread
/// evenly over `spread_ms`.
pub(crate) fn spawn_crowd<F, Fut>(
    users: Vec<(i64, String)>,
    (at, spread_ms): (i64, i64),
    threads: usize,
    client: F,
) -> std::thread::JoinHandle<Vec<Event>>
where
    F: Fn(usize, i64, String, i64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Event> + 'static,
{
    let client = Arc::new(client);
    std::thread::spawn(move || {
        let users = Arc::new(users);
        let n = users.len().max(1) as i64;
        let per = users.len().div_ceil(threads);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let users = users.clone();
                let client = client.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    let local = tokio::task::LocalSet::new();
                    local.block_on(&rt, async move {
                        let mine: Vec<_> = users.iter().skip(t * per).take(per).cloned().collect();
                        let tasks: Vec<_> = mine
                            .into_iter()
                            .enumerate()
                            .map(|(i, (user, token))| {
                                let at = at + spread_ms * (t * per + i) as i64 / n;
                                let task = client(t + i, user, token, at);
                                (user, tokio::task::spawn_local(task))
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
                                answered_at: now_ms(),
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
        answered_at: now_ms(),
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
            answered_at: now_ms(),
        };
    }
    eprintln!("client {user} was answered unavailable 20 times");
    unknown
}

/// A crowd client that fails over to the next node (see [`crowd_failover`]).
struct FailoverClient {
    ports: Arc<Vec<u16>>,
    node: usize,
    user: i64,
    token: String,
    counts: Arc<Counts>,
}

impl FailoverClient {
    async fn claim(mut self, activity: i64, at: i64, give_up: Duration) -> Event {
        let key = format!("k-{}", self.user);
        let wait = at - now_ms();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        let sent = std::time::Instant::now();
        let mut ws: Option<WsClient> = None;
        let outcome = loop {
            if sent.elapsed() > give_up {
                eprintln!("client {} has no final answer after {give_up:?}", self.user);
                break Outcome::Unknown;
            }
            let Some(conn) = ws.as_mut() else {
                let url = format!("ws://127.0.0.1:{}/ws", self.ports[self.node]);
                match WsClient::connect(&url, Some(&self.token)).await {
                    Ok(conn) => ws = Some(conn),
                    Err(_) => self.next_node().await,
                }
                continue;
            };
            let params = json!({"activity": activity, "key": key});
            match conn
                .try_request("claim", params, Duration::from_secs(10))
                .await
            {
                None => {
                    ws = None;
                    self.next_node().await;
                }
                Some(reply) => match outcome_of(reply) {
                    Outcome::Refused(code) if code == "unavailable" => {
                        self.counts.unavailable.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    outcome => break outcome,
                },
            }
        };
        if matches!(outcome, Outcome::Held { .. }) {
            self.counts.held.fetch_add(1, Ordering::Relaxed);
        }
        Event {
            user: self.user,
            key,
            outcome,
            latency: sent.elapsed(),
            answered_at: now_ms(),
        }
    }

    async fn next_node(&mut self) {
        self.counts.failovers.fetch_add(1, Ordering::Relaxed);
        self.node = (self.node + 1) % self.ports.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (held, sold out, anything else) over a history; "anything else" includes claims left
/// unanswered.
pub(super) fn tally(history: &[Event]) -> (usize, usize, usize) {
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

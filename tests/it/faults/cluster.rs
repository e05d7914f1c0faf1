//! The cluster the faults are injected into: three nodes on one fresh PostgreSQL database
//! and one private `redis-server`, each node reaching PostgreSQL ([`Cluster::sql_links`]) and
//! Redis ([`Cluster::redis_links`]) through proxies of its own, so a test can restart, hang,
//! slow down or partition a dependency without touching the real one: a fault of the
//! dependency itself breaks every node's link at once ([`Cluster::set_sql`],
//! [`Cluster::set_redis`]), a partition breaks one. The nodes are the real binary ([`Cluster::processes`]), or in-process nodes when the
//! fault needs the in-process hooks ([`Cluster::in_process`]). Checks read the database
//! directly, never through the proxy.

use std::cell::Cell;
use std::time::{Duration, Instant};

use corral::auth::JwtKeys;
use corral::config::{Secret, Settings};
use corral_protocol::Role;
use serde_json::json;
use sqlx::AnyPool;

use crate::claims::{Promo, bulk_users_in, seed_in};
use crate::support::proxy::{Mode, TcpProxy};
use crate::support::redis::PrivateRedis;
use crate::support::{NodeProcess, TestApp, WAIT, WsClient, fresh_postgres_database, unique};

/// How many nodes the cluster has.
pub const NODES: usize = 3;

/// The claim deadline in these runs: a claim the arbiter cannot decide is answered
/// `unavailable` after this.
pub const CLAIM_TIMEOUT_MS: u64 = 500;

/// PostgreSQL's statement deadline in these runs.
pub const STATEMENT_TIMEOUT_MS: u64 = 2_000;

/// The settings every node runs with, as `CORRAL_...` variables (beyond the links): quick
/// deadlines, so a fault is answered within a second or two; reconciliation and chat resync every
/// second, so what a fault strands is repaired within the test; no request limits and no
/// load shedding (the host, not the fault, would trigger them).
fn tuning() -> Vec<(&'static str, String)> {
    [
        ("CORRAL_SERVER__WORKERS", "1"),
        ("CORRAL_DATABASE__MAX_CONNECTIONS", "6"),
        ("CORRAL_DATABASE__STATEMENT_TIMEOUT_MS", "2000"),
        ("CORRAL_REDIS__TIMEOUT_MS", "500"),
        ("CORRAL_REDIS__CLAIMS_RECONCILE_MS", "1000"),
        ("CORRAL_PROMOTIONS__CLAIM_TIMEOUT_MS", "500"),
        ("CORRAL_CHAT__RESYNC_MS", "1000"),
        ("CORRAL_WS__MAX_PER_IP", "100000"),
        ("CORRAL_WS__RATE_PER_SEC", "100000"),
        ("CORRAL_WS__RATE_BURST", "100000"),
        ("CORRAL_WS__USER_RATE_PER_SEC", "100000"),
        ("CORRAL_WS__USER_RATE_BURST", "100000"),
        ("CORRAL_OVERLOAD__ENABLED", "false"),
        ("CORRAL_OVERLOAD__MEMBER_CALM_MS", "0"),
        ("CORRAL_LOG__FILTER", "error"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

/// [`tuning`] for an in-process node.
fn tune(s: &mut Settings) {
    s.server.workers = 1;
    s.database.max_connections = 6;
    s.database.statement_timeout_ms = STATEMENT_TIMEOUT_MS;
    s.redis.timeout_ms = 500;
    s.redis.claims_reconcile_ms = 1000;
    s.promotions.claim_timeout_ms = CLAIM_TIMEOUT_MS;
    s.chat.resync_ms = 1000;
    s.ws.max_per_ip = 100_000;
    s.ws.rate_per_sec = 1e5;
    s.ws.rate_burst = 1e5;
    s.ws.user_rate_per_sec = 1e5;
    s.ws.user_rate_burst = 1e5;
    s.overload.enabled = false;
    s.log.filter = "error".into();
}

/// Three nodes, their dependencies and the links between them.
pub struct Cluster {
    /// The real binaries (empty for an in-process cluster).
    pub processes: Vec<NodeProcess>,
    /// In-process nodes (empty for a cluster of processes).
    pub apps: Vec<TestApp>,
    /// The database, directly.
    pub pool: AnyPool,
    pub keys: std::sync::Arc<JwtKeys>,
    pub redis: PrivateRedis,
    /// Node `i`'s link to Redis.
    pub redis_links: Vec<TcpProxy>,
    /// Node `i`'s link to PostgreSQL.
    pub sql_links: Vec<TcpProxy>,
    _dirs: Vec<tempfile::TempDir>,
}

/// `url` with its `host:port` replaced by `addr`.
fn through(url: &str, addr: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let user = authority
        .rsplit_once('@')
        .map(|(user, _)| format!("{user}@"));
    format!("{scheme}://{}{addr}/{path}", user.unwrap_or_default())
}

/// The `host:port` of `url`.
fn address(url: &str) -> String {
    let rest = url.split_once("://").expect("a URL").1;
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .rsplit('@')
        .next()
        .unwrap_or(authority)
        .to_string()
}

impl Cluster {
    /// The links and the database, before any node.
    async fn links() -> (PrivateRedis, Vec<TcpProxy>, Vec<TcpProxy>, String, AnyPool) {
        sqlx::any::install_default_drivers();
        let redis = PrivateRedis::start().await;
        let redis_links = (0..NODES)
            .map(|_| TcpProxy::start(&format!("127.0.0.1:{}", redis.port)))
            .collect();
        let db = fresh_postgres_database().await;
        let sql_links = (0..NODES).map(|_| TcpProxy::start(&address(&db))).collect();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(4)
            .connect(&db)
            .await
            .expect("the test database");
        (redis, redis_links, sql_links, db, pool)
    }

    /// Three real `corral serve` processes.
    pub async fn processes() -> Cluster {
        Cluster::processes_with(&[]).await
    }

    /// [`Cluster::processes`] with `extra` settings (`CORRAL_...` variables) on every node.
    pub async fn processes_with(extra: &[(&'static str, &str)]) -> Cluster {
        let (redis, redis_links, sql_links, db, pool) = Cluster::links().await;
        let secret = unique("faults-secret");
        let prefix = unique("faults") + ":";
        let mut processes = Vec::new();
        let mut dirs = Vec::new();
        for (link, sql) in redis_links.iter().zip(&sql_links) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut env = tuning();
            env.extend([
                ("CORRAL_DATABASE__URL", through(&db, &sql.addr())),
                ("CORRAL_REDIS__URL", format!("redis://{}", link.addr())),
                ("CORRAL_REDIS__KEY_PREFIX", prefix.clone()),
                ("CORRAL_AUTH__JWT_SECRET", secret.clone()),
            ]);
            env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            processes.push(NodeProcess::start(dir.path(), &env).await);
            dirs.push(dir);
        }
        Cluster {
            processes,
            apps: Vec::new(),
            pool,
            keys: std::sync::Arc::new(JwtKeys::new(&Secret::from(secret.as_str()), "corral", 3600)),
            redis,
            redis_links,
            sql_links,
            _dirs: dirs,
        }
    }

    /// Three in-process nodes (for the fault-injection hooks).
    pub async fn in_process() -> Cluster {
        let (redis, redis_links, sql_links, db, pool) = Cluster::links().await;
        let next = Cell::new(0);
        let apps = TestApp::cluster(NODES, |s| {
            tune(s);
            s.redis.url = Secret::from(format!("redis://{}", redis_links[next.get()].addr()));
            s.database.url = Secret::from(through(&db, &sql_links[next.get()].addr()));
            next.set(next.get() + 1);
        })
        .await;
        let keys = apps[0].state.keys.clone();
        Cluster {
            processes: Vec::new(),
            apps,
            pool,
            keys,
            redis,
            redis_links,
            sql_links,
            _dirs: Vec::new(),
        }
    }

    /// A fault of PostgreSQL itself: every node's link at once.
    pub fn set_sql(&self, mode: Mode) {
        self.sql_links.iter().for_each(|link| link.set(mode));
    }

    /// A fault of Redis itself, as every node sees it: every node's link at once.
    pub fn set_redis(&self, mode: Mode) {
        self.redis_links.iter().for_each(|link| link.set(mode));
    }

    pub fn ports(&self) -> Vec<u16> {
        let processes = self.processes.iter().map(|p| p.port);
        processes.chain(self.apps.iter().map(|a| a.port)).collect()
    }

    pub async fn users(&self, n: usize) -> Vec<(i64, String)> {
        bulk_users_in(&self.pool, &self.keys, n, Role::User).await
    }

    /// Seeds `promo`; returns the activity and its items.
    pub async fn promotion(&self, promo: &Promo) -> (i64, Vec<i64>) {
        let (activity, items, _) = seed_in(&self.pool, &self.keys, promo).await;
        (activity, items)
    }

    /// A public room created through node 0 by `token`'s user.
    pub async fn room(&self, token: &str) -> i64 {
        let url = format!("http://127.0.0.1:{}/api/v1/rooms", self.ports()[0]);
        let body: serde_json::Value = reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .json(&json!({"name": unique("storm"), "private": false}))
            .send()
            .await
            .expect("create a room")
            .json()
            .await
            .expect("room");
        body["room_id"].as_i64().expect("room_id")
    }

    /// Waits (up to `within`) until the cluster is healthy again: every node's `/readyz`
    /// answers 200, and on every node a fresh user's claim of `probe` is held and a message
    /// to `room` is acknowledged. Returns how long that took.
    pub async fn healthy(&self, probe: i64, room: i64, within: Duration) -> Duration {
        let began = Instant::now();
        let http = reqwest::Client::new();
        let fresh = self.users(NODES).await;
        for (port, (user, token)) in self.ports().into_iter().zip(fresh) {
            let ready = format!("http://127.0.0.1:{port}/readyz");
            loop {
                assert!(
                    began.elapsed() < within,
                    "node {port} not healthy within {within:?}"
                );
                let ok = http
                    .get(&ready)
                    .timeout(Duration::from_secs(3))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok && self.works(port, user, &token, probe, room).await {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        began.elapsed()
    }

    /// Whether a claim and a message on `port` succeed now.
    async fn works(&self, port: u16, user: i64, token: &str, probe: i64, room: i64) -> bool {
        let url = format!("ws://127.0.0.1:{port}/ws");
        let Ok(mut ws) = WsClient::connect(&url, Some(token)).await else {
            return false;
        };
        let within = Duration::from_secs(3);
        let claim = json!({"activity": probe, "key": format!("probe-{user}")});
        if !matches!(ws.try_request("claim", claim, within).await, Some(Ok(_))) {
            return false;
        }
        let id = format!("probe-{user}");
        let send = json!({"room": room, "text": id, "client_msg_id": id});
        if !matches!(
            ws.try_request("room.join", json!({"room": room}), within)
                .await,
            Some(Ok(_))
        ) {
            return false;
        }
        matches!(ws.try_request("room.send", send, within).await, Some(Ok(_)))
    }

    /// Asserts that node `i` still serves: a fresh user's claim of `probe` is held and a
    /// message to `room` acknowledged there (within 3 s each), as another node's fault goes on.
    pub async fn serves(&self, i: usize, probe: i64, room: i64) {
        let (user, token) = self.users(1).await.remove(0);
        let port = self.ports()[i];
        assert!(
            self.works(port, user, &token, probe, room).await,
            "node {i} serves a claim and a message"
        );
    }

    /// A fresh member of `room`, joined on node `i` (before a fault: a join needs the
    /// database).
    pub async fn member(&self, i: usize, room: i64) -> WsClient {
        let (_, token) = self.users(1).await.remove(0);
        self.member_as(i, room, &token).await
    }

    /// The user of `token` as a member of `room`, joined on node `i`.
    pub async fn member_as(&self, i: usize, room: i64, token: &str) -> WsClient {
        let url = format!("ws://127.0.0.1:{}/ws", self.ports()[i]);
        let mut ws = WsClient::connect(&url, Some(token)).await.expect("ws");
        let joined = ws
            .try_request("room.join", json!({"room": room}), WAIT)
            .await;
        assert!(matches!(joined, Some(Ok(_))), "{joined:?}");
        ws
    }

    /// Whether a claim on node `i` is answered `unavailable` (and nothing else) within
    /// `within`: the arbiter is unreachable and the node says so instead of guessing.
    pub async fn fails_closed(&self, i: usize, activity: i64, within: Duration) -> Duration {
        let (user, token) = self.users(1).await.remove(0);
        let url = format!("ws://127.0.0.1:{}/ws", self.ports()[i]);
        let mut ws = WsClient::connect(&url, Some(&token)).await.expect("ws");
        let asked = Instant::now();
        let claim = json!({"activity": activity, "key": format!("closed-{user}")});
        let reply = ws.try_request("claim", claim, within).await;
        let waited = asked.elapsed();
        let err = reply
            .unwrap_or_else(|| panic!("no answer within {within:?}"))
            .expect_err("no claim decided while the arbiter is unreachable");
        assert_eq!(err.code.as_str(), "unavailable", "{err:?}");
        waited
    }

    /// Whether node `i`'s `/readyz` answers 503 naming `dependency` (`sql` or `redis`) as
    /// down within `within`; returns the wait.
    pub async fn unready(&self, i: usize, dependency: &str, within: Duration) -> Duration {
        let url = format!("http://127.0.0.1:{}/readyz", self.ports()[i]);
        let asked = Instant::now();
        let resp = reqwest::Client::new()
            .get(url)
            .timeout(within)
            .send()
            .await
            .unwrap_or_else(|e| panic!("/readyz unanswered within {within:?}: {e}"));
        let waited = asked.elapsed();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.expect("readiness");
        assert_eq!(status, 503, "{body}");
        assert_ne!(body[dependency], "ok", "{dependency} named as down: {body}");
        waited
    }

    /// Whether a `room.send` on `member`'s connection is answered `unavailable` (and nothing
    /// else) within the database deadline, with a second's slack: the database is
    /// unreachable and the node says so instead of waiting it out. Returns the wait and the
    /// message's `client_msg_id`.
    pub async fn send_fails_closed(member: &mut WsClient, room: i64) -> (Duration, String) {
        let asked = Instant::now();
        let id = unique("closed");
        let params = json!({"room": room, "text": id, "client_msg_id": id});
        let reply = member.try_request("room.send", params, WAIT).await;
        let waited = asked.elapsed();
        let deadline = Duration::from_millis(STATEMENT_TIMEOUT_MS) + Duration::from_secs(1);
        assert!(
            waited < deadline,
            "room.send answered after {waited:?} ({reply:?}), past the {deadline:?} deadline"
        );
        let err = reply
            .expect("an answer")
            .expect_err("nothing stored while the database is unreachable");
        assert_eq!(err.code.as_str(), "unavailable", "{err:?}");
        (waited, id)
    }
}

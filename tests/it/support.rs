//! Test harness: spawning nodes on both SQL engines, HTTP helpers, and a WebSocket client that
//! matches replies to requests and buffers pushes. Its submodules hold the rest of the one
//! shared set of helpers: [`wait`] (wait until a condition, with a deadline; the protocol's
//! quiet window), [`node`] (run the real binary as a child process), [`redis`] (a private
//! `redis-server` a test may stop) and [`proxy`] (a TCP proxy a test breaks on purpose).

#![allow(dead_code)]

pub mod node;
pub mod proxy;
pub mod redis;
pub mod wait;

pub use node::NodeProcess;
pub use wait::{QUIET, WAIT, check, wait_until};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use corral::Application;
use corral::config::{Secret, Settings};
use corral_protocol::{ErrorBody, Push, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

/// Which SQL engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("CORRAL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The Redis tests use (with their own key prefix).
pub fn redis_url() -> String {
    std::env::var("CORRAL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

/// Creates a fresh PostgreSQL database and returns its URL.
pub async fn fresh_postgres_database() -> String {
    sqlx::any::install_default_drivers();
    let admin = postgres_admin_url();
    let name = unique("corral_test");
    let mut conn = sqlx::AnyConnection::connect(&admin)
        .await
        .expect("PostgreSQL must be reachable at CORRAL_TEST_DATABASE_URL (or 127.0.0.1:5432)");
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SWEPT.swap(true, Ordering::Relaxed) {
        drop_databases_of_ended_runs(&mut conn).await;
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

/// A test's database outlives it (its node may still hold connections when the test ends), so
/// the first database a test process makes drops those left by test processes that no longer
/// run (the name carries the process id), and the server does not fill up run after run.
async fn drop_databases_of_ended_runs(conn: &mut sqlx::AnyConnection) {
    let listed = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'corral_test_%'",
    )
    .fetch_all(&mut *conn)
    .await;
    let names: Vec<String> = match listed {
        Ok(names) => names,
        Err(e) => return eprintln!("could not list old test databases: {e}"),
    };
    for name in names {
        let pid = name
            .strip_prefix("corral_test_")
            .and_then(|rest| rest.split('_').next());
        let ended = pid.is_some_and(|pid| !std::path::Path::new("/proc").join(pid).exists());
        if ended {
            let drop = format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                name.replace('"', "\"\"")
            );
            if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                .execute(&mut *conn)
                .await
            {
                eprintln!("could not drop the old test database {name}: {e}");
            }
        }
    }
}

/// Settings for a test node on `engine`: port 0, a temp data dir, quick timers.
pub async fn test_settings(engine: Engine, dir: &std::path::Path) -> Settings {
    let mut s = Settings::defaults().expect("defaults");
    s.server.listen = "127.0.0.1:0".into();
    s.server.data_dir = dir.to_path_buf();
    s.server.workers = 1;
    s.server.drain_ms = 600;
    s.server.reconnect_jitter_ms = 1000;
    s.database.max_connections = 4;
    s.database.sqlite_synchronous = "normal".into();
    s.database.url = match engine {
        Engine::Sqlite => Secret::default(),
        Engine::Postgres => Secret::from(fresh_postgres_database().await),
    };
    s.log.filter = "warn".into();
    // The load-shedding probe reacts to the host: on a busy CI machine it would refuse feeds
    // and chat in tests about feeds and chat. The shedding test sets its levels by hand.
    s.overload.enabled = false;
    // Test clients are read one after another (a crowd's sockets by one task), so a socket may
    // go unread for seconds while pushes flow: the lag rule and the member pause it sets off
    // have their own tests, which turn them on.
    s.ws.max_lag_ms = 0;
    s.overload.member_calm_ms = 0;
    s.overload.fanout_delay_ms = 0;
    s.overload.late_member_ms = 0;
    // Tests register and log in many users from 127.0.0.1; the edge tests set these back.
    s.auth.login_per_ip_burst = 1e9;
    s.auth.register_per_ip_burst = 1e9;
    s.server.max_connections_per_ip = 100_000;
    s.ws.max_per_ip = 100_000;
    s
}

/// A running test node.
pub struct TestApp {
    pub port: u16,
    /// The operators' listener, when `server.admin_listen` is set.
    pub admin_port: Option<u16>,
    pub engine: Engine,
    pub state: actix_web::web::Data<corral::state::AppState>,
    pub server: actix_web::dev::ServerHandle,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    /// Stops the node and closes its pool, so a long test run does not exhaust the shared
    /// PostgreSQL's connection slots with finished tests' idle connections. Done on a thread of
    /// its own: the test's runtime is ending as this runs.
    fn drop(&mut self) {
        let pool = self.state.db.pool.clone();
        let server = self.server.clone();
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let _ = tokio::time::timeout(Duration::from_secs(3), server.stop(false)).await;
                let _ = tokio::time::timeout(Duration::from_secs(3), pool.close()).await;
            });
        });
    }
}

impl TestApp {
    /// Starts a node with default test settings.
    pub async fn spawn(engine: Engine) -> TestApp {
        TestApp::spawn_with(engine, |_| {}).await
    }

    /// Starts a node after `tweak` adjusted its settings.
    pub async fn spawn_with(engine: Engine, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = test_settings(engine, dir.path()).await;
        tweak(&mut settings);
        corral::telemetry::init_logging(&settings.log);
        let app = Application::build(settings).await.expect("build app");
        let port = app.port();
        let admin_port = app.admin_port();
        let state = app.state();
        let server = app.server_handle();
        actix_web::rt::spawn(app.run_until_stopped());
        TestApp {
            port,
            admin_port,
            engine,
            state,
            server,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Starts `n` nodes of one cluster: one PostgreSQL database, one Redis key prefix, one
    /// token key; `tweak` adjusts every node's settings.
    pub async fn cluster(n: usize, tweak: impl Fn(&mut Settings)) -> Vec<TestApp> {
        let prefix = format!("{}:", unique("cluster"));
        let key = Secret::from(unique("key").repeat(2));
        let mut nodes: Vec<TestApp> = Vec::with_capacity(n);
        for _ in 0..n {
            let db = nodes
                .first()
                .map(|first| first.state.settings.database.url.clone());
            let node = TestApp::spawn_with(Engine::Postgres, |s| {
                s.redis.url = Secret::from(redis_url());
                s.redis.key_prefix = prefix.clone();
                s.auth.jwt_secret = key.clone();
                if let Some(db) = db {
                    s.database.url = db;
                }
                tweak(s);
            })
            .await;
            nodes.push(node);
        }
        nodes
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// POSTs JSON, returning status and body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// GETs, returning status and body (JSON, or the text as a JSON string).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Registers and logs in a fresh user; returns (user_id, token).
    pub async fn user(&self, name: &str) -> (i64, String) {
        let username = unique(name);
        let username = &username[..username.len().min(32)];
        let creds = json!({"username": username, "password": "correct-horse"});
        let (status, body) = self
            .post("/api/v1/auth/register", None, creds.clone())
            .await;
        assert_eq!(status, 201, "register: {body}");
        let (status, body) = self.post("/api/v1/auth/login", None, creds).await;
        assert_eq!(status, 200, "login: {body}");
        (
            body["user_id"].as_i64().expect("user_id"),
            body["token"].as_str().expect("token").to_string(),
        )
    }

    /// Opens a WebSocket, authenticated with `auth` when a token is given.
    pub async fn client(&self, token: Option<&str>) -> WsClient {
        let mut ws = WsClient::connect(&self.ws_url(), None)
            .await
            .expect("ws connect");
        if let Some(token) = token {
            ws.request("auth", json!({ "token": token }))
                .await
                .expect("auth ok");
        }
        ws
    }
}

/// The value of one series (`name{labels}` exactly as exported) in Prometheus text; 0 when
/// absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The HTTP status an upgrade was refused with (`None` when it was not refused by a status).
pub fn upgrade_status<T>(result: &Result<T, tungstenite::Error>) -> Option<u16> {
    match result {
        Err(tungstenite::Error::Http(resp)) => Some(resp.status().as_u16()),
        _ => None,
    }
}

/// The upgrade request offering `corral.v1`, with an optional `Authorization: Bearer`.
fn upgrade_request(
    url: &str,
    bearer: Option<&str>,
) -> Result<tungstenite::handshake::client::Request, tungstenite::Error> {
    let mut req = url.into_client_request()?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "corral.v1".parse().expect("header"),
    );
    if let Some(token) = bearer {
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
    }
    Ok(req)
}

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A protocol client over a real WebSocket.
pub struct WsClient {
    ws: Stream,
    next_id: u64,
    pushes: VecDeque<Push>,
    /// Raw push frames (for events the typed enum does not know yet).
    raw_pushes: VecDeque<Value>,
    pub closed: Option<Option<CloseFrame>>,
}

impl WsClient {
    /// Connects offering `corral.v1`, with an optional `Authorization: Bearer`.
    pub async fn connect(url: &str, bearer: Option<&str>) -> Result<WsClient, tungstenite::Error> {
        let (ws, _resp) = tokio_tungstenite::connect_async(upgrade_request(url, bearer)?).await?;
        Ok(WsClient::over(ws))
    }

    /// Connects as [`WsClient::connect`] (no bearer) over a socket whose kernel receive buffer
    /// is fixed at `bytes` (no autotuning): when this client stops reading, what the node sends
    /// it waits in the node, not in this machine's buffers.
    pub async fn connect_with_receive_buffer(
        url: &str,
        bytes: u32,
    ) -> Result<WsClient, tungstenite::Error> {
        let req = upgrade_request(url, None)?;
        let authority = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let addr: std::net::SocketAddr = authority.parse().expect("a numeric host:port");
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(bytes)?;
        let tcp = socket.connect(addr).await?;
        let stream = tokio_tungstenite::MaybeTlsStream::Plain(tcp);
        let (ws, _resp) = tokio_tungstenite::client_async(req, stream).await?;
        Ok(WsClient::over(ws))
    }

    fn over(ws: Stream) -> WsClient {
        WsClient {
            ws,
            next_id: 0,
            pushes: VecDeque::new(),
            raw_pushes: VecDeque::new(),
            closed: None,
        }
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::text(text.into()))
            .await
            .expect("send frame");
    }

    /// Sends a raw message.
    pub async fn send_message(&mut self, msg: Message) -> Result<(), tungstenite::Error> {
        self.ws.send(msg).await
    }

    /// Sends `op` with `params` (an object) and returns the new request id.
    pub async fn send_op(&mut self, op: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let mut frame = params;
        frame["id"] = json!(id);
        frame["op"] = json!(op);
        self.send_text(frame.to_string()).await;
        id
    }

    /// Sends a request and waits for its reply.
    pub async fn request(&mut self, op: &str, params: Value) -> Result<Value, ErrorBody> {
        let id = self.send_op(op, params).await;
        self.reply_to(Some(id)).await
    }

    /// Waits for the reply with `re`, buffering pushes that arrive first.
    pub async fn reply_to(&mut self, re: Option<u64>) -> Result<Value, ErrorBody> {
        let deadline = tokio::time::Instant::now() + WAIT;
        self.reply_until(re, deadline)
            .await
            .unwrap_or_else(|| panic!("no reply to {re:?} (closed: {:?})", self.closed))
    }

    /// Sends a request and waits up to `within` for its reply; `None` when the connection
    /// is lost or nothing came (for clients that fail over to another node instead).
    pub async fn try_request(
        &mut self,
        op: &str,
        params: Value,
        within: Duration,
    ) -> Option<Result<Value, ErrorBody>> {
        if self.closed.is_some() {
            return None;
        }
        self.next_id += 1;
        let id = self.next_id;
        let mut frame = params;
        frame["id"] = json!(id);
        frame["op"] = json!(op);
        if self
            .ws
            .send(Message::text(frame.to_string()))
            .await
            .is_err()
        {
            self.closed = Some(None);
            return None;
        }
        self.reply_until(Some(id), tokio::time::Instant::now() + within)
            .await
    }

    /// The reply with `re` if it comes before `deadline`, buffering pushes meanwhile.
    async fn reply_until(
        &mut self,
        re: Option<u64>,
        deadline: tokio::time::Instant,
    ) -> Option<Result<Value, ErrorBody>> {
        loop {
            let frame = self.next_frame_until(deadline).await?;
            match frame {
                Incoming::Reply { re: got, result } if got == re => return Some(result),
                Incoming::Reply { re: got, .. } => {
                    panic!("reply to {got:?} while waiting for {re:?}")
                }
                Incoming::Push(push, raw) => {
                    if let Some(push) = push {
                        self.pushes.push_back(push);
                    }
                    self.raw_pushes.push_back(raw);
                }
            }
        }
    }

    /// The next push frame (raw JSON) whose `ev` is `ev`; pushes of other kinds stay
    /// buffered, in order, for later calls.
    pub async fn next_event(&mut self, ev: &str) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        self.next_event_until(ev, deadline).await
    }

    /// As [`next_event`] with a deadline.
    pub async fn next_event_until(
        &mut self,
        ev: &str,
        deadline: tokio::time::Instant,
    ) -> Option<Value> {
        if let Some(at) = self.raw_pushes.iter().position(|raw| raw["ev"] == ev) {
            return self.raw_pushes.remove(at);
        }
        loop {
            match self.next_frame_until(deadline).await? {
                Incoming::Push(_, raw) if raw["ev"] == ev => return Some(raw),
                Incoming::Push(_, raw) => self.raw_pushes.push_back(raw),
                Incoming::Reply { .. } => {}
            }
        }
    }

    /// The next push frame (raw JSON) of any kind, in arrival order.
    pub async fn next_push_until(&mut self, deadline: tokio::time::Instant) -> Option<Value> {
        if let Some(raw) = self.raw_pushes.pop_front() {
            return Some(raw);
        }
        loop {
            if let Incoming::Push(_, raw) = self.next_frame_until(deadline).await? {
                return Some(raw);
            }
        }
    }

    /// Asserts that no `ev` push arrives within the protocol's window ([`QUIET`]), nor is
    /// already buffered.
    pub async fn assert_silent(&mut self, ev: &str) {
        self.assert_silent_for(ev, QUIET).await;
    }

    /// Asserts that no `ev` push arrives within `window` (one the test's settings promise,
    /// when longer than [`QUIET`]), nor is already buffered.
    pub async fn assert_silent_for(&mut self, ev: &str, window: Duration) {
        let deadline = tokio::time::Instant::now() + window;
        let got = self.next_event_until(ev, deadline).await;
        assert!(
            got.is_none(),
            "unexpected {ev} push within {window:?}: {got:?}"
        );
    }

    /// Reads until the server closes the connection; returns its close code.
    pub async fn close_code(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.closed.is_none() {
            if self.next_frame_until(deadline).await.is_none() && self.closed.is_none() {
                return None;
            }
        }
        self.closed.clone().flatten().map(|f| u16::from(f.code))
    }

    /// The reason of the close frame the server sent (waits for it like [`Self::close_code`]).
    pub async fn close_reason(&mut self) -> Option<String> {
        self.close_code().await?;
        self.closed.clone().flatten().map(|f| f.reason.to_string())
    }

    async fn next_frame_until(&mut self, deadline: tokio::time::Instant) -> Option<Incoming> {
        loop {
            if self.closed.is_some() {
                return None;
            }
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match msg {
                Some(Ok(Message::Text(text))) => {
                    let raw: Value = serde_json::from_str(&text).expect("server sent JSON");
                    let frame = ServerFrame::parse(&text).ok();
                    return Some(match frame {
                        Some(ServerFrame::Reply { re, result }) => Incoming::Reply { re, result },
                        Some(ServerFrame::Push(push)) => Incoming::Push(Some(push), raw),
                        None => Incoming::Push(None, raw),
                    });
                }
                Some(Ok(Message::Close(frame))) => {
                    self.closed = Some(frame);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    if self.closed.is_none() {
                        self.closed = Some(None);
                    }
                }
            }
        }
    }

    /// Whether the socket still answers a request.
    pub async fn is_open(&mut self) -> bool {
        let id = self.send_op("time.sync", json!({"client_time": 1})).await;
        matches!(self.reply_to(Some(id)).await, Ok(v) if v["client_time"] == 1)
    }
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClient")
            .field("closed", &self.closed)
            .finish()
    }
}

enum Incoming {
    Reply {
        re: Option<u64>,
        result: Result<Value, ErrorBody>,
    },
    Push(Option<Push>, Value),
}

/// Defines `<name>_sqlite` and `<name>_postgres` tests running `body(Engine)`.
#[macro_export]
macro_rules! engine_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[actix_web::test]
                async fn sqlite() {
                    super::$name($crate::support::Engine::Sqlite).await
                }
                #[actix_web::test]
                async fn postgres() {
                    super::$name($crate::support::Engine::Postgres).await
                }
            }
        )*
    };
}

//! Scenario files (TOML, in `config/loadtest/`): what to run, against what, how big and for
//! how long. Every scenario is bounded in clients, messages and time.

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::LoadError;

/// The largest client count one run may open (several workers, several source addresses).
pub const MAX_CLIENTS: usize = 100_000;
/// The longest a run may last, whatever the scenario says.
pub const MAX_SECONDS: u64 = 3600;
/// Sockets one worker process may hold: the open-files hard limit here is 20,000 and cannot
/// be raised, and a process needs a few descriptors of its own.
pub const MAX_SOCKETS_PER_WORKER: usize = 18_900;
/// Ephemeral ports one source address can use towards one target (32768..60999, with slack).
pub const MAX_SOCKETS_PER_SOURCE: usize = 25_000;

/// What a scenario does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Open idle authenticated connections up to a target; report server RSS per connection.
    ConnectCapacity,
    /// Drive a plain WebSocket broadcast server (text in, the same text out to all).
    RawBroadcast,
    /// Rooms of members, publishers at a set rate; delivery latency and exactly-once order.
    ChatStorm,
    /// Followers of one merchant; the merchant posts; push latency.
    FeedBurst,
    /// A crowd subscribes to a promotion and claims at its start instant.
    FlashCrowd,
    /// Churn: connect, act, disconnect, reconnect with `since`, for a set time.
    Soak,
}

impl Kind {
    /// Whether clients authenticate with Corral tokens.
    pub fn needs_tokens(self) -> bool {
        !matches!(self, Kind::RawBroadcast)
    }

    /// Whether clients receive messages others published (and the report rates deliveries).
    pub fn has_deliveries(self) -> bool {
        matches!(
            self,
            Kind::RawBroadcast | Kind::ChatStorm | Kind::FeedBurst | Kind::Soak
        )
    }
}

/// A scenario file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A name for the report.
    pub name: String,
    /// What it does.
    pub kind: Kind,
    /// WebSocket URL of the server (`--target` overrides); loopback only.
    pub target: String,
    /// The WebSocket URLs of every node of a local cluster: worker `i` drives
    /// `nodes[i % nodes.len()]` (provisioning still goes to `target`). Empty: every worker
    /// drives `target`.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Worker processes sharing the clients.
    #[serde(default = "one")]
    pub workers: usize,
    /// Source addresses 127.0.0.1 .. 127.0.0.<n> the clients bind (each gives ~28k ports).
    #[serde(default = "one")]
    pub source_addrs: usize,
    /// Tokens file written by `corral admin seed-users` (relative to the scenario file).
    #[serde(default)]
    pub tokens: Option<PathBuf>,
    /// HTTP base URL of the server for provisioning and the merchant view (defaults to the
    /// target's host and port); loopback only.
    #[serde(default)]
    pub http_base: Option<String>,
    /// Hard bound on the whole run, in seconds.
    pub max_seconds: u64,
    /// How clients connect.
    pub connect: ConnectSpec,
    /// `connect-capacity` settings.
    #[serde(default)]
    pub capacity: Option<CapacitySpec>,
    /// `raw-broadcast`, `chat-storm` and `feed-burst` settings.
    #[serde(default)]
    pub broadcast: Option<BroadcastSpec>,
    /// `flash-crowd` settings.
    #[serde(default)]
    pub crowd: Option<CrowdSpec>,
    /// `soak` settings.
    #[serde(default)]
    pub soak: Option<SoakSpec>,
}

fn one() -> usize {
    1
}

/// How clients connect.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectSpec {
    /// Clients in total (over all workers).
    pub clients: usize,
    /// New connections per second over all workers (the ramp); 0 = as fast as allowed.
    #[serde(default)]
    pub ramp_per_sec: u64,
    /// Handshakes in flight per worker.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Seconds allowed for the whole connect phase.
    #[serde(default = "default_connect_seconds")]
    pub seconds: u64,
}

fn default_concurrency() -> usize {
    256
}

fn default_connect_seconds() -> u64 {
    60
}

/// `connect-capacity`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacitySpec {
    /// The local server's pid; discovered from the target's listening port when absent.
    #[serde(default)]
    pub server_pid: Option<u32>,
    /// Seconds to hold the connections open (idle) before measuring memory.
    #[serde(default = "default_settle")]
    pub settle_seconds: u64,
    /// Plain WebSocket connections (no subprotocol, no `auth`, no tokens), to measure the
    /// bare peers' idle memory with the same client as Corral's.
    #[serde(default)]
    pub raw: bool,
}

fn default_settle() -> u64 {
    3
}

/// Publishing into rooms (`raw-broadcast`: one implicit room, the whole server).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BroadcastSpec {
    /// Rooms (chat-storm); clients are spread round-robin. Raw broadcast has one.
    #[serde(default = "one_u64")]
    pub rooms: u64,
    /// Existing public rooms to use (chat-storm), `rooms` of them; when absent the run
    /// creates `rooms` public rooms with the first account's token (and records their ids
    /// here in `result.json`).
    #[serde(default)]
    pub room_ids: Option<Vec<i64>>,
    /// Publishing clients in total (the first clients of each room).
    pub publishers: usize,
    /// Messages per second per publisher.
    pub rate_per_sec: f64,
    /// Seconds of publishing.
    pub seconds: u64,
    /// Message size in bytes (the timestamp header plus padding).
    #[serde(default = "default_message_bytes")]
    pub message_bytes: usize,
    /// Seconds to wait for the last deliveries after publishing stops.
    #[serde(default = "default_drain")]
    pub drain_seconds: u64,
}

fn one_u64() -> u64 {
    1
}

fn default_message_bytes() -> usize {
    100
}

fn default_drain() -> u64 {
    3
}

/// `flash-crowd`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrowdSpec {
    /// An existing activity (promotion) of the merchant to claim in; it must start after the
    /// connect phase. When absent the run creates `items` animals and an activity offering
    /// `slots_per_item` slots of each, starting `start_margin_seconds` after the expected end
    /// of the connect phase (and records its id here in `result.json`).
    #[serde(default)]
    pub activity: Option<i64>,
    /// Tokens file of the merchant (its first account: `corral admin seed-users --role
    /// merchant`) that creates the activity and whose view of the claims the invariant check
    /// reads (relative to the scenario file).
    pub merchant_tokens: PathBuf,
    /// Created activity: its items (animals), 1 to 100.
    #[serde(default = "one_u64")]
    pub items: u64,
    /// Created activity: slots of each item.
    #[serde(default = "one_u64")]
    pub slots_per_item: u64,
    /// Created activity: seconds between the expected end of the connect phase (clients /
    /// ramp) and `starts_at`.
    #[serde(default = "default_start_margin")]
    pub start_margin_seconds: u64,
    /// Created activity: hold lifetime (long enough that holds outlive the run).
    #[serde(default = "default_hold_seconds")]
    pub hold_seconds: u64,
    /// Created activity: claims per user.
    #[serde(default = "one_u64")]
    pub per_user_limit: u64,
    /// Claims each client sends at the start instant (distinct keys).
    #[serde(default = "one")]
    pub claims_per_client: usize,
    /// Each claim is sent at start + a uniform random delay up to this, in ms.
    #[serde(default)]
    pub jitter_ms: u64,
    /// Retries (same key) after `unavailable` / `rate_limited` / transport trouble.
    #[serde(default)]
    pub retries: u32,
    /// Seconds after the start instant to wait for replies.
    #[serde(default = "default_crowd_seconds")]
    pub seconds: u64,
    /// Created activity: its `rules` (SPEC section 13), as the HTTP API takes them; absent,
    /// anyone may claim.
    #[serde(default)]
    pub rules: Option<serde_json::Value>,
    /// The share of clients (0 to 1) that follow the merchant before subscribing, so a
    /// followers-only promotion has its audience.
    #[serde(default)]
    pub followers_share: f64,
    /// The merchant's user id (recorded by the run; clients follow it).
    #[serde(default)]
    pub merchant: Option<i64>,
}

fn default_crowd_seconds() -> u64 {
    10
}

fn default_start_margin() -> u64 {
    3
}

fn default_hold_seconds() -> u64 {
    900
}

/// `soak`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoakSpec {
    /// Seconds of churn.
    pub seconds: u64,
    /// Each client reconnects after a random time up to this, in ms.
    pub reconnect_every_ms: u64,
    /// An existing public room clients join (and re-join with `since`); when absent the run
    /// creates one with the first account's token.
    #[serde(default)]
    pub room: Option<i64>,
    /// Messages per second each client sends while connected.
    pub rate_per_sec: f64,
    /// Seconds every client stays connected after the churn, collecting the last messages.
    #[serde(default = "default_drain")]
    pub drain_seconds: u64,
    /// When set, the node (when it runs on this machine, found by its port or
    /// `--server-pid`) is sampled once a second and, after this many seconds of churn, held to
    /// staying flat: RSS, open files, connections and running actors.
    #[serde(default)]
    pub warmup_seconds: Option<u64>,
    /// Feed posts per second over all clients (each client posts at this rate divided by the
    /// clients, to its own feed). Every client follows the next one (client `n` follows
    /// client `n + 1`) during setup, and at the end reads its timeline: every acknowledged
    /// post of the author it follows is there once, in order. 0: no posts, no follows.
    #[serde(default)]
    pub posts_per_sec: f64,
    /// Claims mixed into the churn (`[soak.claims]`); absent: none.
    #[serde(default)]
    pub claims: Option<SoakClaims>,
}

/// `[soak.claims]`: a steady trickle of claims on one promotion through the whole soak. Every
/// client subscribes to the promotion (again after each reconnect), claims with a fresh
/// idempotency key at its share of the rate, sends a claim again with the same key when it
/// was answered `unavailable`, `rate_limited` or `timeout` or lost with its socket, and gives
/// some holds back with `claim.cancel` while the rest expire, so slots churn. Afterwards the
/// flash crowd's checks: no oversell, every acknowledged hold in the merchant view, nobody
/// above the per-user limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoakClaims {
    /// Claims per second over all clients.
    pub per_sec: f64,
    /// Tokens file of the merchant that creates the promotion and reads its claims
    /// (relative to the scenario file).
    pub merchant_tokens: PathBuf,
    /// An existing activity of the merchant, live through the whole run. When absent the run
    /// creates `items` animals and an activity offering `slots_per_item` slots of each,
    /// opening once the clients are connected and closing after `max_seconds` (and records
    /// its id here in `result.json`).
    #[serde(default)]
    pub activity: Option<i64>,
    /// Created activity: its items (animals), 1 to 100.
    #[serde(default = "one_u64")]
    pub items: u64,
    /// Created activity: slots of each item.
    #[serde(default = "default_soak_slots")]
    pub slots_per_item: u64,
    /// Created activity: hold lifetime; a hold not given back expires after it.
    #[serde(default = "default_soak_hold")]
    pub hold_seconds: u64,
    /// Created activity: claims per user.
    #[serde(default = "one_u64")]
    pub per_user_limit: u64,
    /// The share of holds (0 to 1) given back with `claim.cancel` at a random moment in the
    /// first half of their lifetime; the others are left to expire.
    #[serde(default = "half")]
    pub cancel_share: f64,
    /// Retries (same key) of a claim answered `unavailable`, `rate_limited` or `timeout`.
    #[serde(default = "default_soak_retries")]
    pub retries: u32,
}

fn default_soak_slots() -> u64 {
    20
}

fn default_soak_hold() -> u64 {
    30
}

fn half() -> f64 {
    0.5
}

fn default_soak_retries() -> u32 {
    3
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, LoadError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LoadError::Scenario(format!("{}: {e}", path.display())))?;
        let mut scenario: Scenario = toml::from_str(&text)
            .map_err(|e| LoadError::Scenario(format!("{}: {e}", path.display())))?;
        if let (Some(tokens), Some(dir)) = (&scenario.tokens, path.parent())
            && tokens.is_relative()
        {
            scenario.tokens = Some(dir.join(tokens));
        }
        if let Some(dir) = path.parent() {
            for merchant in scenario.merchant_tokens_mut() {
                if merchant.is_relative() {
                    *merchant = dir.join(&*merchant);
                }
            }
        }
        Ok(scenario)
    }

    /// Checks the bounds: clients, workers, sockets per worker and per source, time, and a
    /// loopback target.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |m: String| Err(LoadError::Scenario(m));
        let clients = self.connect.clients;
        if clients == 0 || clients > MAX_CLIENTS {
            return bad(format!("clients must be 1..={MAX_CLIENTS}"));
        }
        if self.workers == 0 || self.workers > 16 {
            return bad("workers must be 1..=16".into());
        }
        if clients.div_ceil(self.workers) > MAX_SOCKETS_PER_WORKER {
            return bad(format!(
                "{clients} clients over {} workers exceeds {MAX_SOCKETS_PER_WORKER} sockets per \
                 worker (the open-files limit is 20,000 per process): add workers",
                self.workers
            ));
        }
        if self.source_addrs == 0 || self.source_addrs > 250 {
            return bad("source_addrs must be 1..=250".into());
        }
        if clients.div_ceil(self.source_addrs) > MAX_SOCKETS_PER_SOURCE {
            return bad(format!(
                "{clients} clients over {} source addresses exceeds {MAX_SOCKETS_PER_SOURCE} \
                 ports per address: add source_addrs",
                self.source_addrs
            ));
        }
        if self.max_seconds == 0 || self.max_seconds > MAX_SECONDS {
            return bad(format!("max_seconds must be 1..={MAX_SECONDS}"));
        }
        let needed = match self.kind {
            Kind::ConnectCapacity => self.capacity.is_none().then_some("[capacity]"),
            Kind::RawBroadcast | Kind::ChatStorm | Kind::FeedBurst => {
                self.broadcast.is_none().then_some("[broadcast]")
            }
            Kind::FlashCrowd => self.crowd.is_none().then_some("[crowd]"),
            Kind::Soak => self.soak.is_none().then_some("[soak]"),
        };
        if let Some(section) = needed {
            return bad(format!(
                "a {:?} scenario needs a {section} section",
                self.kind
            ));
        }
        if let Some(b) = &self.broadcast {
            if b.publishers == 0 || b.publishers > clients {
                return bad("publishers must be 1..=clients".into());
            }
            if !(b.rate_per_sec > 0.0 && b.rate_per_sec <= 10_000.0) {
                return bad("rate_per_sec must be in (0, 10000]".into());
            }
            if b.rooms == 0 || b.rooms as usize > clients {
                return bad("rooms must be 1..=clients".into());
            }
            if b.message_bytes < 48 || b.message_bytes > 60_000 {
                return bad("message_bytes must be 48..=60000".into());
            }
            if b.room_ids
                .as_ref()
                .is_some_and(|ids| ids.len() as u64 != b.rooms)
            {
                return bad("room_ids must list `rooms` ids".into());
            }
        }
        if let Some(c) = &self.crowd {
            if !(1..=100).contains(&c.items) || c.slots_per_item == 0 || c.per_user_limit == 0 {
                return bad(
                    "crowd: items must be 1..=100, slots_per_item and per_user_limit >= 1".into(),
                );
            }
            if c.claims_per_client == 0 || c.claims_per_client > 100 {
                return bad("crowd: claims_per_client must be 1..=100".into());
            }
            if !(0.0..=1.0).contains(&c.followers_share) {
                return bad("crowd: followers_share must be 0..=1".into());
            }
        }
        if let Some(s) = &self.soak {
            if !(s.rate_per_sec > 0.0 && s.rate_per_sec <= 40.0 && s.reconnect_every_ms >= 100) {
                return bad(
                    "soak: rate_per_sec must be in (0, 40], reconnect_every_ms >= 100".into(),
                );
            }
            if !(0.0..=10_000.0).contains(&s.posts_per_sec) {
                return bad("soak: posts_per_sec must be 0..=10000".into());
            }
            if let Some(c) = &s.claims {
                if !(c.per_sec > 0.0 && c.per_sec <= 10_000.0) {
                    return bad("soak.claims: per_sec must be in (0, 10000]".into());
                }
                if !(1..=100).contains(&c.items) || c.slots_per_item == 0 || c.per_user_limit == 0 {
                    return bad(
                        "soak.claims: items must be 1..=100, slots_per_item and per_user_limit \
                         >= 1"
                            .into(),
                    );
                }
                if !(2..=86_400).contains(&c.hold_seconds) {
                    return bad("soak.claims: hold_seconds must be 2..=86400".into());
                }
                if !(0.0..=1.0).contains(&c.cancel_share) {
                    return bad("soak.claims: cancel_share must be 0..=1".into());
                }
            }
        }
        if let Some(base) = &self.http_base {
            http_addr(base)?;
        }
        if self.needs_tokens() && self.tokens.is_none() {
            return bad("this scenario needs `tokens` (see `corral admin seed-users`)".into());
        }
        for node in &self.nodes {
            target_addr(node)?;
        }
        target_addr(&self.target).map(|_| ())
    }

    /// The merchant tokens files the scenario names (a flash crowd's, a soak's claims').
    pub fn merchant_tokens(&self) -> impl Iterator<Item = &PathBuf> {
        let crowd = self.crowd.as_ref().map(|c| &c.merchant_tokens);
        let soak = self.soak_claims().map(|c| &c.merchant_tokens);
        crowd.into_iter().chain(soak)
    }

    fn merchant_tokens_mut(&mut self) -> impl Iterator<Item = &mut PathBuf> {
        let crowd = self.crowd.as_mut().map(|c| &mut c.merchant_tokens);
        let soak = self
            .soak
            .as_mut()
            .and_then(|s| s.claims.as_mut())
            .map(|c| &mut c.merchant_tokens);
        crowd.into_iter().chain(soak)
    }

    /// A soak's `[soak.claims]`, if it mixes claims in.
    pub fn soak_claims(&self) -> Option<&SoakClaims> {
        self.soak.as_ref().and_then(|s| s.claims.as_ref())
    }

    /// Whether clients speak plain WebSocket: no subprotocol, no `auth` (the raw broadcast,
    /// and an idle-capacity run against a bare peer).
    pub fn raw(&self) -> bool {
        self.kind == Kind::RawBroadcast
            || (self.kind == Kind::ConnectCapacity && self.capacity.as_ref().is_some_and(|c| c.raw))
    }

    /// Whether clients authenticate, so the scenario needs `tokens`.
    pub fn needs_tokens(&self) -> bool {
        self.kind.needs_tokens() && !self.raw()
    }

    /// The node worker `index` drives.
    pub fn worker_target(&self, index: usize) -> &str {
        match self.nodes.len() {
            0 => &self.target,
            n => &self.nodes[index % n],
        }
    }

    /// The source address of client `n`.
    pub fn source_addr(&self, n: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (n % self.source_addrs) as u8))
    }
}

/// Resolves a `ws://host:port/path` target, refusing anything that is not loopback.
pub fn target_addr(target: &str) -> Result<std::net::SocketAddr, LoadError> {
    let rest = target
        .strip_prefix("ws://")
        .ok_or_else(|| LoadError::Target(format!("{target}: only ws:// URLs are driven")))?;
    loopback_authority(target, rest)
}

/// Resolves an `http://host:port` base URL, refusing anything that is not loopback.
pub fn http_addr(base: &str) -> Result<std::net::SocketAddr, LoadError> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| LoadError::Target(format!("{base}: only http:// bases are used")))?;
    loopback_authority(base, rest)
}

impl Scenario {
    /// The HTTP base URL of the server: `http_base`, or the target's host and port.
    pub fn http_base(&self) -> Result<String, LoadError> {
        match &self.http_base {
            Some(base) => {
                http_addr(base)?;
                Ok(base.trim_end_matches('/').to_string())
            }
            None => Ok(format!("http://{}", target_addr(&self.target)?)),
        }
    }
}

fn loopback_authority(target: &str, rest: &str) -> Result<std::net::SocketAddr, LoadError> {
    let authority = rest.split('/').next().unwrap_or_default();
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addrs: Vec<_> = with_port
        .to_socket_addrs()
        .map_err(|e| LoadError::Target(format!("{target}: {e}")))?
        .collect();
    match addrs.first() {
        Some(addr) if addrs.iter().all(|a| a.ip().is_loopback()) => Ok(*addr),
        _ => Err(LoadError::Target(format!(
            "{target}: refusing a non-loopback target (load tests run on this machine only)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(target_addr("ws://127.0.0.1:8080/ws").is_ok());
        assert!(target_addr("ws://localhost:8080/ws").is_ok());
        assert!(target_addr("ws://[::1]:9/").is_ok());
        assert!(target_addr("ws://10.0.0.1:8080/ws").is_err());
        assert!(target_addr("ws://8.8.8.8/ws").is_err());
        assert!(target_addr("wss://127.0.0.1/ws").is_err());
        assert!(http_addr("http://127.0.0.2:8080").is_ok());
        assert!(http_addr("http://10.0.0.1:8080").is_err());
        assert!(http_addr("https://127.0.0.1").is_err());
    }

    #[test]
    fn every_shipped_scenario_parses_and_validates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/loadtest");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let scenario = Scenario::load(&path);
                assert!(scenario.is_ok(), "{}: {:?}", path.display(), scenario.err());
                let valid = scenario.map(|s| s.validate());
                assert!(matches!(valid, Ok(Ok(()))), "{}: {valid:?}", path.display());
                seen += 1;
            }
        }
        assert!(
            seen >= 6,
            "expected the shipped scenarios in {}",
            dir.display()
        );
    }

    /// A connect-capacity scenario against port 1 with `top` (top-level keys) and `clients`.
    fn capacity(top: &str, clients: usize) -> Result<Scenario, toml::de::Error> {
        toml::from_str(&format!(
            r#"
            name = "x"
            kind = "connect-capacity"
            target = "ws://127.0.0.1:1/ws"
            tokens = "t.json"
            max_seconds = 10
            {top}
            [connect]
            clients = {clients}
            [capacity]
            "#
        ))
    }

    #[test]
    fn a_raw_capacity_run_needs_no_tokens() {
        let mut plain = capacity("", 10).expect("scenario");
        plain.tokens = None;
        assert!(plain.needs_tokens() && !plain.raw());
        assert!(plain.validate().is_err());
        if let Some(c) = &mut plain.capacity {
            c.raw = true;
        }
        assert!(plain.raw() && !plain.needs_tokens());
        assert!(plain.validate().is_ok());
    }

    #[test]
    fn workers_spread_over_the_nodes_of_a_cluster() {
        let nodes =
            r#"nodes = ["ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws", "ws://127.0.0.1:3/ws"]"#;
        let scenario = capacity(&format!("{nodes}\nworkers = 4"), 40).expect("scenario");
        assert!(scenario.validate().is_ok());
        let targets: Vec<&str> = (0..4).map(|i| scenario.worker_target(i)).collect();
        assert_eq!(
            targets,
            [
                "ws://127.0.0.1:1/ws",
                "ws://127.0.0.1:2/ws",
                "ws://127.0.0.1:3/ws",
                "ws://127.0.0.1:1/ws"
            ]
        );
        let mut remote = scenario;
        remote.nodes.push("ws://10.0.0.1:8080/ws".into());
        assert!(remote.validate().is_err(), "every node must be loopback");
        remote.nodes.clear();
        assert_eq!(remote.worker_target(3), "ws://127.0.0.1:1/ws");
    }

    #[test]
    fn sockets_per_worker_are_bounded() {
        let err = capacity("workers = 1", 19000).map(|s| s.validate());
        assert!(matches!(err, Ok(Err(LoadError::Scenario(_)))), "{err:?}");
    }
}

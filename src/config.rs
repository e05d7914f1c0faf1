//! Typed, layered configuration: the built-in `config/default.toml`, an optional profile (built
//! in, with a `config/<profile>.toml` file layered over it), an optional `--config` file,
//! `CORRAL_...` environment variables, then CLI overrides.

use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

/// The built-in defaults; the same file documents every key.
const DEFAULTS: &str = include_str!("../config/default.toml");

/// The profiles `CORRAL_PROFILE` can name, built into the binary so that they work from any
/// working directory (a service manager rarely starts a node in its source tree).
const PROFILES: &[(&str, &str)] = &[("cluster", include_str!("../config/cluster.example.toml"))];

/// All of Corral's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Listener, data directory, workers, draining.
    pub server: ServerSettings,
    /// The SQL store.
    pub database: DatabaseSettings,
    /// The optional Redis (cluster mode).
    pub redis: RedisSettings,
    /// Tokens.
    pub auth: AuthSettings,
    /// WebSocket connections and their limits.
    pub ws: WsSettings,
    /// Chat rooms and messages.
    pub chat: ChatSettings,
    /// Merchant accounts.
    pub merchants: MerchantSettings,
    /// Live promotions.
    pub promotions: PromotionSettings,
    /// Logging.
    pub log: LogSettings,
    /// The payment webhook.
    pub payments: PaymentSettings,
    /// Ordered load shedding.
    pub overload: OverloadSettings,
}

/// `[overload]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverloadSettings {
    /// Whether the lag probe runs.
    pub enabled: bool,
    /// Probe period in ms.
    pub probe_interval_ms: u64,
    /// Lag (ms) above which feeds and history are shed.
    pub shed_low_lag_ms: u64,
    /// Lag (ms) above which chat is shed too.
    pub shed_medium_lag_ms: u64,
    /// Lag (ms) above which claims and countdowns are shed too.
    pub shed_high_lag_ms: u64,
    /// After fan-out pressure, new room members are taken in at a measured rate until this
    /// long (ms) has passed without pressure and without a refused join; 0: never paced.
    pub member_calm_ms: u64,
    /// A room message fanned out this long (ms) after its request arrived counts as fan-out
    /// pressure; 0: not counted.
    pub fanout_delay_ms: u64,
    /// A lag probe answered this long (ms) after it was sent is a member served late; more
    /// than 1% of a second's probes late counts as fan-out pressure; 0: not counted.
    pub late_member_ms: u64,
}

impl OverloadSettings {
    /// The actors' view of these settings.
    pub fn to_config(&self) -> corral_actors::OverloadConfig {
        let ms = Duration::from_millis;
        corral_actors::OverloadConfig {
            enabled: self.enabled,
            interval: ms(self.probe_interval_ms.max(10)),
            shed_low: ms(self.shed_low_lag_ms),
            shed_medium: ms(self.shed_medium_lag_ms),
            shed_high: ms(self.shed_high_lag_ms),
        }
    }

    /// What counts as fan-out pressure, and how long joins stay paced after it.
    pub fn to_pacing(&self) -> corral_actors::MemberPacing {
        let ms = Duration::from_millis;
        corral_actors::MemberPacing {
            calm: ms(self.member_calm_ms),
            fanout_delay: ms(self.fanout_delay_ms),
            late_member: ms(self.late_member_ms),
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Bind address (`host:port`; port 0 picks a free one).
    pub listen: String,
    /// Where the embedded database and generated secrets live.
    pub data_dir: PathBuf,
    /// HTTP worker threads (0 = one per core).
    pub workers: usize,
    /// Drain time on shutdown, in ms.
    pub drain_ms: u64,
    /// Upper bound of the reconnect delay told to clients, in ms.
    pub reconnect_jitter_ms: u64,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<String>,
    /// Browser origins besides the node's own that may use `/ws` and get CORS answers.
    pub allowed_origins: Vec<String>,
    /// Open TCP connections (HTTP and WebSocket) from one untrusted address.
    pub max_connections_per_ip: usize,
    /// Time for a whole HTTP request (head and body) and its answer, in ms.
    pub request_timeout_ms: u64,
    /// PEM certificate chain to serve HTTPS and WSS with (empty: plain HTTP).
    pub tls_cert: String,
    /// PEM private key of `tls_cert`.
    pub tls_key: String,
    /// How often (s) the resident memory outside the live heap is looked at and, when it
    /// grew since the last trim, the allocator's free memory given back to the OS (0: never).
    pub memory_trim_secs: u64,
    /// A second, operators' listener for `/metrics` and the admin API, which the public one
    /// then stops serving (empty: everything on `listen`).
    pub admin_listen: String,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Connection URL; empty means SQLite in `data_dir`.
    pub url: Secret,
    /// Pool size.
    pub max_connections: u32,
    /// SQLite `synchronous` pragma (`full` or `normal`).
    pub sqlite_synchronous: String,
    /// PostgreSQL `statement_timeout`, in ms.
    pub statement_timeout_ms: u64,
}

/// `[redis]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// Connection URL; empty means no Redis.
    pub url: Secret,
    /// Prefix of every key.
    pub key_prefix: String,
    /// How often, in ms, the claim counters in Redis are reconciled with the durable rows
    /// (a slot taken by a node that died before committing its hold row is given back after
    /// two passes).
    pub claims_reconcile_ms: u64,
    /// Deadline, in ms, of every Redis command and connection attempt.
    pub timeout_ms: u64,
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 key; empty means generated into `data_dir/jwt.secret`.
    pub jwt_secret: Secret,
    /// Token issuer.
    pub issuer: String,
    /// Token lifetime in seconds.
    pub token_ttl_secs: u64,
    /// Password hashes computed at once.
    pub hash_concurrency: usize,
    /// Hash requests waiting for a slot before more are refused.
    pub hash_queue: usize,
    /// Argon2id memory per hash, in KiB.
    pub argon2_memory_kib: u32,
    /// Argon2id passes.
    pub argon2_iterations: u32,
    /// Argon2id lanes.
    pub argon2_parallelism: u32,
    /// Login attempts per minute from one client IP (sustained), and burst.
    pub login_per_ip_per_min: f64,
    /// See `login_per_ip_per_min`.
    pub login_per_ip_burst: f64,
    /// Login attempts per minute for one username (sustained), and burst.
    pub login_per_account_per_min: f64,
    /// See `login_per_account_per_min`.
    pub login_per_account_burst: f64,
    /// Registrations per minute from one client IP (sustained), and burst.
    pub register_per_ip_per_min: f64,
    /// See `register_per_ip_per_min`.
    pub register_per_ip_burst: f64,
    /// Keys (IPs, usernames) each login limiter remembers.
    pub limiter_max_keys: usize,
    /// How often account standings (role, token version, disabled) are re-read, in ms.
    pub standing_refresh_ms: u64,
}

/// `[ws]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsSettings {
    /// Largest client frame in bytes.
    pub max_frame_bytes: usize,
    /// Authentication deadline in ms.
    pub auth_timeout_ms: u64,
    /// Ping interval in ms.
    pub heartbeat_interval_ms: u64,
    /// Silence after which a socket is closed, in ms.
    pub idle_timeout_ms: u64,
    /// Outbound queue length per connection.
    pub outbound_queue: usize,
    /// How far (ms) a busy connection's client may fall behind its pushes before it is
    /// closed as a slow consumer; 0: not judged.
    pub max_lag_ms: u64,
    /// How often (ms) a busy connection pings to measure that lag.
    pub lag_probe_ms: u64,
    /// Sustained requests per second per connection.
    pub rate_per_sec: f64,
    /// Request burst per connection.
    pub rate_burst: f64,
    /// Sustained requests per second per user, over all of its connections.
    pub user_rate_per_sec: f64,
    /// Request burst per user, over all of its connections.
    pub user_rate_burst: f64,
    /// In a cluster, how often (ms) each node settles its users' spending with Redis so the
    /// per-user budget holds across nodes; 0 keeps it per node.
    pub user_rate_settle_ms: u64,
    /// Connections per node.
    pub max_connections: usize,
    /// Connections per client IP.
    pub max_per_ip: usize,
    /// Connections per user.
    pub max_per_user: usize,
    /// New connections per second, node-wide.
    pub new_per_sec: f64,
    /// New-connection burst.
    pub new_burst: f64,
}

/// `[chat]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSettings {
    /// Longest message text, in characters.
    pub max_text_chars: usize,
    /// Rooms one connection may have joined at once.
    pub rooms_per_connection: usize,
    /// Online users of a public room, stored members of a private one.
    pub members_per_room: usize,
    /// Newest messages each room keeps in memory for re-joins.
    pub catch_up_window: usize,
    /// Largest `room.history` page.
    pub history_page_max: u32,
    /// Wait for a missing seq before reading it from the store, in ms.
    pub gap_wait_ms: u64,
    /// Stop a room actor unused on this node for this long, in seconds.
    pub room_idle_secs: u64,
    /// Push presence only in rooms with at most this many users online on the node.
    pub presence_max_online: usize,
    /// How often, in ms, a room in cluster mode checks the store for messages its broker
    /// subscription may have missed (0: never).
    pub resync_ms: u64,
    /// Most messages committed in one transaction.
    pub batch_max: usize,
    /// How long a batch waits for more messages once the first arrived, in ms.
    pub batch_linger_ms: u64,
    /// Messages waiting for the batcher before senders wait.
    pub batch_queue: usize,
}

impl ChatSettings {
    /// The rooms' behaviour.
    pub fn rooms(&self) -> corral_actors::ChatConfig {
        corral_actors::ChatConfig {
            max_text_chars: self.max_text_chars,
            rooms_per_connection: self.rooms_per_connection,
            members_per_room: self.members_per_room,
            catch_up_window: self.catch_up_window,
            history_page_max: self.history_page_max,
            gap_wait: Duration::from_millis(self.gap_wait_ms),
            idle_after: Duration::from_secs(self.room_idle_secs.max(1)),
            presence_max_online: self.presence_max_online,
            resync_every: Duration::from_millis(self.resync_ms),
        }
    }

    /// The group-commit batcher's behaviour.
    pub fn batch(&self) -> BatchConfig {
        BatchConfig {
            max: self.batch_max.max(1),
            linger: Duration::from_millis(self.batch_linger_ms),
            queue: self.batch_queue.max(1),
        }
    }
}

/// How the chat store's group-commit batcher groups appends (from `[chat]`; it lives here so
/// that configuration depends on nothing in the server).
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Most messages per transaction.
    pub max: usize,
    /// How long a batch waits for more after its first message.
    pub linger: Duration,
    /// Queued appends before senders wait.
    pub queue: usize,
}

/// `[payments]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentSettings {
    /// HMAC-SHA256 key shared with the payment provider; empty disables the webhook.
    pub webhook_secret: Secret,
    /// Largest accepted distance between a call's timestamp and the server clock, in seconds.
    pub stale_window_secs: u64,
}

impl PaymentSettings {
    /// The freshness window in ms.
    pub fn stale_window_ms(&self) -> i64 {
        i64::try_from(self.stale_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

/// `[merchants]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantSettings {
    /// Approve applications at once (otherwise an admin approves them).
    pub auto_approve: bool,
}

/// `[promotions]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionSettings {
    /// `activity.stock` frames one activity may queue per second on a node.
    pub stock_frames_per_sec: usize,
    /// Deadline, in ms, of a claim or a cancel: past it the request answers `unavailable`.
    pub claim_timeout_ms: u64,
}

impl PromotionSettings {
    /// The claim desk's deadline per request.
    pub fn claim_timeout(&self) -> Duration {
        Duration::from_millis(self.claim_timeout_ms.max(1))
    }
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// env-filter directives.
    pub filter: String,
    /// `text` or `json`.
    pub format: String,
}

/// A configured secret (a signing key, a URL that may carry a password): `secrecy`'s string,
/// redacted in `Debug` and zeroed when dropped. Read it with
/// [`ExposeSecret::expose_secret`](secrecy::ExposeSecret) only where it is used.
pub type Secret = secrecy::SecretString;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] config::ConfigError);

impl Settings {
    /// Loads the layers: defaults, the profile `CORRAL_PROFILE` names (if set: the built-in one,
    /// then `config/<profile>.toml` in the working directory if that exists), `file` (if
    /// given), then `CORRAL_...` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Ok(profile) = std::env::var("CORRAL_PROFILE") {
            let shipped = PROFILES.iter().find(|(name, _)| *name == profile);
            if let Some((_, text)) = shipped {
                builder = builder.add_source(File::from_str(text, FileFormat::Toml));
            }
            // A file of the same name in the working directory is layered over it.
            let file = Path::new("config").join(format!("{profile}.toml"));
            if file.exists() {
                builder = builder.add_source(File::from(file).required(true));
            } else if shipped.is_none() {
                return Err(unknown_profile(&profile, &file));
            }
        }
        if let Some(file) = file {
            builder = builder.add_source(File::from(file).required(true));
        }
        // Only `CORRAL_<SECTION>__<KEY>` variables are settings; others sharing the prefix
        // (CORRAL_PROFILE, CORRAL_CONFIG, the test suite's CORRAL_TEST_*) are not.
        let settings_vars = std::env::vars()
            .filter(|(k, _)| k.starts_with("CORRAL_") && k.contains("__"))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix("CORRAL")
                .prefix_separator("_")
                .separator("__")
                .ignore_empty(false)
                .source(Some(settings_vars)),
        );
        Ok(builder.build()?.try_deserialize()?)
    }

    /// The built-in defaults alone (tests start from these).
    pub fn defaults() -> Result<Settings, ConfigError> {
        Ok(Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()?
            .try_deserialize()?)
    }
}

/// Says what `CORRAL_PROFILE` could have named: a built-in profile, or a file (the full path
/// that was tried, since it depends on the working directory).
fn unknown_profile(profile: &str, file: &Path) -> ConfigError {
    let tried = std::env::current_dir().map_or_else(|_| file.to_path_buf(), |cwd| cwd.join(file));
    let shipped: Vec<&str> = PROFILES.iter().map(|(name, _)| *name).collect();
    ConfigError(config::ConfigError::Message(format!(
        "CORRAL_PROFILE={profile}: no such built-in profile (built in: {}) and no file {}; \
         unset CORRAL_PROFILE, name a built-in profile, or pass a file with --config",
        shipped.join(", "),
        tried.display()
    )))
}

impl WsSettings {
    /// Authentication deadline.
    pub fn auth_timeout(&self) -> Duration {
        Duration::from_millis(self.auth_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_example_parses_and_needs_approval() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cluster.example.toml");
        let settings = Settings::load(Some(&example));
        assert!(settings.is_ok(), "{settings:?}");
        assert!(settings.is_ok_and(|s| !s.merchants.auto_approve));
    }

    #[test]
    fn defaults_parse_and_hide_secrets() {
        let settings = Settings::defaults();
        assert!(settings.is_ok(), "{settings:?}");
        let secret = Secret::from("hunter2");
        assert!(settings.is_ok_and(|s| s.merchants.auto_approve));
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}

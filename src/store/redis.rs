//! Everything that speaks Redis (cluster mode). This file: the connection, a multiplexed,
//! auto-reconnecting connection manager with the node's deadlines, and the key prefix. Under
//! it: the rooms' broker and the cluster bus on pub/sub (`broker`), cluster presence
//! (`presence`), the claim arbiter and its Lua script (`ledger`), per-user request budgets
//! (`user_rates`).

pub mod broker;
pub mod ledger;
mod presence;
pub mod user_rates;

pub use broker::RedisBroker;
pub use presence::RedisPresence;

use std::time::Duration;

use corral_actors::metric_catalogue as metric;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::RedisSettings;
use secrecy::ExposeSecret;

/// The longest pause between two attempts to reconnect: a Redis that is back is in use again
/// within about this long.
pub const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(250);

/// How every Redis connection of the node behaves: each command and each connection attempt
/// fails after `redis.timeout_ms` (what depends on Redis then answers `unavailable` instead of
/// waiting), and reconnection retries quickly. A flash crowd's claims share one script call
/// per batch, so the deadline is not spent queueing on the multiplexed connection.
pub fn connection_config(settings: &RedisSettings) -> ConnectionManagerConfig {
    let timeout = Duration::from_millis(settings.timeout_ms.max(1));
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(timeout))
        .set_min_delay(Duration::from_millis(25))
        .set_max_delay(RECONNECT_MAX_DELAY)
}

/// A Redis failure.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct RedisError(#[from] redis::RedisError);

/// Redis, shared by the node's adapters.
#[derive(Clone)]
pub struct RedisStore {
    /// The shared connection.
    pub conn: ConnectionManager,
    /// Prefix of every key.
    pub prefix: String,
}

impl RedisStore {
    /// Connects to `settings.url`.
    pub async fn connect(settings: &RedisSettings) -> Result<RedisStore, RedisError> {
        let client = redis::Client::open(settings.url.expose_secret())?;
        let conn = client
            .get_connection_manager_with_config(connection_config(settings))
            .await?;
        // Each area's error series starts at zero: an alert's increase() then sees the first.
        for area in ["broker", "claims", "presence", "user_rates"] {
            metrics::counter!(metric::REDIS_ERRORS, "area" => area).increment(0);
        }
        Ok(RedisStore {
            conn,
            prefix: settings.key_prefix.clone(),
        })
    }

    /// Publishes `payload` on `channel` once, outside any broker (`corral admin` telling the
    /// nodes of a change); returns how many subscribers heard it.
    pub async fn publish(&self, channel: String, payload: String) -> Result<usize, RedisError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut conn)
            .await?)
    }

    /// A round trip (readiness).
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

//! The Redis connection (cluster mode): a multiplexed, auto-reconnecting connection manager
//! and the node's key prefix.

use redis::aio::ConnectionManager;

use crate::config::RedisSettings;

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
        let client = redis::Client::open(settings.url.expose())?;
        // A flash crowd queues thousands of calls on the multiplexed connection at once;
        // the client's default 500 ms response timeout would turn queueing into errors.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(std::time::Duration::from_secs(10)));
        let conn = client.get_connection_manager_with_config(config).await?;
        Ok(RedisStore {
            conn,
            prefix: settings.key_prefix.clone(),
        })
    }

    /// A round trip (readiness).
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

//! Per-user request budgets for the whole cluster in Redis (the `SharedRates` port): one
//! token bucket per user at `<prefix>rate:user:<id>`, debited by each node's settlement in one
//! pipeline of script calls (one key each, so any user's bucket may live on any shard).

use async_trait::async_trait;
use corral_actors::metric_catalogue as metric;
use corral_actors::ports::rates::{SharedRates, SharedRatesError};
use corral_protocol::UserId;
use redis::Script;

use crate::store::redis::RedisStore;

const USER_RATE_LUA: &str = include_str!("lua/user_rate.lua");

/// The cluster's request budgets in Redis.
pub struct RedisUserRates {
    redis: RedisStore,
    script: Script,
    per_sec: f64,
    burst: f64,
}

impl RedisUserRates {
    /// Budgets of `per_sec` sustained and `burst` at once per user, under the store's prefix.
    pub fn new(redis: RedisStore, per_sec: f64, burst: f64) -> RedisUserRates {
        RedisUserRates {
            redis,
            script: Script::new(USER_RATE_LUA),
            per_sec,
            burst,
        }
    }
}

#[async_trait]
impl SharedRates for RedisUserRates {
    async fn settle(&self, spent: &[(UserId, u32)]) -> Result<Vec<f64>, SharedRatesError> {
        let mut pipe = redis::pipe();
        // Loading is idempotent and keeps the calls working after Redis restarts empty.
        pipe.load_script(&self.script).ignore();
        let mut invocations = Vec::with_capacity(spent.len());
        for &(user, n) in spent {
            let mut invocation = self
                .script
                .key(format!("{}rate:user:{user}", self.redis.prefix));
            invocation.arg(self.per_sec).arg(self.burst).arg(n);
            invocations.push(invocation);
        }
        for invocation in &invocations {
            pipe.invoke_script(invocation);
        }
        let mut conn = self.redis.conn.clone();
        let left: Vec<i64> = pipe.query_async(&mut conn).await.map_err(|err| {
            metrics::counter!(metric::REDIS_ERRORS, "area" => "user_rates").increment(1);
            SharedRatesError(Box::new(err))
        })?;
        Ok(left
            .into_iter()
            .map(|milli| milli as f64 / 1000.0)
            .collect())
    }
}

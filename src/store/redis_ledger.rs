//! The cluster [`SlotArbiter`]: one Lua script (`lua/claim.lua`), loaded once per
//! connection and called by EVALSHA (reloaded if Redis answers NOSCRIPT), decides every claim
//! of an activity atomically across nodes. Keys live under `<prefix>claims:{<activity>}:` and
//! expire one day after the activity settles.

use async_trait::async_trait;
use corral_actors::claims::{
    ActivitySpec, Decision, ItemId, LedgerError, Refusal, RestoredClaim, StockView,
};
use corral_protocol::UserId;
use redis::Script;

use super::ledger::SlotArbiter;
use super::redis::{RedisError, RedisStore};

/// The script's source (also what `redis-benchmark` runs in BENCHMARKS.md).
pub const CLAIM_LUA: &str = include_str!("lua/claim.lua");

/// Redis keeps an activity's keys this long after it settles (for late retries and audits).
const KEEP_MS: i64 = 24 * 3600 * 1000;

/// Claims decided by Redis.
pub struct RedisArbiter {
    redis: RedisStore,
    script: Script,
}

fn unavailable(err: redis::RedisError) -> LedgerError {
    metrics::counter!("corral_redis_errors_total", "area" => "claims").increment(1);
    LedgerError::Unavailable(format!("redis: {err}"))
}

impl RedisArbiter {
    /// Loads the script (SCRIPT LOAD) and returns the arbiter.
    pub async fn new(redis: RedisStore) -> Result<RedisArbiter, RedisError> {
        let script = Script::new(CLAIM_LUA);
        let mut conn = redis.conn.clone();
        script.load_async(&mut conn).await?;
        Ok(RedisArbiter { redis, script })
    }

    /// The script's five keys for `activity` under `prefix`.
    pub fn keys(prefix: &str, activity: i64) -> [String; 5] {
        ["free", "avail", "users", "keys", "meta"]
            .map(|k| format!("{prefix}claims:{{{activity}}}:{k}"))
    }

    async fn call(
        &self,
        spec: &ActivitySpec,
        op: &str,
        args: &[String],
    ) -> Result<Vec<String>, LedgerError> {
        let mut invocation = self.script.prepare_invoke();
        for key in Self::keys(&self.redis.prefix, spec.id) {
            invocation.key(key);
        }
        invocation
            .arg(op)
            .arg(spec.settled_at().saturating_add(KEEP_MS));
        for arg in args {
            invocation.arg(arg);
        }
        let mut conn = self.redis.conn.clone();
        invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn flag(
        &self,
        spec: &ActivitySpec,
        op: &str,
        args: &[String],
    ) -> Result<bool, LedgerError> {
        Ok(self.call(spec, op, args).await?.first().map(String::as_str) == Some("1"))
    }
}

fn parse_item(s: Option<&String>) -> Result<ItemId, LedgerError> {
    s.and_then(|s| s.parse().ok())
        .ok_or_else(|| LedgerError::Unavailable("claim script returned no item".into()))
}

#[async_trait]
impl SlotArbiter for RedisArbiter {
    async fn decide(
        &self,
        spec: &ActivitySpec,
        user: UserId,
        key: &str,
        item: Option<ItemId>,
    ) -> Result<Option<Decision>, LedgerError> {
        let args = [
            user.to_string(),
            key.to_string(),
            item.map(|i| i.to_string()).unwrap_or_default(),
            spec.per_user_limit.to_string(),
        ];
        let reply = self.call(spec, "claim", &args).await?;
        Ok(Some(match reply.first().map(String::as_str) {
            Some("uninit") => return Ok(None),
            Some("take") => Decision::Take(parse_item(reply.get(1))?),
            Some("seen") => Decision::Seen(parse_item(reply.get(1))?),
            Some("refused") => Decision::Refused(
                reply
                    .get(1)
                    .and_then(|r| Refusal::parse(r))
                    .unwrap_or(Refusal::SoldOut),
            ),
            other => {
                return Err(LedgerError::Unavailable(format!(
                    "claim script answered {other:?}"
                )));
            }
        }))
    }

    async fn undo(&self, spec: &ActivitySpec, user: UserId, key: &str) -> Result<(), LedgerError> {
        self.flag(spec, "undo", &[user.to_string(), key.to_string()])
            .await?;
        Ok(())
    }

    async fn release(
        &self,
        spec: &ActivitySpec,
        user: UserId,
        key: &str,
    ) -> Result<(), LedgerError> {
        self.flag(spec, "release", &[user.to_string(), key.to_string()])
            .await?;
        Ok(())
    }

    async fn confirm(
        &self,
        spec: &ActivitySpec,
        user: UserId,
        key: &str,
    ) -> Result<(), LedgerError> {
        self.flag(spec, "confirm", &[user.to_string(), key.to_string()])
            .await?;
        Ok(())
    }

    async fn retake(
        &self,
        spec: &ActivitySpec,
        user: UserId,
        key: &str,
        item: ItemId,
    ) -> Result<bool, LedgerError> {
        self.flag(
            spec,
            "retake",
            &[user.to_string(), key.to_string(), item.to_string()],
        )
        .await
    }

    async fn restore(
        &self,
        spec: &ActivitySpec,
        rows: &[RestoredClaim],
    ) -> Result<(), LedgerError> {
        let mut args = vec![spec.items.len().to_string()];
        for item in &spec.items {
            args.push(item.item_id.to_string());
            args.push(item.slots.to_string());
        }
        for row in rows {
            let state = match (row.active, row.confirmed) {
                (true, false) => "h",
                (true, true) => "c",
                (false, _) => "r",
            };
            args.extend([
                row.user.to_string(),
                row.key.clone(),
                row.item.to_string(),
                state.to_string(),
            ]);
        }
        if self.flag(spec, "init", &args).await? {
            tracing::info!(
                activity = spec.id,
                claims = rows.len(),
                "rebuilt the claim counters in Redis from SQL"
            );
        }
        Ok(())
    }

    async fn stock(&self, spec: &ActivitySpec) -> Result<StockView, LedgerError> {
        let reply = self.call(spec, "stock", &[]).await?;
        let num = |i: usize| reply.get(i).and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok(StockView {
            left: num(0),
            held: num(1),
        })
    }
}

//! The cluster [`SlotArbiter`]: one Lua script (`lua/claim.lua`), loaded once per
//! connection and called by EVALSHA (reloaded if Redis answers NOSCRIPT), decides every claim
//! of an activity atomically across nodes. Keys live under `<prefix>claims:{<activity>}:` and
//! expire one day after the activity settles.
//!
//! Claims are decided in batches: the claims that queue up while one script call runs go
//! together in the next (`claims` op), so a crowd costs one script call (one round trip, one
//! key-expiry refresh) per batch rather than per claim.

use std::collections::HashMap;

use async_trait::async_trait;
use corral_actors::claims::{Decision, RestoredClaim};
use corral_actors::metric_catalogue as metric;
use corral_actors::ports::activities::{ActivityRecord, ItemId};
use corral_actors::ports::claims::{ClaimRefusal, LedgerError, StockLevel};
use corral_protocol::ops::ActivityId;
use corral_protocol::{EpochMs, UserId};
use redis::{AsyncCommands, Script};
use tokio::sync::{mpsc, oneshot};

use super::{RedisError, RedisStore};
use crate::store::ledger::{Ruled, SlotArbiter};

/// The script's source (also what `redis-benchmark` runs in BENCHMARKS.md).
pub const CLAIM_LUA: &str = include_str!("lua/claim.lua");

/// Redis keeps an activity's keys this long after it settles (for late retries and audits).
const KEEP_MS: i64 = 24 * 3600 * 1000;

/// Most claims decided by one script call.
const MAX_DECISIONS: usize = 256;

/// A claim waiting for the next batched script call.
struct Ask {
    /// The activity, the expiry of its keys and its per-user limit: claims agreeing on all
    /// three share a call.
    group: (ActivityId, EpochMs, i64),
    user: UserId,
    key: String,
    item: Option<ItemId>,
    reply: oneshot::Sender<Result<Option<Ruled>, LedgerError>>,
}

/// A slot the script records as held (`h`), as [`RedisArbiter::held`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisHold {
    /// The claimant.
    pub user: UserId,
    /// Their idempotency key.
    pub key: String,
    /// The item held.
    pub item: ItemId,
}

/// Claims decided by Redis.
#[derive(Clone)]
pub struct RedisArbiter {
    redis: RedisStore,
    script: Script,
    asks: mpsc::Sender<Ask>,
}

fn unavailable(err: redis::RedisError) -> LedgerError {
    metrics::counter!(metric::REDIS_ERRORS, "area" => "claims").increment(1);
    LedgerError::Unavailable(Box::new(err))
}

impl RedisArbiter {
    /// Loads the script (SCRIPT LOAD) and starts the claim batcher (on the current runtime).
    pub async fn new(redis: RedisStore) -> Result<RedisArbiter, RedisError> {
        let script = Script::new(CLAIM_LUA);
        let mut conn = redis.conn.clone();
        script.load_async(&mut conn).await?;
        let (asks, rx) = mpsc::channel(MAX_DECISIONS * 16);
        tokio::spawn(decide_loop(redis.clone(), script.clone(), rx));
        Ok(RedisArbiter {
            redis,
            script,
            asks,
        })
    }

    /// The script's five keys for `activity` under `prefix`.
    pub fn keys(prefix: &str, activity: i64) -> [String; 5] {
        ["free", "avail", "users", "keys", "meta"]
            .map(|k| format!("{prefix}claims:{{{activity}}}:{k}"))
    }

    async fn call(
        &self,
        spec: &ActivityRecord,
        op: &str,
        args: &[String],
    ) -> Result<Vec<String>, LedgerError> {
        let mut invocation = self.script.prepare_invoke();
        for key in Self::keys(&self.redis.prefix, spec.id) {
            invocation.key(key);
        }
        invocation.arg(op).arg(expiry(spec));
        for arg in args {
            invocation.arg(arg);
        }
        let mut conn = self.redis.conn.clone();
        invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    /// Activities with claim counters in Redis (SCAN, so Redis is never blocked).
    pub async fn activities(&self) -> Result<Vec<ActivityId>, LedgerError> {
        let head = format!("{}claims:{{", self.redis.prefix);
        let mut conn = self.redis.conn.clone();
        let mut iter = conn
            .scan_match::<_, String>(format!("{head}*}}:meta"))
            .await
            .map_err(unavailable)?;
        let mut ids = Vec::new();
        while let Some(key) = iter.next_item().await {
            let key = key.map_err(unavailable)?;
            if let Some(id) = key
                .strip_prefix(&head)
                .and_then(|rest| rest.strip_suffix("}:meta"))
                .and_then(|id| id.parse().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Every slot of the activity the script records as held (HSCAN of its keys hash).
    pub async fn held(&self, spec: &ActivityRecord) -> Result<Vec<RedisHold>, LedgerError> {
        let [_, _, _, keys, _] = Self::keys(&self.redis.prefix, spec.id);
        let mut conn = self.redis.conn.clone();
        let mut iter = conn
            .hscan::<_, (String, String)>(keys)
            .await
            .map_err(unavailable)?;
        let mut held = Vec::new();
        while let Some(entry) = iter.next_item().await {
            let (field, state) = entry.map_err(unavailable)?;
            // Fields are "user|key" (the key may itself hold '|'); held states "h|item".
            let parsed = state.strip_prefix("h|").and_then(|item| {
                let (user, key) = field.split_once('|')?;
                Some(RedisHold {
                    user: user.parse().ok()?,
                    key: key.to_string(),
                    item: item.parse().ok()?,
                })
            });
            held.extend(parsed);
        }
        Ok(held)
    }

    async fn flag(
        &self,
        spec: &ActivityRecord,
        op: &str,
        args: &[String],
    ) -> Result<bool, LedgerError> {
        Ok(self.call(spec, op, args).await?.first().map(String::as_str) == Some("1"))
    }
}

/// The stock rules the counters are built for (items and their slots, in item order): an
/// edit before the start changes them, and the script rebuilds counters kept under others.
fn rules(spec: &ActivityRecord) -> String {
    let mut items: Vec<_> = spec.items.iter().map(|i| (i.item_id, i.slots)).collect();
    items.sort_unstable();
    items
        .iter()
        .map(|(item, slots)| format!("{item}:{slots}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// When an activity's keys may go.
fn expiry(spec: &ActivityRecord) -> EpochMs {
    spec.settled_at().saturating_add(KEEP_MS)
}

/// Decides the claims queued while the previous call ran, one script call per group.
async fn decide_loop(redis: RedisStore, script: Script, mut rx: mpsc::Receiver<Ask>) {
    let mut batch = Vec::with_capacity(MAX_DECISIONS);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_DECISIONS {
            match rx.try_recv() {
                Ok(ask) => batch.push(ask),
                Err(_) => break,
            }
        }
        metrics::histogram!(metric::REDIS_CLAIM_BATCH_SIZE).record(batch.len() as f64);
        let mut groups: HashMap<(ActivityId, EpochMs, i64), Vec<Ask>> = HashMap::new();
        for ask in batch.drain(..) {
            groups.entry(ask.group).or_default().push(ask);
        }
        let calls = groups
            .into_values()
            .map(|asks| decide_group(&redis, &script, asks));
        futures_util::future::join_all(calls).await;
    }
}

/// One `claims` call for claims of one group; answers each.
async fn decide_group(redis: &RedisStore, script: &Script, asks: Vec<Ask>) {
    let (activity, expire_at, limit) = asks[0].group;
    let mut invocation = script.prepare_invoke();
    for key in RedisArbiter::keys(&redis.prefix, activity) {
        invocation.key(key);
    }
    invocation.arg("claims").arg(expire_at).arg(limit);
    for ask in &asks {
        invocation
            .arg(ask.user)
            .arg(&ask.key)
            .arg(ask.item.map(|i| i.to_string()).unwrap_or_default());
    }
    let mut conn = redis.conn.clone();
    let reply: Result<Vec<String>, _> = invocation.invoke_async(&mut conn).await;
    match reply {
        Ok(reply) => {
            // The counters' epoch first ("" when there are none), then two entries a claim.
            let epoch = match reply.first().map(String::as_str) {
                None | Some("") => None,
                Some(epoch) => Some(epoch.parse::<i64>().ok()),
            };
            let mut answers = reply.get(1..).unwrap_or_default().chunks(2);
            for ask in asks {
                let answer = match (epoch, answers.next()) {
                    (None, _) => Ok(None),
                    (Some(Some(epoch)), Some([kind, value])) => decision(kind, value).map(|d| {
                        Some(Ruled {
                            decision: d,
                            epoch: Some(epoch),
                        })
                    }),
                    _ => Err(LedgerError::Unavailable(
                        "claim script answered too few claims".into(),
                    )),
                };
                let _ = ask.reply.send(answer);
            }
        }
        Err(err) => {
            // One failure answers every ask of the batch, each keeping the same cause.
            metrics::counter!(metric::REDIS_ERRORS, "area" => "claims").increment(1);
            let err = std::sync::Arc::new(err);
            for ask in asks {
                let _ = ask
                    .reply
                    .send(Err(LedgerError::Unavailable(Box::new(err.clone()))));
            }
        }
    }
}

/// One claim's answer from the script.
fn decision(kind: &str, value: &str) -> Result<Decision, LedgerError> {
    Ok(match kind {
        "take" => Decision::Take(parse_item(value)?),
        "seen" => Decision::Seen(parse_item(value)?),
        "refused" => Decision::Refused(ClaimRefusal::parse(value).unwrap_or(ClaimRefusal::SoldOut)),
        other => {
            return Err(LedgerError::Unavailable(
                format!("claim script answered {other:?}").into(),
            ));
        }
    })
}

fn parse_item(s: &str) -> Result<ItemId, LedgerError> {
    s.parse()
        .map_err(|_| LedgerError::Unavailable("claim script returned no item".into()))
}

#[async_trait]
impl SlotArbiter for RedisArbiter {
    fn fenced(&self) -> bool {
        // Redis may restart empty (or fail over to a replica that missed writes).
        true
    }

    async fn decide(
        &self,
        spec: &ActivityRecord,
        user: UserId,
        key: &str,
        item: Option<ItemId>,
    ) -> Result<Option<Ruled>, LedgerError> {
        let (reply, decided) = oneshot::channel();
        let ask = Ask {
            group: (spec.id, expiry(spec), spec.per_user_limit),
            user,
            key: key.to_string(),
            item,
            reply,
        };
        let stopped = || LedgerError::Unavailable("the claim batcher stopped".into());
        self.asks.send(ask).await.map_err(|_| stopped())?;
        decided.await.map_err(|_| stopped())?
    }

    async fn release(
        &self,
        spec: &ActivityRecord,
        user: UserId,
        key: &str,
    ) -> Result<(), LedgerError> {
        self.flag(spec, "release", &[user.to_string(), key.to_string()])
            .await?;
        Ok(())
    }

    async fn confirm(
        &self,
        spec: &ActivityRecord,
        user: UserId,
        key: &str,
    ) -> Result<(), LedgerError> {
        self.flag(spec, "confirm", &[user.to_string(), key.to_string()])
            .await?;
        Ok(())
    }

    async fn retake(
        &self,
        spec: &ActivityRecord,
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

    async fn ready(&self, spec: &ActivityRecord) -> Result<bool, LedgerError> {
        let reply = self.call(spec, "ready", &[rules(spec)]).await?;
        Ok(reply.first().is_some_and(|epoch| !epoch.is_empty()))
    }

    async fn restore(
        &self,
        spec: &ActivityRecord,
        rows: &[RestoredClaim],
        epoch: Option<i64>,
    ) -> Result<(), LedgerError> {
        let epoch = epoch
            .ok_or_else(|| LedgerError::Unavailable("Redis claim counters need an epoch".into()))?;
        let mut args = vec![rules(spec), epoch.to_string(), spec.items.len().to_string()];
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
                epoch,
                "rebuilt the claim counters in Redis from SQL"
            );
        }
        Ok(())
    }

    async fn stock(&self, spec: &ActivityRecord) -> Result<Option<StockLevel>, LedgerError> {
        let reply = self.call(spec, "stock", &[]).await?;
        if reply.first().map(String::as_str) == Some("uninit") {
            return Ok(None);
        }
        let num = |i: usize| reply.get(i).and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok(Some(StockLevel {
            left: num(0),
            held: num(1),
        }))
    }
}

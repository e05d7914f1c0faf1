//! Storage, laid out by mode: each way of storing is one place, and this page builds the
//! adapters the configured mode asks for (embedded: SQLite and in-process adapters; cluster:
//! PostgreSQL and Redis): [`broker_and_bus`], [`claim_ledger`], [`presence`], [`shared_rates`].
//!
//! ```text
//! store.rs                this page: the layout, and the adapters each mode gets
//! store/attempt.rs        the arbiter's name for each decision of a claim key
//! store/ledger.rs         the ClaimLedger: a SlotArbiter (in-process book or Redis) paired with
//!                         the durable claim rows in SQL
//! store/reconcile.rs      repairs Redis claim counters from the SQL claim rows
//! store/sql.rs            Db (the pool over SQLite or PostgreSQL), StoreError, migrations, Repos
//! store/sql/users.rs      AccountRepo: accounts, roles, standings
//! store/sql/social.rs     SocialRepo: the SocialStore port (follows, posts, likes, comments)
//! store/sql/claims.rs     ClaimRows (the ledger's durable rows), ClaimRepo (API reads), SqlCatalog
//! store/sql/listings.rs   ListingRepo: the API's paged lists
//! store/sql/payments.rs   PaymentRepo: payment webhooks
//! store/sql/rules.rs      RulesRepo (facts, audiences, funnels), SqlRules: the RulesStore port
//! store/sql/backup.rs     SQLite online backup and migration-level inspection
//! store/sql/chat.rs       chat: SqlMessageStore (the MessageStore port), RoomRepo
//! store/sql/chat/         batcher.rs (group commit), messages.rs, rooms.rs, row.rs
//! store/sql/promotions.rs promotions: ActivityRepo (read by SqlCatalog), AnimalRepo,
//!                         MerchantRepo, AuditRepo; promotions/ holds one file each
//! store/redis.rs          RedisStore: the connection, its deadlines and key prefix
//! store/redis/broker.rs   RedisBroker: rooms' Broker and the node-wide ClusterBus on pub/sub
//! store/redis/presence.rs RedisPresence: cluster presence
//! store/redis/ledger.rs   RedisArbiter: the claim Lua script (lua/claim.lua)
//! store/redis/user_rates.rs RedisUserRates: per-user request budgets (lua/user_rate.lua)
//! store/memory.rs         the in-memory adapters of the embedded path
//! store/memory/broker.rs  LocalBroker: rooms' Broker within one process
//! ```
//!
//! HTTP handlers and admin commands reach SQL only through the repositories in [`Repos`]
//! (`state.repos.listings.list_activities(..)`), never by querying [`Db`] themselves. A new
//! repository is a struct holding the pool in its area's file under `store/sql/`, built by
//! `new(&Db)`, listed in [`Repos`] (when handlers need it), implementing the actors' port
//! when the core needs it.

pub mod attempt;
pub mod ledger;
pub mod memory;
pub mod reconcile;
pub mod redis;
pub mod sql;

pub use sql::{Backend, Db, Repos, StoreError};

use std::sync::Arc;

use corral_actors::ports::chat::{Broker, PresenceStore};
use corral_actors::ports::claims::ClaimLedger;
use corral_actors::ports::cluster::{ClusterBus, ClusterEvent, SoloBus};
use corral_actors::ports::rates::SharedRates;
use tokio::sync::mpsc;

use crate::config::{RedisSettings, WsSettings};
use ledger::DurableLedger;
use memory::BookArbiter;
use memory::LocalBroker;
use reconcile::Reconciler;
use redis::ledger::RedisArbiter;
use redis::user_rates::RedisUserRates;
use redis::{RedisBroker, RedisError, RedisPresence, RedisStore};
use sql::ActivityRepo;
use sql::claims::{ClaimRows, SqlCatalog};

/// The rooms' broker and the cluster bus. Rooms and the cluster bus share Redis pub/sub in
/// cluster mode (events from other nodes arrive on `cluster`); alone, a node keeps its room
/// frames in process and has nobody to tell about the rest.
pub async fn broker_and_bus(
    settings: &RedisSettings,
    redis: Option<&RedisStore>,
    cluster: mpsc::Sender<ClusterEvent>,
) -> Result<(Arc<dyn Broker>, Arc<dyn ClusterBus>), RedisError> {
    Ok(match redis {
        Some(redis) => {
            let broker = Arc::new(RedisBroker::start(settings, redis.conn.clone(), cluster).await?);
            (broker.clone(), broker)
        }
        None => (Arc::new(LocalBroker::default()), Arc::new(SoloBus)),
    })
}

/// The claim ledger the configuration asks for: Redis arbitration with durable rows in SQL
/// when `redis.url` is set (with the reconciler of its counters), the in-process book with
/// durable rows otherwise.
pub async fn claim_ledger(
    db: &Db,
    redis: Option<&RedisStore>,
) -> Result<(Arc<dyn ClaimLedger>, Option<Reconciler>), RedisError> {
    // Hold batches commit in parallel on PostgreSQL (each waits out its WAL flush).
    let rows = ClaimRows::start(db.clone(), db.writers(2, 8));
    Ok(match redis {
        Some(redis) => {
            let arbiter = RedisArbiter::new(redis.clone()).await?;
            let catalog = Arc::new(SqlCatalog::new(Arc::new(ActivityRepo::new(db))));
            let reconciler = Reconciler::new(arbiter.clone(), rows.clone(), catalog);
            (
                Arc::new(DurableLedger::new(arbiter, rows)),
                Some(reconciler),
            )
        }
        None => (
            Arc::new(DurableLedger::new(BookArbiter::default(), rows)),
            None,
        ),
    })
}

/// Who is online on the other nodes: in Redis in cluster mode; alone, a node's rooms know
/// everyone online and need no store.
pub fn presence(redis: Option<&RedisStore>) -> Option<Arc<dyn PresenceStore>> {
    redis.map(|redis| {
        Arc::new(RedisPresence::start(redis.conn.clone(), &redis.prefix)) as Arc<dyn PresenceStore>
    })
}

/// The cluster's per-user request budgets: in Redis when the node has it and settles them
/// (`ws.user_rate_settle_ms` > 0); otherwise none, and each node budgets its users alone.
pub fn shared_rates(redis: Option<&RedisStore>, ws: &WsSettings) -> Option<Arc<dyn SharedRates>> {
    match redis {
        Some(redis) if ws.user_rate_settle_ms > 0 => Some(Arc::new(RedisUserRates::new(
            redis.clone(),
            ws.user_rate_per_sec,
            ws.user_rate_burst,
        ))),
        _ => None,
    }
}

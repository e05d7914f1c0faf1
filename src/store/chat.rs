//! Chat storage: the SQL `MessageStore` adapter (reads, DM rooms, and appends through the
//! group-commit batcher), room administration for the HTTP API, the `Broker` adapters and
//! cluster presence in Redis.

mod batcher;
pub mod broker;
mod messages;
mod presence;
mod rooms;

pub use batcher::BatchConfig;
pub use broker::{LocalBroker, RedisBroker};
pub use messages::SqlMessageStore;
pub use presence::RedisPresence;
pub use rooms::AddMemberError;

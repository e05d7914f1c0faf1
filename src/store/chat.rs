//! Chat storage: the SQL `MessageStore` adapter (reads, DM rooms, and appends through the
//! group-commit batcher), room administration for the HTTP API, and the `Broker` adapters.

mod batcher;
pub mod broker;
mod messages;
mod rooms;

pub use batcher::BatchConfig;
pub use broker::{LocalBroker, RedisBroker};
pub use messages::SqlMessageStore;
pub use rooms::AddMemberError;

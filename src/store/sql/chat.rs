//! Chat storage: the SQL `MessageStore` adapter (reads, DM rooms, and appends through the
//! group-commit batcher), room administration for the HTTP API, the `Broker` adapters and
//! cluster presence in Redis.

mod batcher;
mod messages;
mod rooms;
mod row;

pub use messages::SqlMessageStore;
pub use rooms::{AddMemberError, RoomRepo};

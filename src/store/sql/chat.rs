//! Chat storage in SQL: the `MessageStore` adapter (reads, DM rooms, and appends through the
//! group-commit batcher) and room administration for the HTTP API ([`RoomRepo`]). The rooms'
//! `Broker` adapters and cluster presence live in `store::memory` and `store::redis`.

mod batcher;
mod messages;
mod rooms;
mod row;

pub use messages::SqlMessageStore;
pub use rooms::{AddMemberError, RoomRepo};

//! The in-memory adapters of the embedded (single-node) path, beside their Redis versions in
//! `store::redis`: a node alone needs no one else to hear its room frames, and decides its
//! claims in its own memory.

pub mod arbiter;
pub mod broker;

pub use arbiter::BookArbiter;
pub use broker::LocalBroker;

//! The in-memory adapters of the embedded (single-node) path, beside their Redis versions in
//! `store::redis`: a node alone needs no one else to hear its room frames.
//!
//! (The in-process claim arbiter, `BookArbiter`, stays beside the durable ledger it feeds in
//! `store::ledger`.)

pub mod broker;

pub use broker::LocalBroker;

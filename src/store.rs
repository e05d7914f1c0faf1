//! Storage, laid out by mode.

pub mod ledger;
pub mod memory;
pub mod reconcile;
pub mod redis;
pub mod sql;

pub use sql::{Backend, Db, Repos, StoreError};

//! Animal claims: the pure decision ([`book`]) and the node's claim desk ([`Claims`]) that
//! sessions and the payment webhook go through. The ports they use (the claim ledger, the
//! activity catalogue) live in [`crate::ports`]; [`eligibility`] keeps each activity's
//! decisions under its rules, so a claim is judged from memory.
//!
//! A claim is decided atomically by the ledger (in-process book or Redis Lua script), made
//! durable (a row committed in SQL) and only then answered; every later change of a claim is a
//! conditional update of its row, so it happens once even when several nodes race.

pub mod book;
pub mod eligibility;
pub mod service;

pub use book::{Decision, RestoredClaim, StockBook};
pub use service::Claims;

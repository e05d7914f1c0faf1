//! Animal claims, end to end: flash crowds of real WebSocket clients (embedded and
//! Redis + PostgreSQL), the per-user limit, idempotent keys, expiry and cancel, the payment
//! webhook and the merchant view — each run checked against the durable rows by a history
//! checker. One file per topic:
//!
//! - [`fixtures`]: seeded promotions and users, Redis-mode settings (shared with other suites)
//! - [`history`]: the history checker against the durable rows
//! - [`holds`]: the per-user limit, idempotent keys, the sale window, expiry and cancel
//! - [`payments`]: the payment webhook (confirm exactly once, refusals)
//! - [`stock`]: `activity.stock` within the frame budget, across actor restarts
//! - [`crowd`]: flash crowds of real WebSocket clients
//! - [`restarts`]: SIGKILL mid-crowd and the ledger rebuilt at start-up (the real binary)
//! - [`cluster`]: Redis reconciliation of orphan slots, claims seen across two nodes
//! - [`winners`]: a `held` reply overtakes the pushes already queued for its socket

mod cluster;
mod crowd;
mod fixtures;
mod history;
mod holds;
mod payments;
mod restarts;
mod stock;
mod winners;

pub(crate) use crowd::{Counts, crowd_failover, spawn_crowd};
pub(crate) use fixtures::{Promo, bulk_users, bulk_users_in, now_ms, redis_mode, seed, seed_in};
pub(crate) use history::{
    Event, Outcome, check_history, check_rows, claim_once, claim_until_decided, outcome_of,
};
pub(crate) use payments::pay;

//! Corral's load generator: flash crowds, chat storms, feed bursts, connection capacity and
//! soak runs against a local Corral node, plus a `raw-broadcast` mode that drives any plain
//! WebSocket broadcast server the same way (for side-by-side peers).
//!
//! One command ([`coordinator::run`]) first creates what the scenario needs through the
//! public HTTP API ([`provision`]: rooms, animals, an activity), then spawns several worker
//! processes (this machine allows 20,000 open files per process), each driving its share of
//! the clients on a single-threaded tokio runtime (one core each) from several 127.0.0.x
//! source addresses; workers talk to the coordinator in JSON lines ([`pipe`]: [`pipe::Command`] in,
//! [`pipe::Event`] out), their measurements are merged, the invariants are checked, and the result lands in
//! `result.json` and a self-contained `report.html`.
//!
//! It speaks Corral through `corral-protocol` only; it never links the server.

pub mod api;
pub mod chart;
pub mod checks;
pub mod client;
pub mod coordinator;
pub mod outcome;
pub mod pipe;
pub mod proc_stat;
pub mod provision;
pub mod report;
pub mod run_result;
pub mod scenario;
pub mod server_watch;
pub mod stats;
pub mod timeline;
pub mod tokens;
pub mod worker;

/// Why a run could not be carried out (a failed invariant is not an error: it is a result).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The scenario file is unreadable or out of bounds.
    #[error("scenario: {0}")]
    Scenario(String),
    /// A tokens file has fewer accounts than the scenario needs.
    #[error(
        "{path} holds {have} accounts for {need} clients (one account per client: Corral limits \
         connections per user); make more with `{seed}` against the node's data directory or \
         database"
    )]
    TooFewTokens {
        /// The tokens file.
        path: String,
        /// Accounts in it.
        have: usize,
        /// Accounts the scenario needs.
        need: usize,
        /// The command that makes them.
        seed: String,
    },
    /// The target is not a loopback WebSocket URL.
    #[error("target: {0}")]
    Target(String),
    /// Reading tokens, writing results.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A worker misbehaved (died, sent garbage, missed its deadline).
    #[error("worker: {0}")]
    Worker(String),
    /// Talking to the server over HTTP (provisioning, the merchant view).
    #[error("http: {0}")]
    Http(String),
}

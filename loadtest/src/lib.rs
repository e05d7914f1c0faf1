//! Corral's load generator: flash crowds, chat storms, feed bursts, connection capacity and
//! soak runs against a local Corral node, plus a `raw-broadcast` mode that drives any plain
//! WebSocket broadcast server the same way (for side-by-side peers).
//!
//! One command ([`coordinator::run`]) first creates what the scenario needs through the
//! public HTTP API ([`provision`]: rooms, animals, an activity), then spawns several worker
//! processes (this machine allows 20,000 open files per process), each driving its share of
//! the clients on a single-threaded tokio runtime (one core each) from several 127.0.0.x
//! source addresses; workers talk to the coordinator in JSON lines ([`Command`] in, [`Event`]
//! out), their measurements are merged, the invariants are checked, and the result lands in
//! `result.json` and a self-contained `report.html`.
//!
//! It speaks Corral through `corral-protocol` only; it never links the server.

pub mod api;
pub mod chart;
pub mod checks;
pub mod client;
pub mod coordinator;
pub mod outcome;
pub mod proc_stat;
pub mod provision;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod timeline;
pub mod tokens;
pub mod worker;

use serde::{Deserialize, Serialize};

use crate::checks::{DeliveryLedger, HeldClaim};
use crate::scenario::Scenario;
use crate::stats::WireStats;

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

/// What a worker is told to do (the first line on its input).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerPlan {
    /// The scenario, bounds already checked.
    pub scenario: Scenario,
    /// This worker's index; it drives clients `n` with `n % of == index`.
    pub index: usize,
    /// Workers in the run.
    pub of: usize,
    /// The run's time origin (timelines count bins from it), us since the epoch.
    pub epoch_us: u64,
    /// The timelines' bin width, us ([`timeline::record_bin_us`]).
    pub bin_us: u64,
}

/// Coordinator -> worker, one JSON object per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// The plan (always first).
    Plan(Box<WorkerPlan>),
    /// Start the active phase at this instant (us since the epoch).
    Go {
        /// When.
        at_us: u64,
    },
    /// Close every client and report.
    Finish,
}

/// Worker -> coordinator, one JSON object per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    /// Once a second.
    Progress(Progress),
    /// Every client finished connecting and setting up (or failed to).
    Ready(Progress),
    /// The active phase is over for every client.
    ActiveDone,
    /// The final measurements.
    Result(Box<WorkerResult>),
}

/// Running totals for the progress line.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Clients connected (and set up) right now.
    pub connected: u64,
    /// Clients that failed to connect or set up.
    pub failed: u64,
    /// Messages or requests sent so far.
    pub sends: u64,
    /// Messages received so far.
    pub deliveries: u64,
    /// Replies received so far.
    pub replies: u64,
    /// Requests decided by the server's rules so far (claims held or refused as sold out).
    #[serde(default)]
    pub decisions: u64,
    /// Errors so far.
    pub errors: u64,
}

impl Progress {
    /// Sums two workers' totals.
    pub fn add(&mut self, other: &Progress) {
        self.connected += other.connected;
        self.failed += other.failed;
        self.sends += other.sends;
        self.deliveries += other.deliveries;
        self.replies += other.replies;
        self.decisions += other.decisions;
        self.errors += other.errors;
    }
}

/// One worker's measurements and invariant evidence.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerResult {
    /// Histograms, timelines, counters, errors.
    pub stats: WireStats,
    /// Delivery evidence (broadcast, chat, feed scenarios).
    pub delivery: DeliveryLedger,
    /// Holds acknowledged to this worker's clients (flash crowd).
    pub held: Vec<HeldClaim>,
    /// Clients that connected and finished setup.
    pub connected: u64,
}

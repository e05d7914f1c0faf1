//! What a run produced, as `result.json` holds it and the report reads it: the
//! [`RunResult`] with its rates ([`Throughput`]) and the server's memory ([`Capacity`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::ClaimsSummary;
use crate::checks::Check;
use crate::scenario::Scenario;
use crate::server_watch::ServerWatch;
use crate::stats::Summary;
use crate::timeline::Phase;

/// Server memory around the connect phase (connect-capacity).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Capacity {
    /// The measured process.
    pub server_pid: u32,
    /// RSS before any client connected.
    pub rss_before_bytes: u64,
    /// RSS with every client connected, after the settle time.
    pub rss_after_bytes: u64,
    /// Connections open at the second sample.
    pub connections: u64,
    /// (after - before) / connections.
    pub bytes_per_connection: f64,
    /// The server's open file descriptors at the second sample.
    pub server_fds: Option<u64>,
}

/// Rates over the active phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Throughput {
    /// Seconds from the active start to the scenario's last delivery (or decision), bounded
    /// by the end of the active phase.
    pub active_seconds: f64,
    /// Messages or requests sent per second.
    pub sends_per_sec: f64,
    /// Messages received per second, over all clients (scenarios with deliveries only).
    pub deliveries_per_sec: Option<f64>,
    /// The busiest second's deliveries.
    pub peak_deliveries_per_sec: Option<u64>,
    /// Claims decided per second, held or refused by the rules (flash crowd only).
    pub decisions_per_sec: Option<f64>,
    /// The busiest second's decisions.
    pub peak_decisions_per_sec: Option<u64>,
    /// The busiest second's connects.
    pub peak_connects_per_sec: u64,
}

/// Everything a run produced (`result.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// The scenario as run (target overridden).
    pub scenario: Scenario,
    /// Start time, ms since the epoch.
    pub started_at_ms: u64,
    /// Wall time of the whole run.
    pub duration_seconds: f64,
    /// Clients asked for.
    pub clients: u64,
    /// Clients that connected and finished setup.
    pub connected: u64,
    /// Latency summaries (ms) by histogram name.
    pub latency: BTreeMap<String, Summary>,
    /// Histogram contents, `[value_us, count]`, for the report's charts.
    pub histograms: BTreeMap<String, Vec<(u64, u64)>>,
    /// Timelines: counts per bin of `timeline_bin_ms` (bin 0 starts with the run).
    pub timelines: BTreeMap<String, Vec<u64>>,
    /// The timelines' bin width.
    pub timeline_bin_ms: f64,
    /// Where the phases began and ended, for the timelines.
    pub phases: Vec<Phase>,
    /// Totals.
    pub counters: BTreeMap<String, u64>,
    /// Expected answers by name (`claim.held`, `claim.sold_out`, ...): not errors.
    pub outcomes: BTreeMap<String, u64>,
    /// Errors by code.
    pub errors: BTreeMap<String, u64>,
    /// Rates.
    pub throughput: Throughput,
    /// Server memory (connect-capacity with a local server).
    pub capacity: Option<Capacity>,
    /// Soak with a local server: the node sampled once a second through the active phase.
    #[serde(default)]
    pub server_watch: Option<ServerWatch>,
    /// Flash crowd, or a soak with claims: the merchant view's counts after the run.
    pub claims: Option<ClaimsSummary>,
    /// Invariant verdicts.
    pub checks: Vec<Check>,
    /// Whether every check passed.
    pub passed: bool,
}

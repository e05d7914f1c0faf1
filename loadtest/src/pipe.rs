//! The pipe between the coordinator and a worker: one JSON object a line, [`Command`]s in
//! (the plan, then `go` and `finish`) and [`Event`]s out (progress, ready, active done, the
//! result), over a child process's stdin/stdout or over in-memory pipes; and the line framing
//! both ends use.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::LoadError;
use crate::checks::{DeliveryLedger, GivenBack, HeldClaim};
use crate::scenario::Scenario;
use crate::stats::WireStats;

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
    /// The timelines' bin width, us ([`crate::timeline::record_bin_us`]).
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
    /// Holds acknowledged to this worker's clients (flash crowd, soak with claims).
    pub held: Vec<HeldClaim>,
    /// Holds this worker's clients gave back (soak with claims).
    #[serde(default)]
    pub given_back: Vec<GivenBack>,
    /// Clients that connected and finished setup.
    pub connected: u64,
}

/// `msg` as one line of JSON, newline included: how each end writes to the other.
pub fn line<T: Serialize>(msg: &T) -> Result<Vec<u8>, LoadError> {
    let mut line = serde_json::to_vec(msg).map_err(|e| LoadError::Worker(e.to_string()))?;
    line.push(b'\n');
    Ok(line)
}

/// The worker's end: the next command, or `None` when the coordinator closed the pipe.
pub async fn read_command<R: AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
) -> Result<Option<Command>, LoadError> {
    match lines.next_line().await? {
        None => Ok(None),
        Some(line) => serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| LoadError::Worker(format!("bad command {line:?}: {e}"))),
    }
}

/// The worker's end: writes each event as a line until every sender is gone.
pub async fn write_events<W: AsyncWrite + Unpin>(
    mut output: W,
    mut rx: mpsc::UnboundedReceiver<Event>,
) -> Result<(), LoadError> {
    while let Some(event) = rx.recv().await {
        output.write_all(&line(&event)?).await?;
        output.flush().await?;
    }
    Ok(())
}

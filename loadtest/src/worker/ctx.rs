//! What a worker's client tasks share ([`Ctx`]): the plan and the node it drives, the
//! accounts, the recorder, the phase counters and signals (`go`, `finish`), and the evidence the
//! checkers read (delivery tallies, acknowledged holds and the ones given back); and the wall
//! clock as tokio instants.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::checks::{DeliveryLedger, GivenBack, HeldClaim};
use crate::client::ClientError;
use crate::pipe::{Progress, WorkerPlan};
use crate::scenario::Scenario;
use crate::stats::{Recorder, now_us, t};
use crate::tokens::Account;

/// Shared by a worker's client tasks.
pub(super) struct Ctx {
    pub(super) plan: WorkerPlan,
    /// The node this worker drives, and its address.
    pub(super) target: String,
    pub(super) addr: SocketAddr,
    /// The cluster's other nodes, in the order a client whose node dies tries them.
    pub(super) others: Vec<(String, SocketAddr)>,
    pub(super) accounts: Vec<Account>,
    pub(super) rec: Recorder,
    pub(super) mine: u64,
    pub(super) setup_ok: AtomicU64,
    pub(super) setup_failed: AtomicU64,
    pub(super) connected: AtomicU64,
    pub(super) active_done: AtomicU64,
    pub(super) changed: Notify,
    pub(super) go: watch::Sender<Option<u64>>,
    pub(super) finish: watch::Sender<bool>,
    pub(super) delivery: Mutex<DeliveryLedger>,
    pub(super) held: Mutex<Vec<HeldClaim>>,
    pub(super) given_back: Mutex<Vec<GivenBack>>,
}

impl Ctx {
    pub(super) fn scenario(&self) -> &Scenario {
        &self.plan.scenario
    }

    pub(super) fn progress(&self) -> Progress {
        Progress {
            connected: self.connected.load(Ordering::Relaxed),
            failed: self.setup_failed.load(Ordering::Relaxed),
            sends: self.rec.counter(t::SENDS),
            deliveries: self.rec.counter(t::DELIVERIES),
            replies: self.rec.counter(t::REPLIES),
            decisions: self.rec.counter(t::DECISIONS),
            errors: self.rec.counter(t::ERRORS),
        }
    }

    pub(super) fn error(&self, err: &ClientError) {
        self.rec.with(|s, bin| s.error(&err.code, bin));
    }

    pub(super) fn finishing(&self) -> bool {
        *self.finish.borrow()
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// A tokio instant for a wall-clock time in us since the epoch.
pub(super) fn instant_of(at_us: u64) -> tokio::time::Instant {
    let now = now_us();
    let base = tokio::time::Instant::now();
    if at_us >= now {
        base + Duration::from_micros(at_us - now)
    } else {
        base.checked_sub(Duration::from_micros(now - at_us))
            .unwrap_or(base)
    }
}

/// An instant no timer reaches (the disabled branch of a `select!` still builds its future).
pub(super) fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400)
}

//! The one command a user runs: spawns the workers, shows live progress, moves every worker
//! through the phases together (ready -> go -> active done -> finish), measures the local
//! server between phases, merges the results, checks the invariants and writes the output.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::api::{Api, ClaimsSummary};
use crate::checks::{Check, ClaimsLedger, DeliveryLedger, GivenBack, HeldClaim};
use crate::pipe::{self, Command, Event, Progress, WorkerPlan, WorkerResult};
use crate::provision::{Promotion, provision};
use crate::run_result::{Capacity, RunResult, Throughput};
use crate::scenario::{Kind, Scenario, target_addr};
use crate::server_watch::Watcher;
use crate::stats::{Stats, Summary, now_us, t};
use crate::timeline;
use crate::{LoadError, proc_stat, report, tokens};

/// How workers run.
#[derive(Debug, Clone)]
pub enum WorkerMode {
    /// Child processes of this executable (`<exe> worker`), each with its own fd limit.
    Processes(PathBuf),
    /// Tasks inside this process (tests, tiny runs).
    InProcess,
}

/// Options from the command line.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Overrides the scenario's target.
    pub target: Option<String>,
    /// Output directory for `result.json` and `report.html`.
    pub out: PathBuf,
    /// How workers run.
    pub mode: WorkerMode,
    /// Overrides the scenario's server pid (connect-capacity).
    pub server_pid: Option<u32>,
    /// Print the progress line and summary to stderr.
    pub progress: bool,
}

struct Link {
    input: Box<dyn AsyncWrite + Unpin + Send>,
    child: Option<tokio::process::Child>,
    /// The task printing the worker's stderr (ends when the worker does).
    said: Option<tokio::task::JoinHandle<()>>,
}

/// A phase failed: workers that exited said why on stderr, so let those lines out before
/// the run's own error.
async fn last_words(links: &mut [Link]) {
    for link in links {
        if let Some(said) = link.said.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), said).await;
        }
    }
}

impl Link {
    async fn send(&mut self, cmd: &Command) -> Result<(), LoadError> {
        self.input.write_all(&pipe::line(cmd)?).await?;
        self.input.flush().await?;
        Ok(())
    }
}

/// Runs a scenario to the end and writes its output; the result says whether the
/// invariants held.
pub async fn run(mut scenario: Scenario, opts: &RunOptions) -> Result<RunResult, LoadError> {
    if let Some(target) = &opts.target {
        scenario.target = target.clone();
    }
    scenario.validate()?;
    let target = target_addr(&scenario.target)?;
    // Every worker reads the tokens: check them once here, before any worker starts.
    if let (Some(path), true) = (&scenario.tokens, scenario.needs_tokens()) {
        tokens::load(path, scenario.connect.clients, "user")?;
    }
    for merchant in scenario.merchant_tokens() {
        tokens::load(merchant, 1, "merchant")?;
    }
    let promotion = provision(&mut scenario).await?;
    let bin_us = timeline::record_bin_us(scenario.max_seconds);
    let started_at = now_us();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(scenario.max_seconds);

    let server_pid = match scenario.kind {
        Kind::ConnectCapacity => opts
            .server_pid
            .or(scenario.capacity.as_ref().and_then(|c| c.server_pid))
            .or_else(|| proc_stat::pid_listening_on(target.port())),
        _ => None,
    };
    let rss_before = server_pid.and_then(proc_stat::rss_bytes);

    let mut view = ProgressView::new(
        scenario.workers,
        scenario.connect.clients,
        scenario.kind,
        opts.progress,
    );
    let (events_tx, mut events) = mpsc::unbounded_channel::<(usize, Event)>();
    let mut links = Vec::with_capacity(scenario.workers);
    for index in 0..scenario.workers {
        let link = spawn_worker(index, &opts.mode, events_tx.clone(), &view.bar)?;
        links.push(link);
    }
    drop(events_tx);
    for (index, link) in links.iter_mut().enumerate() {
        link.send(&Command::Plan(Box::new(WorkerPlan {
            scenario: scenario.clone(),
            index,
            of: scenario.workers,
            epoch_us: started_at,
            bin_us,
        })))
        .await?;
    }

    // Connect and set up.
    let mut ready = vec![false; scenario.workers];
    let phase = wait_for(&mut events, &mut view, deadline, |i, ev| {
        if matches!(ev, Event::Ready(_)) {
            ready[i] = true;
        }
        ready.iter().all(|r| *r)
    })
    .await;
    if let Err(err) = phase {
        last_words(&mut links).await;
        return Err(err);
    }
    let ready_us = now_us();
    let ready_ms = ready_us / 1000;

    let mut capacity = None;
    if let (Kind::ConnectCapacity, Some(pid)) = (scenario.kind, server_pid) {
        let settle = scenario.capacity.as_ref().map_or(3, |c| c.settle_seconds);
        drain_for(&mut events, &mut view, Duration::from_secs(settle)).await;
        let rss_after = proc_stat::rss_bytes(pid);
        let connections = view.total().connected;
        if let (Some(before), Some(after)) = (rss_before, rss_after) {
            capacity = Some(Capacity {
                server_pid: pid,
                rss_before_bytes: before,
                rss_after_bytes: after,
                connections,
                bytes_per_connection: after.saturating_sub(before) as f64
                    / connections.max(1) as f64,
                server_fds: proc_stat::open_fds(pid),
            });
        }
    }

    // Active phase, started together.
    let go_us = now_us() + 500_000;
    for link in &mut links {
        link.send(&Command::Go { at_us: go_us }).await?;
    }
    let warmup = scenario.soak.as_ref().and_then(|s| s.warmup_seconds);
    let watcher = match (warmup, scenario.kind) {
        (Some(warmup), Kind::Soak) => opts
            .server_pid
            .or_else(|| proc_stat::pid_listening_on(target.port()))
            .map(|pid| {
                let api = scenario.http_base().ok().and_then(|b| Api::new(&b).ok());
                Watcher::start(pid, api, Duration::from_secs(1), warmup as f64)
            }),
        _ => None,
    };
    let mut done = vec![false; scenario.workers];
    let phase = wait_for(&mut events, &mut view, deadline, |i, ev| {
        if matches!(ev, Event::ActiveDone) {
            done[i] = true;
        }
        done.iter().all(|d| *d)
    })
    .await;
    if let Err(err) = phase {
        last_words(&mut links).await;
        return Err(err);
    }
    let active_end = now_us();
    let server_watch = match watcher {
        Some(watcher) => Some(watcher.stop().await),
        None => None,
    };
    // Messages acknowledged at the very end may still be on their way to receivers: keep
    // reading until deliveries stop (bounded by the drain time) before finishing.
    if let Some(b) = &scenario.broadcast {
        settle(
            &mut events,
            &mut view,
            Duration::from_secs(b.drain_seconds.max(1)),
        )
        .await;
    }

    // Finish and collect.
    for link in &mut links {
        link.send(&Command::Finish).await?;
    }
    let mut results: Vec<Option<WorkerResult>> = vec![None; scenario.workers];
    let collect_deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let phase = wait_for(&mut events, &mut view, collect_deadline, |i, ev| {
        if let Event::Result(r) = ev {
            results[i] = Some((**r).clone());
        }
        results.iter().all(Option::is_some)
    })
    .await;
    if let Err(err) = phase {
        last_words(&mut links).await;
        return Err(err);
    }
    view.bar.finish_and_clear();
    for link in &mut links {
        if let Some(child) = &mut link.child {
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }

    let mut stats = Stats::default();
    let mut delivery = DeliveryLedger::default();
    let mut held = Vec::new();
    let mut given_back = Vec::new();
    let mut connected = 0;
    for result in results.into_iter().flatten() {
        stats.merge(&Stats::from_wire(&result.stats));
        delivery.merge(&result.delivery);
        held.extend(result.held);
        given_back.extend(result.given_back);
        connected += result.connected;
    }

    let mut checks = Vec::new();
    let mut claims = None;
    let everyone = |name: &str| Check {
        name: name.into(),
        passed: connected == scenario.connect.clients as u64,
        detail: format!("{connected} of {}", scenario.connect.clients),
    };
    match scenario.kind {
        Kind::ConnectCapacity => checks.push(everyone("every client connected and authenticated")),
        Kind::RawBroadcast | Kind::ChatStorm | Kind::FeedBurst | Kind::Soak => {
            checks.push(everyone("every client connected and set up"));
            checks.extend(delivery.check());
            // A soak's claims: the crowd's checks, over the whole churn.
            if let Some(promotion) = &promotion {
                let (ledger, summary) =
                    claims_ledger(&scenario, promotion, held, given_back).await?;
                checks.extend(ledger.check());
                claims = Some(summary);
            }
            if let Some(watch) = &server_watch {
                checks.extend(watch.checks());
            }
        }
        Kind::FlashCrowd => {
            if let Some(promotion) = &promotion {
                let starts_at = promotion.activity.starts_at;
                checks.push(Check {
                    name: "the crowd was ready before the start instant".into(),
                    passed: (ready_ms as i64) < starts_at,
                    detail: format!("ready {} ms before starts_at", starts_at - ready_ms as i64),
                });
                let (ledger, summary) =
                    claims_ledger(&scenario, promotion, held, given_back).await?;
                checks.extend(ledger.check());
                claims = Some(summary);
            }
        }
    }
    let passed = checks.iter().all(|c| c.passed);
    // A crowd's active phase begins at the promotion's start instant; a soak's at `go`.
    let starts_at_ms = promotion
        .as_ref()
        .filter(|_| scenario.kind == Kind::FlashCrowd)
        .map(|p| p.activity.starts_at);
    let phases = timeline::phases(started_at, ready_us, go_us, starts_at_ms, active_end);
    let window = (
        timeline::active_start_us(started_at, go_us, starts_at_ms),
        active_end.saturating_sub(started_at),
    );
    let throughput = throughput(&stats, scenario.kind, bin_us, window);
    let clients = scenario.connect.clients as u64;
    let wire = stats.to_wire();
    let result = RunResult {
        scenario,
        started_at_ms: started_at / 1000,
        duration_seconds: now_us().saturating_sub(started_at) as f64 / 1e6,
        clients,
        connected,
        latency: stats
            .histograms
            .iter()
            .map(|(name, hist)| (name.clone(), Summary::of(hist)))
            .collect(),
        histograms: wire.histograms,
        timelines: wire.timelines,
        timeline_bin_ms: bin_us as f64 / 1000.0,
        phases,
        counters: wire.counters,
        outcomes: wire.outcomes,
        errors: wire.errors,
        throughput,
        capacity,
        server_watch,
        claims,
        checks,
        passed,
    };
    report::write(&result, &opts.out)?;
    Ok(result)
}

/// Rates over the active window `(from, until)` (us from the run's origin): deliveries
/// where the scenario has them, decisions for a crowd, sends over the same window.
fn throughput(stats: &Stats, kind: Kind, bin_us: u64, (from, until): (u64, u64)) -> Throughput {
    let line = |name: &str| stats.timelines.get(name).cloned().unwrap_or_default();
    let rate = |name: &str| timeline::rate(&line(name), bin_us, from, until);
    let deliveries = kind.has_deliveries().then(|| rate(t::DELIVERIES));
    let decisions = (kind == Kind::FlashCrowd).then(|| rate(t::DECISIONS));
    let main = deliveries.or(decisions).unwrap_or_else(|| rate(t::SENDS));
    Throughput {
        active_seconds: main.seconds,
        sends_per_sec: stats.counter(t::SENDS) as f64 / main.seconds,
        deliveries_per_sec: deliveries.map(|r| r.per_sec),
        peak_deliveries_per_sec: deliveries.map(|r| r.peak_per_sec),
        decisions_per_sec: decisions.map(|r| r.per_sec),
        peak_decisions_per_sec: decisions.map(|r| r.peak_per_sec),
        peak_connects_per_sec: rate(t::CONNECTS).peak_per_sec,
    }
}

fn spawn_worker(
    index: usize,
    mode: &WorkerMode,
    events: mpsc::UnboundedSender<(usize, Event)>,
    bar: &ProgressBar,
) -> Result<Link, LoadError> {
    match mode {
        WorkerMode::Processes(exe) => {
            let mut child = tokio::process::Command::new(exe)
                .arg("worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            let (Some(stdin), Some(stdout), Some(stderr)) =
                (child.stdin.take(), child.stdout.take(), child.stderr.take())
            else {
                return Err(LoadError::Worker("worker pipes missing".into()));
            };
            tokio::spawn(forward(index, BufReader::new(stdout), events));
            let said = tokio::spawn(say(index, BufReader::new(stderr), bar.clone()));
            Ok(Link {
                input: Box::new(stdin),
                child: Some(child),
                said: Some(said),
            })
        }
        WorkerMode::InProcess => {
            let (to_worker, worker_in) = tokio::io::duplex(1 << 16);
            let (worker_out, from_worker) = tokio::io::duplex(1 << 20);
            let bar = bar.clone();
            tokio::spawn(async move {
                if let Err(err) = crate::worker::serve(BufReader::new(worker_in), worker_out).await
                {
                    bar.suspend(|| eprintln!("worker {index}: {err}"));
                }
            });
            tokio::spawn(forward(index, BufReader::new(from_worker), events));
            Ok(Link {
                input: Box::new(to_worker),
                child: None,
                said: None,
            })
        }
    }
}

/// Prints a worker's own lines whole, named, above the progress line (never through it).
async fn say<R: tokio::io::AsyncBufRead + Unpin>(index: usize, reader: R, bar: ProgressBar) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        bar.suspend(|| eprintln!("worker {index}: {line}"));
    }
}

async fn forward<R: tokio::io::AsyncBufRead + Unpin>(
    index: usize,
    reader: R,
    events: mpsc::UnboundedSender<(usize, Event)>,
) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match serde_json::from_str::<Event>(&line) {
            Ok(event) => {
                if events.send((index, event)).is_err() {
                    return;
                }
            }
            Err(err) => eprintln!("worker {index}: unreadable event: {err}"),
        }
    }
}

/// Handles events until `step` says the phase is over; progress events update the view.
/// Fails when a worker goes away or the deadline passes.
async fn wait_for(
    events: &mut mpsc::UnboundedReceiver<(usize, Event)>,
    view: &mut ProgressView,
    deadline: tokio::time::Instant,
    mut step: impl FnMut(usize, &Event) -> bool,
) -> Result<(), LoadError> {
    loop {
        let next = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                return Err(LoadError::Worker("the run hit its time bound (max_seconds)".into()));
            }
            next = events.recv() => next,
        };
        let Some((index, event)) = next else {
            return Err(LoadError::Worker("a worker exited early".into()));
        };
        if let Event::Progress(progress) | Event::Ready(progress) = &event {
            view.update(index, *progress);
        }
        if step(index, &event) {
            return Ok(());
        }
    }
}

/// Keeps the progress line going for `time`.
async fn drain_for(
    events: &mut mpsc::UnboundedReceiver<(usize, Event)>,
    view: &mut ProgressView,
    time: Duration,
) {
    let until = tokio::time::Instant::now() + time;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return,
            next = events.recv() => match next {
                Some((index, Event::Progress(p))) => view.update(index, p),
                Some(_) => {}
                None => return,
            },
        }
    }
}

/// Waits until no delivery arrived over two progress reports (workers report every second),
/// or `max` passed.
async fn settle(
    events: &mut mpsc::UnboundedReceiver<(usize, Event)>,
    view: &mut ProgressView,
    max: Duration,
) {
    let until = tokio::time::Instant::now() + max;
    let mut last = view.total().deliveries;
    while tokio::time::Instant::now() < until {
        drain_for(events, view, Duration::from_millis(2100)).await;
        let now = view.total().deliveries;
        if now == last {
            return;
        }
        last = now;
    }
}

/// The live progress line on stderr (an indicatif bar: drawn only on a terminal, and
/// workers' own lines are printed above it instead of through it): clients connected, and
/// the rates the scenario is about.
struct ProgressView {
    per_worker: Vec<Progress>,
    kind: Kind,
    bar: ProgressBar,
    last: (std::time::Instant, Progress),
}

impl ProgressView {
    fn new(workers: usize, clients: usize, kind: Kind, show: bool) -> ProgressView {
        let bar = if show {
            ProgressBar::new(clients as u64)
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template(
            "[{elapsed_precise}] {bar:20} {pos}/{len} connected | {msg}",
        ) {
            bar.set_style(style);
        }
        ProgressView {
            per_worker: vec![Progress::default(); workers],
            kind,
            bar,
            last: (std::time::Instant::now(), Progress::default()),
        }
    }

    fn total(&self) -> Progress {
        let mut total = Progress::default();
        for p in &self.per_worker {
            total.add(p);
        }
        total
    }

    fn update(&mut self, index: usize, progress: Progress) {
        if let Some(slot) = self.per_worker.get_mut(index) {
            *slot = progress;
        }
        let now = std::time::Instant::now();
        let dt = now.duration_since(self.last.0).as_secs_f64();
        if dt < 1.0 {
            return;
        }
        let (total, before) = (self.total(), self.last.1);
        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / dt;
        let mut msg = format!(
            "failed {} | sends {:.0}/s",
            total.failed,
            rate(total.sends, before.sends)
        );
        if self.kind.has_deliveries() {
            let _ = write!(
                msg,
                " deliveries {:.0}/s",
                rate(total.deliveries, before.deliveries)
            );
        }
        if self.kind == Kind::FlashCrowd {
            let _ = write!(
                msg,
                " decisions {:.0}/s",
                rate(total.decisions, before.decisions)
            );
        }
        let _ = write!(
            msg,
            " replies {:.0}/s | errors {}",
            rate(total.replies, before.replies),
            total.errors
        );
        self.bar.set_position(total.connected);
        self.bar.set_message(msg);
        self.last = (now, total);
    }
}

/// Reads the merchant view of the activity's claims (and the activity's items and limit,
/// as the server has them) after the run.
async fn claims_ledger(
    scenario: &Scenario,
    promotion: &Promotion,
    acknowledged: Vec<HeldClaim>,
    given_back: Vec<GivenBack>,
) -> Result<(ClaimsLedger, ClaimsSummary), LoadError> {
    let api = Api::new(&scenario.http_base()?)?;
    let token = &promotion.merchant_token;
    let id = promotion.activity.activity_id;
    let view = api.claims(token, id).await?;
    let activity = api.activity(token, id).await?;
    let ledger = ClaimsLedger {
        acknowledged,
        given_back,
        view: view.claims,
        slots: activity
            .items
            .iter()
            .map(|item| (item.item_id, item.slots))
            .collect(),
        per_user_limit: activity.per_user_limit,
    };
    Ok((ledger, view.summary))
}

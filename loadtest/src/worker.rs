//! A worker: drives its share of the clients (client `n` with `n % of == index`), reports
//! progress once a second, and its measurements and delivery evidence at the end. It reads
//! [`Command`]s and writes [`Event`]s as JSON lines ([`crate::pipe`]), over stdin/stdout when
//! it is a child process, or over in-memory pipes when it runs inside the coordinator.
//!
//! Every client goes through the same phases: setup (connect, authenticate, join / follow /
//! subscribe), wait for `go`, the scenario's active phase (bounded in time), then idle
//! reading (answering pings, counting stragglers) until `finish`. This file holds the worker's
//! loop and each client's run through the phases; [`ctx`] what the client tasks share,
//! [`client`] one client's state and the accounting of what it receives, [`claim_book`] its
//! claims and their keys, [`payload`] the message text, and [`scenarios`] what each scenario
//! has a client do.

mod claim_book;
mod client;
mod ctx;
mod failover;
mod payload;
mod scenarios;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use self::client::read_until;
use self::ctx::{Ctx, lock};
use self::scenarios::broadcast::room_of;
use self::scenarios::rejoin::{COME_BACK, come_back};
use self::scenarios::{active, setup};
use crate::LoadError;
use crate::checks::DeliveryLedger;
use crate::client::ClientError;
use crate::pipe::{Command, Event, WorkerResult, read_command, write_events};
use crate::scenario::{Kind, target_addr};
use crate::stats::{Recorder, now_us};
use crate::tokens;

/// Serves one worker: reads the plan and commands from `input`, writes events to `output`.
pub async fn serve<R, W>(input: R, output: W) -> Result<(), LoadError>
where
    R: AsyncBufRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut lines = input.lines();
    let plan = match read_command(&mut lines).await? {
        Some(Command::Plan(plan)) => *plan,
        other => return Err(LoadError::Worker(format!("expected a plan, got {other:?}"))),
    };
    let scenario = &plan.scenario;
    let target = scenario.worker_target(plan.index).to_string();
    let addr = target_addr(&target)?;
    let accounts = match (&scenario.tokens, scenario.needs_tokens()) {
        (Some(path), true) => tokens::load(path, scenario.connect.clients, "user")?,
        _ => Vec::new(),
    };
    let mine = (0..scenario.connect.clients)
        .filter(|n| n % plan.of == plan.index)
        .count() as u64;
    let deadline = plan.epoch_us + scenario.max_seconds * 1_000_000;
    let others = failover::other_nodes(&scenario.nodes, plan.index);
    let ctx = Arc::new(Ctx {
        rec: Recorder::new(plan.epoch_us, plan.bin_us),
        plan,
        others,
        target,
        addr,
        accounts,
        mine,
        setup_ok: AtomicU64::new(0),
        setup_failed: AtomicU64::new(0),
        connected: AtomicU64::new(0),
        active_done: AtomicU64::new(0),
        changed: Notify::new(),
        go: watch::Sender::new(None),
        finish: watch::Sender::new(false),
        delivery: Mutex::new(DeliveryLedger::default()),
        held: Mutex::new(Vec::new()),
        given_back: Mutex::new(Vec::new()),
    });

    let (events, events_rx) = mpsc::unbounded_channel::<Event>();
    let writer = tokio::spawn(write_events(output, events_rx));
    let launcher = tokio::spawn(launch(ctx.clone()));

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let (mut ready_sent, mut active_sent) = (false, false);
    let mut went = false;
    loop {
        let setup_done =
            ctx.setup_ok.load(Ordering::Relaxed) + ctx.setup_failed.load(Ordering::Relaxed);
        if !ready_sent && setup_done >= ctx.mine {
            ready_sent = true;
            let _ = events.send(Event::Ready(ctx.progress()));
        }
        if went
            && !active_sent
            && ctx.active_done.load(Ordering::Relaxed) >= ctx.setup_ok.load(Ordering::Relaxed)
        {
            active_sent = true;
            let _ = events.send(Event::ActiveDone);
        }
        if now_us() >= deadline {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {
                let _ = events.send(Event::Progress(ctx.progress()));
            }
            _ = ctx.changed.notified() => {}
            command = read_command(&mut lines) => match command? {
                Some(Command::Go { at_us }) => {
                    went = true;
                    ctx.go.send_replace(Some(at_us));
                }
                Some(Command::Finish) | None => break,
                Some(Command::Plan(_)) => {}
            },
        }
    }
    ctx.finish.send_replace(true);
    // Clients close within a second or two; a stuck one must not hold the run hostage.
    let clients = tokio::time::timeout(Duration::from_secs(20), launcher).await;
    if clients.is_err() {
        tracing_line("worker: some clients did not close in time");
    }
    let result = WorkerResult {
        stats: ctx.rec.snapshot().to_wire(),
        delivery: lock(&ctx.delivery).clone(),
        held: lock(&ctx.held).clone(),
        given_back: lock(&ctx.given_back).clone(),
        connected: ctx.setup_ok.load(Ordering::Relaxed),
    };
    let _ = events.send(Event::Result(Box::new(result)));
    drop(events);
    writer
        .await
        .map_err(|e| LoadError::Worker(e.to_string()))??;
    Ok(())
}

fn tracing_line(msg: &str) {
    eprintln!("{msg}");
}

/// Starts this worker's clients at the ramp rate, a bounded number handshaking at once.
async fn launch(ctx: Arc<Ctx>) {
    let scenario = ctx.scenario();
    let handshakes = Arc::new(Semaphore::new(scenario.connect.concurrency.max(1)));
    let per_worker_rate = scenario.connect.ramp_per_sec as f64 / ctx.plan.of as f64;
    let gap = (per_worker_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / per_worker_rate));
    let connect_deadline = tokio::time::Instant::now()
        + Duration::from_secs(scenario.connect.seconds.min(scenario.max_seconds));
    let mut clients = JoinSet::new();
    let mut next = tokio::time::Instant::now();
    let mut finish = ctx.finish.subscribe();
    for n in (0..scenario.connect.clients).filter(|n| n % ctx.plan.of == ctx.plan.index) {
        if let Some(gap) = gap {
            next += gap;
            tokio::time::sleep_until(next).await;
        }
        let permit = tokio::select! {
            permit = handshakes.clone().acquire_owned() => permit.ok(),
            _ = tokio::time::sleep_until(connect_deadline) => None,
            _ = finish.wait_for(|f| *f) => None,
        };
        let Some(permit) = permit else {
            // Out of time: the remaining clients count as failed.
            ctx.setup_failed.fetch_add(1, Ordering::Relaxed);
            ctx.rec.with(|s, bin| s.error("connect_phase_timeout", bin));
            ctx.changed.notify_one();
            continue;
        };
        clients.spawn(run_client(ctx.clone(), n, permit));
    }
    while clients.join_next().await.is_some() {}
}

async fn run_client(ctx: Arc<Ctx>, n: usize, permit: OwnedSemaphorePermit) {
    let mut finish = ctx.finish.subscribe();
    let setup = tokio::select! {
        setup = setup(&ctx, n) => setup,
        _ = finish.wait_for(|f| *f) => Err(ClientError::new("cancelled", "run finished")),
    };
    drop(permit);
    let mut client = match setup {
        Ok(client) => client,
        Err(err) => {
            ctx.error(&err);
            ctx.setup_failed.fetch_add(1, Ordering::Relaxed);
            ctx.changed.notify_one();
            return;
        }
    };
    ctx.setup_ok.fetch_add(1, Ordering::Relaxed);
    ctx.connected.fetch_add(1, Ordering::Relaxed);
    ctx.changed.notify_one();

    let mut go = ctx.go.subscribe();
    let at = tokio::select! {
        at = go.wait_for(Option::is_some) => at.ok().and_then(|a| *a),
        _ = finish.wait_for(|f| *f) => None,
    };
    let mut open = true;
    if let Some(at_us) = at {
        open = active(&ctx, &mut client, at_us).await;
        ctx.active_done.fetch_add(1, Ordering::Relaxed);
        ctx.changed.notify_one();
    }
    loop {
        if open {
            // Idle until the end: reading answers the server's pings and counts late
            // deliveries.
            let until = async {
                let _ = finish.wait_for(|f| *f).await;
            };
            open = read_until(&ctx, &mut client, until).await;
        }
        // A chat member the server dropped (a slow consumer) comes back as a real client
        // would, re-joining with `since`; the delivery check then covers the recovery too.
        if open || ctx.scenario().kind != Kind::ChatStorm || ctx.finishing() {
            break;
        }
        let room = room_of(ctx.scenario(), n);
        let grace = tokio::time::Instant::now() + COME_BACK;
        open = come_back(&ctx, &mut client, room, grace).await;
    }
    ctx.connected.fetch_sub(1, Ordering::Relaxed);
    {
        let mut ledger = lock(&ctx.delivery);
        for (stream, tally) in &client.tallies {
            ledger.receiver(*stream, tally);
        }
    }
    client.conn.close().await;
}

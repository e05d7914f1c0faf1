//! A worker: drives its share of the clients (client `n` with `n % of == index`), reports
//! progress once a second, and its measurements and delivery evidence at the end. It reads
//! [`Command`]s and writes [`Event`]s as JSON lines, over stdin/stdout when it is a child
//! process, or over in-memory pipes when it runs inside the coordinator.
//!
//! Every client goes through the same phases: setup (connect, authenticate, join / follow /
//! subscribe), wait for `go`, the scenario's active phase (bounded in time), then idle
//! reading (answering pings, counting stragglers) until `finish`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::checks::{DeliveryLedger, HeldClaim, Stream, Tally};
use crate::client::{self, ClientError, Conn, Incoming};
use crate::outcome::{self, Class};
use crate::scenario::{Kind, Scenario, target_addr};
use crate::stats::{Recorder, h, now_us, t};
use crate::tokens::{self, Account};
use crate::{Command, Event, LoadError, Progress, WorkerPlan, WorkerResult};

/// How long one request may wait for its reply during setup.
const SETUP_REPLY: Duration = Duration::from_secs(15);

/// Shared by a worker's client tasks.
struct Ctx {
    plan: WorkerPlan,
    /// The node this worker drives, and its address.
    target: String,
    addr: SocketAddr,
    accounts: Vec<Account>,
    rec: Recorder,
    mine: u64,
    setup_ok: AtomicU64,
    setup_failed: AtomicU64,
    connected: AtomicU64,
    active_done: AtomicU64,
    changed: Notify,
    go: watch::Sender<Option<u64>>,
    finish: watch::Sender<bool>,
    delivery: Mutex<DeliveryLedger>,
    held: Mutex<Vec<HeldClaim>>,
}

impl Ctx {
    fn scenario(&self) -> &Scenario {
        &self.plan.scenario
    }

    fn progress(&self) -> Progress {
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

    fn error(&self, err: &ClientError) {
        self.rec.with(|s, bin| s.error(&err.code, bin));
    }

    fn finishing(&self) -> bool {
        *self.finish.borrow()
    }
}

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
    let accounts = match (&scenario.tokens, scenario.kind.needs_tokens()) {
        (Some(path), true) => tokens::load(path, scenario.connect.clients, "user")?,
        _ => Vec::new(),
    };
    let mine = (0..scenario.connect.clients)
        .filter(|n| n % plan.of == plan.index)
        .count() as u64;
    let deadline = plan.epoch_us + scenario.max_seconds * 1_000_000;
    let ctx = Arc::new(Ctx {
        rec: Recorder::new(plan.epoch_us, plan.bin_us),
        plan,
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
        connected: ctx.setup_ok.load(Ordering::Relaxed),
    };
    let _ = events.send(Event::Result(Box::new(result)));
    drop(events);
    writer
        .await
        .map_err(|e| LoadError::Worker(e.to_string()))??;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn tracing_line(msg: &str) {
    eprintln!("{msg}");
}

async fn read_command<R: AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
) -> Result<Option<Command>, LoadError> {
    match lines.next_line().await? {
        None => Ok(None),
        Some(line) => serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| LoadError::Worker(format!("bad command {line:?}: {e}"))),
    }
}

async fn write_events<W: AsyncWrite + Unpin>(
    mut output: W,
    mut rx: mpsc::UnboundedReceiver<Event>,
) -> Result<(), LoadError> {
    while let Some(event) = rx.recv().await {
        let mut line = serde_json::to_vec(&event).map_err(|e| LoadError::Worker(e.to_string()))?;
        line.push(b'\n');
        output.write_all(&line).await?;
        output.flush().await?;
    }
    Ok(())
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

/// What a client keeps between phases.
struct Client {
    n: usize,
    conn: Conn,
    user_id: i64,
    /// Raw broadcast: frames are payloads, not Corral frames.
    raw: bool,
    /// Room, feed author or publisher streams: what this client received of each.
    tallies: HashMap<Stream, Tally>,
    /// Flash crowd: the activity's start instant (ms) from the subscribe reply.
    starts_at_ms: Option<i64>,
}

impl Client {
    /// The stream this client's `room.send` / `feed.post` publish into: its one room, or its
    /// own feed.
    fn own_stream(&self) -> Option<Stream> {
        self.tallies
            .keys()
            .find_map(|s| match s {
                Stream::Room(room) => Some(Stream::Room(*room)),
                _ => None,
            })
            .or((self.user_id != 0).then_some(Stream::Feed(self.user_id)))
    }
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

/// Connects, authenticates and does the scenario's setup.
async fn setup(ctx: &Ctx, n: usize) -> Result<Client, ClientError> {
    let scenario = ctx.scenario();
    let raw = scenario.kind == Kind::RawBroadcast;
    let started = now_us();
    let ws = client::connect(
        &ctx.target,
        ctx.addr,
        scenario.source_addr(n),
        (!raw).then_some(corral_protocol::SUBPROTOCOL),
        Duration::from_secs(20),
    )
    .await?;
    ctx.rec.with(|s, bin| {
        s.record(h::CONNECT, now_us().saturating_sub(started));
        s.count(t::CONNECTS, bin, 1);
    });
    let mut client = Client {
        n,
        conn: Conn::new(ws),
        user_id: 0,
        raw,
        tallies: HashMap::new(),
        starts_at_ms: None,
    };
    if raw {
        if let Some(b) = &scenario.broadcast {
            // Every client receives every publisher's stream.
            for p in 0..b.publishers {
                client
                    .tallies
                    .insert(Stream::Publisher(p as u64), Tally::default());
            }
        }
        return Ok(client);
    }
    let account = ctx
        .accounts
        .get(n)
        .ok_or_else(|| ClientError::new("no_token", format!("no account for client {n}")))?;
    client.user_id = account.id;
    request(ctx, &mut client, "auth", &json!({ "token": account.token })).await?;
    match scenario.kind {
        Kind::ChatStorm | Kind::Soak => {
            let room = match scenario.kind {
                Kind::Soak => soak_room(scenario),
                _ => room_of(scenario, n),
            };
            let ok = request(ctx, &mut client, "room.join", &json!({ "room": room })).await?;
            // Every message after the join's `last_seq` is this member's to receive.
            let last_seq = ok.get("last_seq").and_then(Value::as_u64).unwrap_or(0);
            client
                .tallies
                .insert(Stream::Room(room), Tally::after(last_seq));
        }
        Kind::FeedBurst => {
            if let Some(author) = author_of(ctx, n) {
                request(ctx, &mut client, "follow", &json!({ "user": author })).await?;
                client
                    .tallies
                    .insert(Stream::Feed(author), Tally::default());
            }
        }
        Kind::FlashCrowd => {
            if let Some(crowd) = &scenario.crowd {
                let ok = request(
                    ctx,
                    &mut client,
                    "activity.subscribe",
                    &json!({ "activity": crowd.activity.unwrap_or_default() }),
                )
                .await?;
                client.starts_at_ms = ok.get("starts_at").and_then(Value::as_i64);
            }
        }
        Kind::ConnectCapacity | Kind::RawBroadcast => {}
    }
    Ok(client)
}

/// Chat storm: client `n`'s room (clients are spread round-robin over the rooms, so the
/// first `publishers` clients cover every room when there are at least as many).
fn room_of(scenario: &Scenario, n: usize) -> i64 {
    let ids = scenario
        .broadcast
        .as_ref()
        .and_then(|b| b.room_ids.as_deref())
        .unwrap_or_default();
    match ids.len() {
        0 => 0,
        len => ids[n % len],
    }
}

/// Soak: the room (named or created by provisioning).
fn soak_room(scenario: &Scenario) -> i64 {
    scenario
        .soak
        .as_ref()
        .and_then(|s| s.room)
        .unwrap_or_default()
}

/// Feed burst: the first `publishers` clients are authors; every other client follows one.
fn author_of(ctx: &Ctx, n: usize) -> Option<i64> {
    let authors = ctx.scenario().broadcast.as_ref()?.publishers.max(1);
    if n < authors {
        return None;
    }
    ctx.accounts.get(n % authors).map(|a| a.id)
}

/// Retries of a setup request answered `unavailable` (a node shedding load) or
/// `rate_limited`, with exponential back-off from 200 ms and jitter.
const SETUP_RETRIES: usize = 4;

/// A setup request: timed, retried with backoff while the node sheds load (as the protocol
/// tells clients to), its final error counted by code.
async fn request(
    ctx: &Ctx,
    client: &mut Client,
    op: &'static str,
    params: &Value,
) -> Result<Value, ClientError> {
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_times(SETUP_RETRIES)
        .with_jitter()
        .build();
    let (latency, ok) = loop {
        let mut pushes = Vec::new();
        let result = client
            .conn
            .request(op, params, SETUP_REPLY, &mut pushes)
            .await;
        for push in pushes {
            on_frame(ctx, client, Frame::Corral(push));
        }
        let shed = |e: &ClientError| matches!(e.code.as_str(), "unavailable" | "rate_limited");
        match (result, backoff.next()) {
            (Err(err), Some(delay)) if shed(&err) => {
                ctx.rec.with(|s, bin| s.count("setup_retries", bin, 1));
                tokio::time::sleep(delay).await;
            }
            (other, _) => break other?,
        }
    };
    ctx.rec.with(|s, bin| {
        s.record(&format!("{}{op}", h::REPLY), latency);
        s.count(t::REPLIES, bin, 1);
    });
    Ok(ok)
}

/// The message text: `<sent_us> <stream> <seq> ` padded to the configured size (the raw
/// peers echo it verbatim; Corral carries it as the message text).
fn payload(sent_us: u64, stream: &str, seq: u64, bytes: usize) -> String {
    let mut text = format!("{sent_us} {stream} {seq} ");
    if text.len() < bytes {
        text.extend(std::iter::repeat_n('x', bytes - text.len()));
    }
    text
}

/// Parses `<sent_us> <stream> <seq> ...`.
fn parse_payload(text: &str) -> Option<(u64, &str, u64)> {
    let mut parts = text.splitn(4, ' ');
    let sent = parts.next()?.parse().ok()?;
    let stream = parts.next()?;
    let seq = parts.next()?.parse().ok()?;
    Some((sent, stream, seq))
}

/// The scenario's active phase for one client; returns whether the socket is still open.
async fn active(ctx: &Ctx, client: &mut Client, at_us: u64) -> bool {
    let scenario = ctx.scenario();
    match scenario.kind {
        Kind::ConnectCapacity => true,
        Kind::RawBroadcast | Kind::ChatStorm | Kind::FeedBurst => publish(ctx, client, at_us).await,
        Kind::FlashCrowd => crowd(ctx, client).await,
        Kind::Soak => soak(ctx, client, at_us).await,
    }
}

/// Reads (and accounts) frames until `until` completes; returns whether the socket is open.
async fn read_until(
    ctx: &Ctx,
    client: &mut Client,
    until: impl std::future::Future<Output = ()>,
) -> bool {
    tokio::pin!(until);
    loop {
        tokio::select! {
            biased;
            _ = &mut until => return true,
            frame = next_frame(client) => if !account(ctx, client, frame) {
                return false;
            },
        }
    }
}

/// Accounts what [`next_frame`] returned; returns whether the socket is still open.
fn account(ctx: &Ctx, client: &mut Client, frame: Result<Option<Frame>, ClientError>) -> bool {
    match frame {
        Ok(Some(frame)) => {
            on_frame(ctx, client, frame);
            true
        }
        Ok(None) => {
            // By close code, so a slow-consumer drop (4008) tells itself from a shutdown.
            let code = client.conn.close_code.map_or_else(
                || "server_closed".to_string(),
                |c| format!("server_closed_{c}"),
            );
            ctx.error(&ClientError::new(&code, "socket closed"));
            false
        }
        Err(err) => {
            ctx.error(&err);
            err.code != "closed"
        }
    }
}

/// A frame as the accounting sees it.
enum Frame {
    /// A raw-broadcast payload: its send timestamp, publisher and sequence number.
    Raw {
        /// `<sent_us>`.
        sent_us: u64,
        /// The publishing client's stream.
        stream: Stream,
        /// Its sequence number.
        seq: u64,
    },
    /// A Corral reply or push.
    Corral(Incoming),
}

async fn next_frame(client: &mut Client) -> Result<Option<Frame>, ClientError> {
    if !client.raw {
        return Ok(client.conn.next().await?.map(Frame::Corral));
    }
    loop {
        return match client.conn.ws.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(ClientError::new("closed", e)),
            // Read in place: no copy, no JSON.
            Some(Ok(Message::Text(text))) => match parse_payload(&text)
                .and_then(|(sent_us, name, seq)| Some((sent_us, Stream::publisher(name)?, seq)))
            {
                Some((sent_us, stream, seq)) => Ok(Some(Frame::Raw {
                    sent_us,
                    stream,
                    seq,
                })),
                None => Err(ClientError::new("bad_frame", text.as_str())),
            },
            Some(Ok(Message::Close(_))) => Ok(None),
            Some(Ok(_)) => continue,
        };
    }
}

fn on_frame(ctx: &Ctx, client: &mut Client, frame: Frame) {
    match frame {
        Frame::Raw {
            sent_us,
            stream,
            seq,
        } => delivered(ctx, client, stream, seq, Some(sent_us)),
        Frame::Corral(Incoming::RoomMessage { room, seq, sent_us }) => {
            delivered(ctx, client, Stream::Room(room), seq, sent_us);
        }
        Frame::Corral(Incoming::Push(push)) => on_push(ctx, client, &push),
        Frame::Corral(Incoming::Reply {
            op,
            latency_us,
            result,
            ..
        }) => on_reply(ctx, client, op, latency_us, result),
    }
}

/// One message of `stream` arrived: its delivery latency (from the payload's send
/// timestamp) and its place in the stream's order.
fn delivered(ctx: &Ctx, client: &mut Client, stream: Stream, seq: u64, sent_us: Option<u64>) {
    if let Some(sent_us) = sent_us {
        let now = now_us();
        ctx.rec.with_at(now, |s, bin| {
            s.record(h::DELIVERY, now.saturating_sub(sent_us));
            s.count(t::DELIVERIES, bin, 1);
        });
    }
    if let Some(tally) = client.tallies.get_mut(&stream) {
        tally.see(seq);
    }
}

fn on_reply(
    ctx: &Ctx,
    client: &mut Client,
    op: &'static str,
    latency_us: u64,
    result: Result<Value, ClientError>,
) {
    let class = outcome::classify(op, result.as_ref().map(|_| ()).map_err(|e| e.code.as_str()));
    ctx.rec.with(|s, bin| {
        s.record(&format!("{}{op}", h::REPLY), latency_us);
        s.count(t::REPLIES, bin, 1);
        match (&class, &result) {
            (Class::Outcome(name), _) => s.outcome(name, bin),
            (_, Err(err)) => s.error(&err.code, bin),
            _ => {}
        }
    });
    let Ok(ok) = result else { return };
    match op {
        // Acknowledged, so durable: it counts as published.
        "room.send" | "feed.post" => {
            if let Some(stream) = client.own_stream() {
                lock(&ctx.delivery).published(stream, 1);
            }
        }
        "claim" => {
            let claim_id = ok.get("claim_id").and_then(Value::as_i64);
            let item = ok.get("item").and_then(Value::as_i64);
            if let (Some(claim_id), Some(item)) = (claim_id, item) {
                lock(&ctx.held).push(HeldClaim {
                    claim_id,
                    user_id: client.user_id,
                    item,
                });
            }
        }
        _ => {}
    }
}

/// A push that took the full JSON parse.
fn on_push(ctx: &Ctx, client: &mut Client, push: &Value) {
    let ev = push.get("ev").and_then(Value::as_str).unwrap_or_default();
    let sent_of = |text: Option<&Value>| {
        text.and_then(Value::as_str)
            .and_then(parse_payload)
            .map(|(sent, _, _)| sent)
    };
    match ev {
        // Every member's sockets get every message, the sender's own included.
        "room.message" => {
            let room = push.get("room").and_then(Value::as_i64);
            let seq = push.get("seq").and_then(Value::as_u64);
            if let (Some(room), Some(seq)) = (room, seq) {
                delivered(
                    ctx,
                    client,
                    Stream::Room(room),
                    seq,
                    sent_of(push.get("text")),
                );
            }
        }
        // `{"ev": "feed.post", "post": {post_id, author, text, ...}}`
        "feed.post" => {
            let post = push.get("post").unwrap_or(&Value::Null);
            let author = post.get("author").and_then(Value::as_i64);
            let post_id = post.get("post_id").and_then(Value::as_u64);
            if let (Some(author), Some(post_id)) = (author, post_id) {
                delivered(
                    ctx,
                    client,
                    Stream::Feed(author),
                    post_id,
                    sent_of(post.get("text")),
                );
            }
        }
        // `{"ev": "activity.started", "activity", "server_time"}`: the skew is measured
        // against `starts_at` from the subscribe reply.
        "activity.started" => {
            if let Some(starts_at) = client.starts_at_ms {
                let skew_us = now_us().saturating_sub(starts_at.max(0) as u64 * 1000);
                ctx.rec.with(|s, _| s.record(h::START_SKEW, skew_us));
            }
        }
        _ => {}
    }
}

/// Publishing scenarios: publishers send at their rate for the set time while everyone
/// receives; then everyone keeps receiving through the drain time.
async fn publish(ctx: &Ctx, client: &mut Client, at_us: u64) -> bool {
    let scenario = ctx.scenario();
    let Some(b) = &scenario.broadcast else {
        return true;
    };
    let is_publisher = client.n < b.publishers;
    let count = if is_publisher {
        (b.rate_per_sec * b.seconds as f64).round() as u64
    } else {
        0
    };
    let interval = Duration::from_secs_f64(1.0 / b.rate_per_sec);
    // Spread publishers over the interval so their sends do not all coincide.
    let phase = interval.mul_f64((client.n as f64 / b.publishers.max(1) as f64).fract());
    let start = instant_of(at_us) + phase;
    let end = instant_of(at_us) + Duration::from_secs(b.seconds + b.drain_seconds);
    let mut ticker = tokio::time::interval_at(start, interval);
    let mut sent = 0u64;
    let stream = Stream::Publisher(client.n as u64);
    let name = stream.to_string();
    // Timers live across iterations: this loop runs once per received frame.
    let end = tokio::time::sleep_until(end);
    tokio::pin!(end);
    loop {
        tokio::select! {
            biased;
            // Publishers also wait for their last acknowledgements (receivers keep reading
            // meanwhile: the run finishes when every client is done).
            _ = &mut end => return client.raw || collect_owed(ctx, client, true).await,
            _ = ticker.tick(), if sent < count => {
                sent += 1;
                let now = now_us();
                let result = match scenario.kind {
                    Kind::RawBroadcast => {
                        let text = payload(now, &name, sent, b.message_bytes);
                        lock(&ctx.delivery).published(stream, 1);
                        client.conn.ws.send(Message::text(text)).await
                            .map_err(|e| ClientError::new("closed", e))
                    }
                    Kind::FeedBurst => {
                        let text = payload(now, "feed", sent, b.message_bytes);
                        client.conn.send("feed.post", &json!({ "text": text })).await.map(|_| ())
                    }
                    _ => {
                        let room = room_of(scenario, client.n);
                        let text = payload(now, "room", sent, b.message_bytes);
                        let key = format!("lt-{}-{sent}", client.n);
                        client.conn.send("room.send", &json!({
                            "room": room, "text": text, "client_msg_id": key
                        })).await.map(|_| ())
                    }
                };
                match result {
                    Ok(()) => ctx.rec.with(|s, bin| s.count(t::SENDS, bin, 1)),
                    Err(err) => {
                        ctx.error(&err);
                        return false;
                    }
                }
            }
            frame = next_frame(client) => if !account(ctx, client, frame) {
                return false;
            },
        }
    }
}

/// How long a client waits for the replies it is still owed before it closes or reports.
const OWED_REPLIES: Duration = Duration::from_secs(10);

/// A message counts as published once acknowledged: reads (while the socket is `open`) until
/// every request has its reply, bounded by [`OWED_REPLIES`], and records the ones that never
/// came. Returns whether the socket is still open.
async fn collect_owed(ctx: &Ctx, client: &mut Client, mut open: bool) -> bool {
    let owed = tokio::time::sleep(OWED_REPLIES);
    tokio::pin!(owed);
    while open && client.conn.pending() > 0 {
        tokio::select! {
            _ = &mut owed => break,
            frame = next_frame(client) => open = account(ctx, client, frame),
        }
    }
    let unacknowledged = client.conn.pending() as u64;
    if unacknowledged > 0 {
        for _ in 0..unacknowledged {
            ctx.error(&ClientError::new(
                "send_unacknowledged",
                "no reply in time (the message may or may not be stored)",
            ));
        }
        if let Some(stream) = client.own_stream() {
            lock(&ctx.delivery).unacknowledged(stream, unacknowledged);
        }
    }
    open
}

/// Flash crowd: claim at the start instant (plus jitter), retrying with the same key.
async fn crowd(ctx: &Ctx, client: &mut Client) -> bool {
    let Some(crowd) = &ctx.scenario().crowd else {
        return true;
    };
    let activity = crowd.activity.unwrap_or_default();
    let starts_us = client
        .starts_at_ms
        .map_or(now_us(), |ms| (ms.max(0) as u64) * 1000);
    let jitter = if crowd.jitter_ms > 0 {
        rand::random_range(0..crowd.jitter_ms * 1000)
    } else {
        0
    };
    let end = instant_of(starts_us) + Duration::from_secs(crowd.seconds);
    let fire = instant_of(starts_us + jitter);
    // Keep reading (countdown pushes, activity.started) until the instant.
    if !read_until(ctx, client, tokio::time::sleep_until(fire)).await {
        return false;
    }
    let keys: Vec<String> = (0..crowd.claims_per_client)
        .map(|k| format!("lt-{}-{}-{k}", ctx.plan.epoch_us, client.n))
        .collect();
    let mut outstanding: HashMap<u64, (usize, u32)> = HashMap::new();
    for (k, key) in keys.iter().enumerate() {
        match client
            .conn
            .send("claim", &json!({ "activity": activity, "key": key }))
            .await
        {
            Ok(id) => {
                outstanding.insert(id, (k, 0));
                ctx.rec.with(|s, bin| s.count(t::SENDS, bin, 1));
            }
            Err(err) => {
                ctx.error(&err);
                return false;
            }
        }
    }
    let retryable = |code: &str| matches!(code, "unavailable" | "rate_limited" | "timeout");
    let end = tokio::time::sleep_until(end);
    tokio::pin!(end);
    while !outstanding.is_empty() {
        let frame = tokio::select! {
            _ = &mut end => {
                for _ in 0..outstanding.len() {
                    ctx.error(&ClientError::new("claim_unanswered", "no reply in time"));
                }
                return true;
            }
            frame = client.conn.next() => frame,
        };
        match frame {
            Ok(Some(Incoming::Reply {
                id,
                op,
                latency_us,
                result,
            })) => {
                let entry = outstanding.remove(&id);
                let retry = match (&result, entry) {
                    (Err(err), Some((k, tries)))
                        if retryable(&err.code) && tries < crowd.retries =>
                    {
                        Some((k, tries + 1))
                    }
                    _ => None,
                };
                on_reply(ctx, client, op, latency_us, result);
                if let Some((k, tries)) = retry {
                    match client
                        .conn
                        .send("claim", &json!({ "activity": activity, "key": keys[k] }))
                        .await
                    {
                        Ok(id) => {
                            outstanding.insert(id, (k, tries));
                            ctx.rec.with(|s, bin| s.count("retries", bin, 1));
                        }
                        Err(err) => {
                            ctx.error(&err);
                            return false;
                        }
                    }
                }
            }
            Ok(Some(push)) => on_frame(ctx, client, Frame::Corral(push)),
            Ok(None) => {
                ctx.error(&ClientError::new("server_closed", "socket closed"));
                return false;
            }
            Err(err) => {
                ctx.error(&err);
                if err.code == "closed" {
                    return false;
                }
            }
        }
    }
    true
}

/// Soak: publish at a low rate, drop the connection at random times and come back with
/// `room.join {since}`, catching up from the reply's `missed` (and `room.history` when the
/// absence outran the catch-up window). At the end every client is connected and caught up,
/// so the idle phase that follows collects the last messages.
async fn soak(ctx: &Ctx, client: &mut Client, at_us: u64) -> bool {
    let Some(soak) = ctx.scenario().soak.clone() else {
        return true;
    };
    let room = soak_room(ctx.scenario());
    let end = instant_of(at_us) + Duration::from_secs(soak.seconds);
    // The last reconnect (of a client the server dropped near the end) may take this long.
    let grace = end + Duration::from_secs(15);
    let drain = Duration::from_secs(soak.drain_seconds);
    let interval = Duration::from_secs_f64(1.0 / soak.rate_per_sec);
    let first = tokio::time::Instant::now() + interval.mul_f64(rand::random::<f64>());
    let mut ticker = tokio::time::interval_at(first, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = 0u64;
    loop {
        let stay = Duration::from_millis(rand::random_range(1..soak.reconnect_every_ms));
        let leave = (tokio::time::Instant::now() + stay).min(end);
        let leave = tokio::time::sleep_until(leave);
        tokio::pin!(leave);
        let mut open = true;
        while open {
            tokio::select! {
                _ = &mut leave => break,
                _ = ticker.tick() => {
                    sent += 1;
                    let text = payload(now_us(), "room", sent, 64);
                    let key = format!("lt-{}-{}-{sent}", ctx.plan.epoch_us, client.n);
                    let params = json!({ "room": room, "text": text, "client_msg_id": key });
                    match client.conn.send("room.send", &params).await {
                        Ok(_) => ctx.rec.with(|s, bin| s.count(t::SENDS, bin, 1)),
                        Err(err) => {
                            ctx.error(&err);
                            open = false;
                        }
                    }
                }
                frame = next_frame(client) => open = account(ctx, client, frame),
            }
        }
        open = collect_owed(ctx, client, open).await;
        if open && tokio::time::Instant::now() >= end {
            return read_until(ctx, client, tokio::time::sleep(drain)).await;
        }
        // Churn: drop the socket (unless the server did), stay away a moment, come back.
        if open {
            let _ = tokio::time::timeout(Duration::from_secs(1), client.conn.ws.close(None)).await;
            tokio::time::sleep(Duration::from_millis(rand::random_range(50..500))).await;
        }
        if !come_back(ctx, client, room, grace).await {
            return false;
        }
        if tokio::time::Instant::now() >= end {
            return read_until(ctx, client, tokio::time::sleep(drain)).await;
        }
    }
}

/// How long a dropped chat member keeps trying to come back.
const COME_BACK: Duration = Duration::from_secs(15);

/// Reconnects and re-joins `room` from the last seq received, retrying until `grace`;
/// returns whether the client is back.
async fn come_back(ctx: &Ctx, client: &mut Client, room: i64, grace: tokio::time::Instant) -> bool {
    ctx.rec.with(|s, bin| s.count("reconnects", bin, 1));
    let since = client
        .tallies
        .get(&Stream::Room(room))
        .and_then(Tally::last_seq);
    loop {
        if tokio::time::Instant::now() >= grace || ctx.finishing() {
            ctx.error(&ClientError::new(
                "rejoin_failed",
                "could not come back in time",
            ));
            return false;
        }
        match rejoin(ctx, client, room, since).await {
            Ok(()) => return true,
            Err(err) => {
                ctx.error(&err);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Most `room.history` pages one catch-up reads (200 messages each).
const MAX_HISTORY_PAGES: usize = 100;

/// Reconnects, authenticates and re-joins `room` with `since`, then accounts what was missed
/// in seq order: older pages from `room.history` when the reply was truncated, the reply's
/// `missed`, then the pushes that arrived meanwhile.
async fn rejoin(
    ctx: &Ctx,
    client: &mut Client,
    room: i64,
    since: Option<u64>,
) -> Result<(), ClientError> {
    let scenario = ctx.scenario();
    let started = now_us();
    let ws = client::connect(
        &ctx.target,
        ctx.addr,
        scenario.source_addr(client.n),
        Some(corral_protocol::SUBPROTOCOL),
        Duration::from_secs(10),
    )
    .await?;
    ctx.rec.with(|s, bin| {
        s.record(h::CONNECT, now_us().saturating_sub(started));
        s.count(t::CONNECTS, bin, 1);
    });
    client.conn = Conn::new(ws);
    let token = ctx
        .accounts
        .get(client.n)
        .map(|a| a.token.clone())
        .unwrap_or_default();
    request(ctx, client, "auth", &json!({ "token": token })).await?;
    let mut pushes = Vec::new();
    let (latency, ok) = client
        .conn
        .request(
            "room.join",
            &json!({ "room": room, "since": since }),
            SETUP_REPLY,
            &mut pushes,
        )
        .await?;
    ctx.rec.with(|s, bin| {
        s.record(&format!("{}room.join", h::REPLY), latency);
        s.count(t::REPLIES, bin, 1);
    });
    let seq_of = |m: &Value| m.get("seq").and_then(Value::as_u64);
    let mut missed: Vec<u64> = ok
        .get("missed")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(seq_of)
        .collect();
    if ok.get("truncated").and_then(Value::as_bool) == Some(true) {
        ctx.rec.with(|s, bin| s.count("catch_up_truncated", bin, 1));
        let floor = since.unwrap_or(0);
        let mut older = Vec::new();
        let mut before = missed.first().copied();
        for _ in 0..MAX_HISTORY_PAGES {
            let Some(before_seq) = before.filter(|b| *b > floor + 1) else {
                break;
            };
            let (latency, page) = client
                .conn
                .request(
                    "room.history",
                    &json!({ "room": room, "before_seq": before_seq, "limit": 200 }),
                    SETUP_REPLY,
                    &mut pushes,
                )
                .await?;
            ctx.rec.with(|s, bin| {
                s.record(&format!("{}room.history", h::REPLY), latency);
                s.count(t::REPLIES, bin, 1);
            });
            let mut seqs: Vec<u64> = page
                .get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(seq_of)
                .filter(|seq| *seq > floor)
                .collect();
            before = seqs.first().copied();
            if seqs.is_empty() {
                break;
            }
            seqs.append(&mut older);
            older = seqs;
        }
        older.append(&mut missed);
        missed = older;
    }
    if let Some(tally) = client.tallies.get_mut(&Stream::Room(room)) {
        for seq in missed {
            tally.see(seq);
        }
    }
    for push in pushes {
        on_frame(ctx, client, Frame::Corral(push));
    }
    Ok(())
}

/// A tokio instant for a wall-clock time in us since the epoch.
fn instant_of(at_us: u64) -> tokio::time::Instant {
    let now = now_us();
    let base = tokio::time::Instant::now();
    if at_us >= now {
        base + Duration::from_micros(at_us - now)
    } else {
        base.checked_sub(Duration::from_micros(now - at_us))
            .unwrap_or(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_at_the_requested_size() {
        let text = payload(1_700_000_000_000_000, "pub:3", 42, 100);
        assert_eq!(text.len(), 100);
        assert_eq!(
            parse_payload(&text),
            Some((1_700_000_000_000_000, "pub:3", 42))
        );
        assert_eq!(parse_payload("hello"), None);
    }
}

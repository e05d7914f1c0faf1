//! One simulated client ([`Client`]): its per-connection state, its setup requests (timed,
//! retried while the node sheds load), and the reading and accounting of every frame it gets
//! (replies by outcome or error, room messages, feed posts and raw payloads into its delivery
//! tallies, held claims, start skew), including the replies it is still owed at the end.

use std::collections::HashMap;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::claim_book::{Answer, ClaimBook};
use super::ctx::{Ctx, lock};
use super::payload::parse_payload;
use super::scenarios::rejoin::with_own_jitter;
use crate::checks::{HeldClaim, Stream, Tally};
use crate::client::{ClientError, Conn, Incoming};
use crate::outcome::{self, Class};
use crate::scenario::Kind;
use crate::stats::{h, now_us, t};

/// How long one request may wait for its reply during setup.
pub(super) const SETUP_REPLY: Duration = Duration::from_secs(15);

/// What a client keeps between phases.
pub(super) struct Client {
    pub(super) n: usize,
    pub(super) conn: Conn,
    pub(super) user_id: i64,
    /// Raw broadcast: frames are payloads, not Corral frames.
    pub(super) raw: bool,
    /// Room, feed author or publisher streams: what this client received of each.
    pub(super) tallies: HashMap<Stream, Tally>,
    /// Flash crowd: the activity's start instant (ms) from the subscribe reply.
    pub(super) starts_at_ms: Option<i64>,
    /// Flash crowd: the server clock minus this client's, in us, estimated with `time.sync`
    /// (protocol/README.md, "Rendering a countdown without drift").
    pub(super) clock_offset_us: i64,
    /// Flash crowd, soak with claims: this client's claims and their keys.
    pub(super) claims: ClaimBook,
    /// Soak with posts: the author this client follows, and the newest post id of its
    /// timeline before the run (the author's posts after it are the ones checked).
    pub(super) follows: Option<(i64, u64)>,
}

impl Client {
    /// The stream a request `op` publishes into: `room.send` into the client's one room,
    /// `feed.post` into its own feed.
    fn stream_of(&self, op: &str) -> Option<Stream> {
        match op {
            "room.send" => self.tallies.keys().find_map(|s| match s {
                Stream::Room(room) => Some(Stream::Room(*room)),
                _ => None,
            }),
            "feed.post" => (self.user_id != 0).then_some(Stream::Feed(self.user_id)),
            _ => None,
        }
    }
}

/// Retries of a setup request answered `unavailable` (a node shedding load) or
/// `rate_limited`, with exponential back-off from 200 ms and jitter, and never sooner than
/// the answer's `retry_after_ms` (protocol/README.md).
const SETUP_RETRIES: usize = 4;

/// A setup request: timed, retried with backoff while the node sheds load (as the protocol
/// tells clients to), its final error counted by code.
pub(super) async fn request(
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
                let hinted = err
                    .retry_after
                    .map(|hint| with_own_jitter(hint, rand::random::<f64>()));
                tokio::time::sleep(hinted.map_or(delay, |hint| hint.max(delay))).await;
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

/// Subscribes to `activity` (a setup request) and keeps the `starts_at` it answers, which the
/// crowd fires on.
pub(super) async fn subscribe(
    ctx: &Ctx,
    client: &mut Client,
    activity: i64,
) -> Result<(), ClientError> {
    let params = serde_json::json!({ "activity": activity });
    let ok = request(ctx, client, "activity.subscribe", &params).await?;
    if let Some(starts_at) = ok.get("starts_at").and_then(Value::as_i64) {
        client.starts_at_ms = Some(starts_at);
    }
    Ok(())
}

/// `time.sync` samples taken to estimate the clock offset; the one with the smallest round
/// trip wins, as protocol/README.md tells clients to do.
const CLOCK_SAMPLES: usize = 3;

/// Estimates the server clock's offset from this client's with `time.sync`:
/// `offset = server_time - (t0 + t2) / 2` of the sample with the smallest round trip.
pub(super) async fn sync_clock(ctx: &Ctx, client: &mut Client) -> Result<i64, ClientError> {
    let mut best: Option<(u64, i64)> = None;
    for _ in 0..CLOCK_SAMPLES {
        let t0 = now_us();
        let ok = request(
            ctx,
            client,
            "time.sync",
            &serde_json::json!({ "client_time": t0 / 1000 }),
        )
        .await?;
        let t2 = now_us();
        let server_us = ok
            .get("server_time")
            .and_then(Value::as_i64)
            .ok_or_else(|| ClientError::new("bad_reply", "time.sync without server_time"))?
            * 1000;
        let rtt = t2.saturating_sub(t0);
        let offset = server_us - ((t0 + t2) / 2) as i64;
        if best.is_none_or(|(r, _)| rtt < r) {
            best = Some((rtt, offset));
        }
    }
    Ok(best.map_or(0, |(_, offset)| offset))
}

/// Reads (and accounts) frames until `until` completes; returns whether the socket is open.
pub(super) async fn read_until(
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
pub(super) fn account(
    ctx: &Ctx,
    client: &mut Client,
    frame: Result<Option<Frame>, ClientError>,
) -> bool {
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
pub(super) enum Frame {
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

pub(super) async fn next_frame(client: &mut Client) -> Result<Option<Frame>, ClientError> {
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

pub(super) fn on_frame(ctx: &Ctx, client: &mut Client, frame: Frame) {
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
            id,
            op,
            latency_us,
            result,
        }) => {
            if op == "claim" {
                match client.claims.answered(id, &result) {
                    // Not an answer yet: it goes again after the start.
                    Answer::Early => {
                        ctx.rec
                            .with(|s, bin| s.count("not_started_retries", bin, 1));
                        return;
                    }
                    Answer::Retry => ctx.rec.with(|s, bin| s.count("retries", bin, 1)),
                    Answer::Final | Answer::Unknown => {}
                }
            }
            on_reply(ctx, client, op, latency_us, result);
        }
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

pub(super) fn on_reply(
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
            (Class::Outcome(name), _) => {
                // Also by outcome (`reply.claim.held`, `reply.claim.sold_out`): in a crowd the
                // winners' latency is the one that matters, and it differs from the refusals'.
                s.record(&format!("{}{name}", h::REPLY), latency_us);
                s.outcome(name, bin);
            }
            (_, Err(err)) => s.error(&err.code, bin),
            _ => {}
        }
    });
    let Ok(ok) = result else { return };
    match op {
        // Acknowledged, so durable: it counts as published.
        "room.send" | "feed.post" => {
            if let Some(stream) = client.stream_of(op) {
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
                    held_at_us: now_us(),
                    expires_at_ms: ok.get("expires_at").and_then(Value::as_i64).unwrap_or(0),
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
        // against `starts_at` from the subscribe reply (in a flash crowd, whose clients read
        // while they wait for the start; a soak's read nothing until `go`).
        "activity.started" if ctx.scenario().kind == Kind::FlashCrowd => {
            if let Some(starts_at) = client.starts_at_ms {
                let skew_us = now_us().saturating_sub(starts_at.max(0) as u64 * 1000);
                ctx.rec.with(|s, _| s.record(h::START_SKEW, skew_us));
            }
        }
        _ => {}
    }
}

/// How long a client waits for the replies it is still owed before it closes or reports.
const OWED_REPLIES: Duration = Duration::from_secs(10);

/// A message counts as published once acknowledged: reads (while the socket is `open`) until
/// every request has its reply, bounded by [`OWED_REPLIES`], and records the ones that never
/// came. Returns whether the socket is still open.
pub(super) async fn collect_owed(ctx: &Ctx, client: &mut Client, mut open: bool) -> bool {
    let owed = tokio::time::sleep(OWED_REPLIES);
    tokio::pin!(owed);
    while open && client.conn.pending() > 0 {
        tokio::select! {
            _ = &mut owed => break,
            frame = next_frame(client) => open = account(ctx, client, frame),
        }
    }
    // Claims go again with their keys on the next socket ([`ClaimBook::resend_lost`]); the
    // other requests are lost with this one.
    let unacknowledged: Vec<&'static str> = client
        .conn
        .pending_ops()
        .filter(|op| *op != "claim")
        .collect();
    for op in unacknowledged {
        ctx.error(&ClientError::new(
            "send_unacknowledged",
            "no reply in time (the message may or may not be stored)",
        ));
        if let Some(stream) = client.stream_of(op) {
            lock(&ctx.delivery).unacknowledged(stream, 1);
        }
    }
    open
}

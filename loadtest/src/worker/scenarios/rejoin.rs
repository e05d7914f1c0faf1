//! Coming back after a drop, as a real client would: reconnect, authenticate and re-join the
//! room with `since` (a join refused `unavailable` with a hint is asked again after the hint,
//! on the same connection), then account what was missed in seq order (`room.history` pages
//! when the catch-up was truncated, the reply's `missed`, the pushes meanwhile). Chat members
//! the server dropped and the soak's churning clients use it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::checks::{Stream, Tally};
use crate::client::{self, ClientError, Conn};
use crate::stats::{h, now_us, t};
use crate::worker::client::{Client, Frame, SETUP_REPLY, on_frame, request};
use crate::worker::ctx::Ctx;

/// How long a dropped chat member keeps trying to come back.
pub(in crate::worker) const COME_BACK: Duration = Duration::from_secs(15);

/// Reconnects and re-joins `room` from the last seq received, retrying until `grace`;
/// returns whether the client is back.
pub(in crate::worker) async fn come_back(
    ctx: &Ctx,
    client: &mut Client,
    room: i64,
    grace: tokio::time::Instant,
) -> bool {
    ctx.rec.with(|s, bin| s.count("reconnects", bin, 1));
    let since = client
        .tallies
        .get(&Stream::Room(room))
        .and_then(Tally::last_seq);
    // A node that closed us for load said how long to stay away: a crowd that all came back
    // at once would be the storm that got it closed.
    if let Some(wait) = client.conn.retry_after.take() {
        ctx.rec.with(|s, bin| s.count("hinted_waits", bin, 1));
        tokio::time::sleep(with_own_jitter(wait, rand::random::<f64>())).await;
    }
    let mut attempt = 0;
    let mut connected = false;
    loop {
        if tokio::time::Instant::now() >= grace || ctx.finishing() {
            ctx.error(&ClientError::new(
                "rejoin_failed",
                "could not come back in time",
            ));
            return false;
        }
        if !connected {
            if let Err(err) = reconnect(ctx, client).await {
                ctx.error(&err);
                tokio::time::sleep(backoff(attempt, rand::random::<f64>())).await;
                attempt += 1;
                continue;
            }
            connected = true;
        }
        match rejoin(ctx, client, room, since).await {
            Ok(()) => return true,
            // The node takes members in at the rate it can serve them: wait as asked, on the
            // same connection, and ask again.
            Err(ClientError {
                code,
                retry_after: Some(wait),
                ..
            }) if code == "unavailable" => {
                ctx.rec.with(|s, bin| s.count("joins_paced", bin, 1));
                tokio::time::sleep(with_own_jitter(wait, rand::random::<f64>())).await;
            }
            Err(err) => {
                ctx.error(&err);
                connected = false;
                tokio::time::sleep(backoff(attempt, rand::random::<f64>())).await;
                attempt += 1;
            }
        }
    }
}

/// The server's hint plus up to a quarter of it as our own jitter, never sooner than the hint
/// (the SDK's rule, clients/js `atLeastHint`).
pub(in crate::worker) fn with_own_jitter(hint: Duration, unit: f64) -> Duration {
    hint + hint.mul_f64(unit.clamp(0.0, 1.0) / 4.0)
}

/// The wait before retry `attempt` (0-based) of a failed come-back (or of a claim the node
/// could not decide): equal jitter, uniformly in `[cap/2, cap)` with cap = min(5 s, 200 ms *
/// 2^attempt), so failing clients spread out and slow down instead of retrying together at a
/// fixed pace.
pub(in crate::worker) fn backoff(attempt: u32, unit: f64) -> Duration {
    let cap = Duration::from_millis(200)
        .saturating_mul(1 << attempt.min(5))
        .min(Duration::from_secs(5));
    cap / 2 + (cap / 2).mul_f64(unit.clamp(0.0, 1.0))
}

/// Most `room.history` pages one catch-up reads (200 messages each).
pub(in crate::worker) const MAX_HISTORY_PAGES: usize = 100;

/// Opens a new connection for `client` and authenticates it.
async fn reconnect(ctx: &Ctx, client: &mut Client) -> Result<(), ClientError> {
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
    Ok(())
}

/// Re-joins `room` with `since` on the client's connection, then accounts what was missed in
/// seq order: older pages from `room.history` when the reply was truncated, the reply's
/// `missed`, then the pushes that arrived meanwhile.
async fn rejoin(
    ctx: &Ctx,
    client: &mut Client,
    room: i64,
    since: Option<u64>,
) -> Result<(), ClientError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_is_waited_in_full_plus_a_little() {
        let hint = Duration::from_millis(2_000);
        assert_eq!(with_own_jitter(hint, 0.0), hint);
        assert_eq!(with_own_jitter(hint, 1.0), Duration::from_millis(2_500));
        assert_eq!(with_own_jitter(hint, 7.0), Duration::from_millis(2_500));
    }

    #[test]
    fn failed_come_backs_back_off_with_jitter_up_to_five_seconds() {
        assert_eq!(backoff(0, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(1, 0.0), Duration::from_millis(200));
        assert_eq!(backoff(3, 0.99), Duration::from_millis(1_592));
        assert_eq!(backoff(30, 0.0), Duration::from_millis(2_500));
        assert!(backoff(30, 0.999) < Duration::from_secs(5));
    }
}

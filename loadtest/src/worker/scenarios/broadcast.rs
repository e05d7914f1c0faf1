//! The publishing scenarios (raw-broadcast, chat-storm, feed-burst): publishers send at
//! their rate for the set time while everyone receives, then everyone keeps receiving through
//! the drain time; who is in which room and who follows whom.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::checks::Stream;
use crate::client::ClientError;
use crate::scenario::{Kind, Scenario};
use crate::stats::{now_us, t};
use crate::worker::client::{Client, account, collect_owed, next_frame};
use crate::worker::ctx::{Ctx, instant_of, lock};
use crate::worker::payload::payload;

/// Chat storm: client `n`'s room (clients are spread round-robin over the rooms, so the
/// first `publishers` clients cover every room when there are at least as many).
pub(in crate::worker) fn room_of(scenario: &Scenario, n: usize) -> i64 {
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

/// Feed burst: the first `publishers` clients are authors; every other client follows one.
pub(in crate::worker) fn author_of(ctx: &Ctx, n: usize) -> Option<i64> {
    let authors = ctx.scenario().broadcast.as_ref()?.publishers.max(1);
    if n < authors {
        return None;
    }
    ctx.accounts.get(n % authors).map(|a| a.id)
}

/// Publishing scenarios: publishers send at their rate for the set time while everyone
/// receives; then everyone keeps receiving through the drain time.
pub(in crate::worker) async fn publish(ctx: &Ctx, client: &mut Client, at_us: u64) -> bool {
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

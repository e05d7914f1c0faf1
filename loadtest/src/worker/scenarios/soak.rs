//! The soak: publish at a low rate, drop the connection at random times and come back with
//! `room.join {since}`; at the end every client is connected and caught up.

use std::time::Duration;

use serde_json::json;

use super::rejoin::come_back;
use crate::scenario::Scenario;
use crate::stats::{now_us, t};
use crate::worker::client::{Client, account, collect_owed, next_frame, read_until};
use crate::worker::ctx::{Ctx, instant_of};
use crate::worker::payload::payload;

/// Soak: the room (named or created by provisioning).
pub(in crate::worker) fn soak_room(scenario: &Scenario) -> i64 {
    scenario
        .soak
        .as_ref()
        .and_then(|s| s.room)
        .unwrap_or_default()
}

/// Soak: publish at a low rate, drop the connection at random times and come back with
/// `room.join {since}`, catching up from the reply's `missed` (and `room.history` when the
/// absence outran the catch-up window). At the end every client is connected and caught up,
/// so the idle phase that follows collects the last messages.
pub(in crate::worker) async fn soak(ctx: &Ctx, client: &mut Client, at_us: u64) -> bool {
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

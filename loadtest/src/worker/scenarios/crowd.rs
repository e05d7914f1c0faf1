//! The flash crowd: every client opens claiming when its estimate of the server clock reaches
//! the activity's start (plus jitter), as protocol/README.md tells clients to (the
//! `activity.started` push is only the confirmation), and records how far from the true start
//! it fired. A claim answered `unavailable`, `rate_limited` or `timeout` is retried with the
//! same key; one answered `not_started` (the estimate was early) is sent again just after the
//! estimated start.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::client::{ClientError, Incoming};
use crate::stats::{h, now_us, t};
use crate::worker::client::{Client, Frame, on_frame, on_reply, read_until};
use crate::worker::ctx::{Ctx, instant_of};
use crate::worker::failover::fail_over;

/// Before sending a claim again after `not_started`, at least this long.
const NOT_STARTED_PAUSE: Duration = Duration::from_millis(2);
/// Claims sent again after `not_started`, per key (apart from the scenario's `retries`).
const NOT_STARTED_RETRIES: u32 = 3;

/// One claim in flight: its key's index, retries spent, `not_started` retries spent.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    k: usize,
    tries: u32,
    early: u32,
}

/// Flash crowd: claim at the start instant on the synced clock (plus jitter), retrying with
/// the same key.
pub(in crate::worker) async fn crowd(ctx: &Ctx, client: &mut Client) -> bool {
    let Some(crowd) = &ctx.scenario().crowd else {
        return true;
    };
    let activity = crowd.activity.unwrap_or_default();
    // `starts_at` on the server clock, and the local instant this client believes it is.
    let starts_us = client
        .starts_at_ms
        .map_or(now_us(), |ms| (ms.max(0) as u64) * 1000);
    let local_start_us = starts_us.saturating_add_signed(-client.clock_offset_us);
    let jitter = if crowd.jitter_ms > 0 {
        rand::random_range(0..crowd.jitter_ms * 1000)
    } else {
        0
    };
    let end = instant_of(local_start_us) + Duration::from_secs(crowd.seconds);
    let fire = instant_of(local_start_us + jitter);
    // Keep reading (countdown pushes, activity.started) until the instant, following the
    // client to another node if its own dies meanwhile.
    while !read_until(ctx, client, tokio::time::sleep_until(fire)).await {
        if !fail_over(ctx, client, Some(activity)).await {
            return false;
        }
    }
    // The load generator shares the node's clock, so the true start error is measurable:
    // the moment claiming opened minus the start (this client's jitter taken off).
    let error_us = now_us() as i64 - (starts_us + jitter) as i64;
    ctx.rec.with(|s, bin| {
        s.record(h::START_ERROR, error_us.unsigned_abs());
        if error_us < 0 {
            s.count("start_early", bin, 1);
        }
    });
    let keys: Vec<String> = (0..crowd.claims_per_client)
        .map(|k| format!("lt-{}-{}-{k}", ctx.plan.epoch_us, client.n))
        .collect();
    let mut outstanding: HashMap<u64, Attempt> = HashMap::new();
    for (k, key) in keys.iter().enumerate() {
        match client
            .conn
            .send("claim", &json!({ "activity": activity, "key": key }))
            .await
        {
            Ok(id) => {
                outstanding.insert(
                    id,
                    Attempt {
                        k,
                        tries: 0,
                        early: 0,
                    },
                );
                ctx.rec.with(|s, bin| s.count(t::SENDS, bin, 1));
            }
            Err(err) => {
                ctx.error(&err);
                return false;
            }
        }
    }
    let retryable = |code: &str| matches!(code, "unavailable" | "rate_limited" | "timeout");
    // Claims answered `not_started`, to send again at their instant.
    let mut early: Vec<(tokio::time::Instant, Attempt)> = Vec::new();
    let end = tokio::time::sleep_until(end);
    tokio::pin!(end);
    while !outstanding.is_empty() || !early.is_empty() {
        let next_early = early.iter().map(|(at, ..)| *at).min();
        let frame = tokio::select! {
            _ = &mut end => {
                for _ in 0..outstanding.len() + early.len() {
                    ctx.error(&ClientError::new("claim_unanswered", "no reply in time"));
                }
                return true;
            }
            _ = tokio::time::sleep_until(next_early.unwrap_or_else(far_future)), if next_early.is_some() => {
                let now = tokio::time::Instant::now();
                let due: Vec<_> = early.iter().filter(|(at, _)| *at <= now).copied().collect();
                early.retain(|(at, _)| *at > now);
                for (_, attempt) in due {
                    if !resend(ctx, client, activity, &keys[attempt.k], &mut outstanding, attempt).await {
                        return false;
                    }
                }
                continue;
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
                match (&result, entry) {
                    // Early on this client's clock: not an outcome; sent again just after the
                    // start it estimated.
                    (Err(err), Some(attempt))
                        if err.code == "not_started" && attempt.early < NOT_STARTED_RETRIES =>
                    {
                        ctx.rec
                            .with(|s, bin| s.count("not_started_retries", bin, 1));
                        let at = instant_of(local_start_us).max(tokio::time::Instant::now())
                            + NOT_STARTED_PAUSE;
                        early.push((
                            at,
                            Attempt {
                                early: attempt.early + 1,
                                ..attempt
                            },
                        ));
                    }
                    (Err(err), Some(attempt))
                        if retryable(&err.code) && attempt.tries < crowd.retries =>
                    {
                        on_reply(ctx, client, op, latency_us, result);
                        ctx.rec.with(|s, bin| s.count("retries", bin, 1));
                        let again = Attempt {
                            tries: attempt.tries + 1,
                            ..attempt
                        };
                        if !resend(
                            ctx,
                            client,
                            activity,
                            &keys[attempt.k],
                            &mut outstanding,
                            again,
                        )
                        .await
                        {
                            return false;
                        }
                    }
                    _ => on_reply(ctx, client, op, latency_us, result),
                }
            }
            Ok(Some(push)) => on_frame(ctx, client, Frame::Corral(push)),
            Ok(None) => {
                ctx.error(&ClientError::new("server_closed", "socket closed"));
                if !claim_elsewhere(ctx, client, activity, &keys, &mut outstanding).await {
                    return false;
                }
            }
            Err(err) => {
                ctx.error(&err);
                if err.code == "closed"
                    && !claim_elsewhere(ctx, client, activity, &keys, &mut outstanding).await
                {
                    return false;
                }
            }
        }
    }
    true
}

/// The client's node went away with claims unanswered: on another node, the same claims
/// again with the same keys. Returns whether the client could move.
async fn claim_elsewhere(
    ctx: &Ctx,
    client: &mut Client,
    activity: i64,
    keys: &[String],
    outstanding: &mut HashMap<u64, Attempt>,
) -> bool {
    if !fail_over(ctx, client, None).await {
        return false;
    }
    let lost: Vec<Attempt> = outstanding.drain().map(|(_, attempt)| attempt).collect();
    for attempt in lost {
        if !resend(
            ctx,
            client,
            activity,
            &keys[attempt.k],
            outstanding,
            attempt,
        )
        .await
        {
            return false;
        }
    }
    true
}

/// An instant no timer reaches (the disabled branch of a `select!` still builds its future).
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400)
}

/// Sends claim `k` again with its key; returns whether the socket is still usable.
async fn resend(
    ctx: &Ctx,
    client: &mut Client,
    activity: i64,
    key: &str,
    outstanding: &mut HashMap<u64, Attempt>,
    attempt: Attempt,
) -> bool {
    match client
        .conn
        .send("claim", &json!({ "activity": activity, "key": key }))
        .await
    {
        Ok(id) => {
            outstanding.insert(id, attempt);
            true
        }
        Err(err) => {
            ctx.error(&err);
            false
        }
    }
}

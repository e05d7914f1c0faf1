//! The flash crowd: every client claims at the activity's start instant (plus jitter),
//! retrying a claim answered `unavailable`, `rate_limited` or `timeout` with the same key.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::client::{ClientError, Incoming};
use crate::stats::{now_us, t};
use crate::worker::client::{Client, Frame, on_frame, on_reply, read_until};
use crate::worker::ctx::{Ctx, instant_of};

/// Flash crowd: claim at the start instant (plus jitter), retrying with the same key.
pub(in crate::worker) async fn crowd(ctx: &Ctx, client: &mut Client) -> bool {
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

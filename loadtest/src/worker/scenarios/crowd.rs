//! The flash crowd: every client opens claiming when its estimate of the server clock reaches
//! the activity's start (plus jitter), as protocol/README.md tells clients to (the
//! `activity.started` push is only the confirmation), and records how far from the true start
//! it fired. Its claims go through the client's [`ClaimBook`](crate::worker::claim_book):
//! one answered `unavailable`, `rate_limited` or `timeout` goes again with the same key after a
//! short backoff, one answered `not_started` (the estimate was early) just after the estimated
//! start, and the unanswered ones of a node that died go again on another.

use std::time::Duration;

use crate::client::ClientError;
use crate::stats::{h, now_us, t};
use crate::worker::client::{Client, next_frame, on_frame, read_until};
use crate::worker::ctx::{Ctx, far_future, instant_of};
use crate::worker::failover::fail_over;

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
    client.claims.opens_at(instant_of(local_start_us));
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
    for _ in 0..crowd.claims_per_client {
        if let Err(err) = client.claims.claim(&mut client.conn).await {
            ctx.error(&err);
            return false;
        }
        ctx.rec.with(|s, bin| s.count(t::SENDS, bin, 1));
    }
    let end = tokio::time::sleep_until(end);
    tokio::pin!(end);
    while client.claims.unsettled() > 0 {
        let due = client.claims.next_due();
        tokio::select! {
            _ = &mut end => {
                for _ in 0..client.claims.unsettled() {
                    ctx.error(&ClientError::new("claim_unanswered", "no reply in time"));
                }
                return true;
            }
            _ = tokio::time::sleep_until(due.unwrap_or_else(far_future)), if due.is_some() => {
                if let Err(err) = client.claims.send_due(&mut client.conn).await {
                    ctx.error(&err);
                    return false;
                }
            }
            frame = next_frame(client) => match frame {
                Ok(Some(frame)) => on_frame(ctx, client, frame),
                Ok(None) => {
                    ctx.error(&ClientError::new("server_closed", "socket closed"));
                    if !claim_elsewhere(ctx, client).await {
                        return false;
                    }
                }
                Err(err) => {
                    ctx.error(&err);
                    if err.code == "closed" && !claim_elsewhere(ctx, client).await {
                        return false;
                    }
                }
            },
        }
    }
    true
}

/// The client's node went away with claims unanswered: on another node, the same claims
/// again with the same keys. Returns whether the client could move.
async fn claim_elsewhere(ctx: &Ctx, client: &mut Client) -> bool {
    if !fail_over(ctx, client, None).await {
        return false;
    }
    match client.claims.resend_lost(&mut client.conn).await {
        Ok(()) => true,
        Err(err) => {
            ctx.error(&err);
            false
        }
    }
}

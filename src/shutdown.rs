//! Graceful shutdown: stop accepting, tell every client `server.going_away` with a jittered
//! reconnect delay, close sockets in batches spread over the drain time, then stop the HTTP
//! server and close the store.

use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web;
use bytestring::ByteString;
use corral_actors::CloseReason;
use corral_protocol::{Push, limits::close, reply};
use rand::Rng;

use crate::state::AppState;

/// Sockets closed per batch.
const BATCH: usize = 500;

/// Drains the node and stops it. Returns when the server has stopped.
pub async fn drain(state: web::Data<AppState>, server: ServerHandle) {
    state.start_draining();
    let drain = Duration::from_millis(state.settings.server.drain_ms);
    let jitter = state.settings.server.reconnect_jitter_ms.max(1);
    let live = state.hub.connections.snapshot();
    tracing::info!(connections = live.len(), ?drain, "draining");
    let batches = live.len().div_ceil(BATCH).max(1);
    // Spread the batches over (most of) the drain time, leaving room for the last writes.
    let pause = drain.mul_f64(0.8) / batches as u32;
    for (i, batch) in live.chunks(BATCH).enumerate() {
        for out in batch {
            let delay = rand::rng().random_range(0..jitter);
            let frame = reply::push(&Push::GoingAway {
                reconnect_after_ms: delay,
            });
            out.send(ByteString::from(frame));
            out.close(CloseReason::graceful(
                close::GOING_AWAY,
                "server restarting",
            ));
        }
        if i + 1 < batches {
            tokio::time::sleep(pause).await;
        }
    }
    let deadline = tokio::time::Instant::now() + drain.mul_f64(0.2).max(Duration::from_millis(200));
    while !state.hub.connections.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop(true).await;
    state.db.pool.close().await;
    tracing::info!("stopped");
}

//! Waiting on state, never on the clock. A test that needs something to have happened waits
//! for that thing with [`wait_until`] (a deadline that fails with what was last seen); a test
//! that needs something NOT to happen watches for the protocol's window ([`QUIET`], or a
//! longer one a test's settings promise) with `WsClient::assert_silent`.
//!
//! Deadlines are generous on purpose: they bound a broken server, they do not measure speed
//! (BENCHMARKS.md does). A passing test never waits for a deadline; only a failing one does.

use std::fmt::Debug;
use std::time::Duration;

/// How long a test waits for something the server is expected to do promptly (a reply, a
/// push, a row): far beyond any honest delay on a loaded two-core host.
pub const WAIT: Duration = Duration::from_secs(10);

/// The window within which a push the server was going to send has gone out: every delayed
/// delivery the protocol has — stock frames coalesced to
/// [`STOCK_EVERY_MS`](corral_actors::claims::service::STOCK_EVERY_MS), the claim desk's expiry
/// sweep every [`SWEEP_EVERY_MS`](corral_actors::claims::service::SWEEP_EVERY_MS), a
/// cross-node fan-out through Redis — is well inside it, with room for a loaded host. "Nothing
/// more arrives" means nothing within this window (or within a longer one that a test's own
/// settings promise, such as a stock frame budget).
pub const QUIET: Duration = Duration::from_secs(2);

/// How often [`wait_until`] looks again.
const POLL: Duration = Duration::from_millis(20);

/// Polls `probe` until it answers `Ok`, and returns that value; panics after `within` with
/// `what` and the last `Err` observation (what the state was instead).
///
/// ```ignore
/// wait_until("every socket closed", WAIT, async || {
///     let open = app.state.hub.connections.len();
///     if open == 0 { Ok(()) } else { Err(open) }
/// })
/// .await;
/// ```
pub async fn wait_until<T, E: Debug>(
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(seen) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "timed out after {within:?} waiting until {what}; last seen: {seen:?}"
                );
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `Ok(())` when `holds`, else `Err(seen)`: the common shape of a [`wait_until`] probe.
pub fn check<E>(holds: bool, seen: E) -> Result<(), E> {
    if holds { Ok(()) } else { Err(seen) }
}

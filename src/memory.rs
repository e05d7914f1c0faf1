//! Giving freed memory back to the operating system. Room actors that go idle free their
//! state, but glibc's allocator keeps freed pages in its arenas: after 20,000 rooms were opened
//! and left, the node's RSS stayed at its peak (106 MiB) until `malloc_trim` returned it
//! (34 MiB). The trimmer calls `malloc_trim(0)` on a blocking thread after room actors have
//! stopped, at most once per `server.memory_trim_secs`, so a busy node is not trimmed while
//! nothing was freed (trimming walks the heap with the arena locked).

use std::sync::Arc;
use std::time::Duration;

use corral_actors::Hub;
use corral_actors::metric_catalogue as metric;

/// Starts the trimmer on the current runtime (`every` zero: never).
pub fn spawn_trimmer(hub: Arc<Hub>, every: Duration) {
    if every.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = hub.rooms.forgotten();
        loop {
            tick.tick().await;
            let now = hub.rooms.forgotten();
            if now == seen {
                continue;
            }
            seen = now;
            if tokio::task::spawn_blocking(trim).await.is_ok() {
                metrics::counter!(metric::MEMORY_TRIMS).increment(1);
            }
        }
    });
}

/// Returns the allocator's free pages to the operating system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks and releases the allocator's own free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return memory on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

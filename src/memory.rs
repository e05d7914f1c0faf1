//! Giving freed memory back to the operating system. Room actors that go idle free their
//! state, but glibc's allocator keeps freed pages in its arenas: after 20,000 rooms were opened
//! and left, the node's RSS stayed at its peak (106 MiB) until `malloc_trim` returned it
//! (34 MiB). The trimmer calls `malloc_trim(0)` on a blocking thread after room actors have
//! stopped, at most once per `server.memory_trim_secs`, so a busy node is not trimmed while
//! nothing was freed (trimming walks the heap with the arena locked).
//!
//! It also says where the resident memory goes ([`publish_usage`], at each scrape): the bytes
//! the allocator has handed out and not had back, and of those SQLite's (page caches,
//! prepared statements), so a growing RSS can be told apart from fragmentation.

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

/// Publishes the memory in use: the allocator's and SQLite's.
pub fn publish_usage() {
    // SAFETY: sqlite3_memory_used only reads SQLite's own counter (thread-safe in the
    // serialized mode sqlx builds it in).
    let sqlite = unsafe { libsqlite3_sys::sqlite3_memory_used() };
    metrics::gauge!(metric::SQLITE_MEMORY).set(sqlite as f64);
    if let Some(heap) = heap_in_use() {
        metrics::gauge!(metric::HEAP_IN_USE).set(heap as f64);
    }
}

/// Bytes the allocator has handed out and not had back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_in_use() -> Option<usize> {
    // SAFETY: mallinfo2 only reads the allocator's own statistics.
    let info = unsafe { libc::mallinfo2() };
    Some(info.uordblks + info.hblkhd)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_in_use() -> Option<usize> {
    None
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

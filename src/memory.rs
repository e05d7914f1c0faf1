//! Giving freed memory back to the operating system. glibc's allocator keeps freed pages in
//! its arenas: after 20,000 rooms were opened and left, the node's RSS stayed at its peak
//! (106 MiB) until `malloc_trim` returned it (34 MiB); and under steady churn (the 30-minute
//! soak of reconnects, chat, posts and claims) RSS grew faster than the live heap, the
//! difference resident but free in the arenas. The trimmer looks every
//! `server.memory_trim_secs` and calls `malloc_trim(0)` on a blocking thread when the resident
//! memory outside the live heap has grown since the last trim by more than [`TrimRule`]
//! allows, so a node that freed nothing is not trimmed (trimming walks the heap with the arena
//! locked). The allocator's free bytes cannot tell: released pages stay counted as free.
//!
//! It also says where the resident memory goes ([`publish_usage`], at each scrape): the bytes
//! the allocator has handed out and not had back, the free bytes it keeps, and of those in use
//! SQLite's (page caches, prepared statements), so a growing RSS can be told apart from
//! fragmentation.

use std::time::Duration;

use corral_actors::metric_catalogue as metric;

/// Growth of the resident memory outside the live heap that never calls for a trim.
const SLACK_BYTES: usize = 1 << 20;

/// When to trim: once the resident memory outside the live heap (`rss - in_use`: free pages
/// the allocator kept, beside the binary and the stacks, which hardly move) has grown by more
/// than a mebibyte and a sixteenth of the heap in use since the last trim settled it.
#[derive(Debug, Default)]
struct TrimRule {
    /// `rss - in_use` right after the last trim (`None`: never trimmed).
    settled: Option<usize>,
}

impl TrimRule {
    fn due(&self, rss: usize, in_use: usize) -> bool {
        let Some(settled) = self.settled else {
            return true;
        };
        rss.saturating_sub(in_use) > settled + SLACK_BYTES.max(in_use / 16)
    }

    fn trimmed(&mut self, rss: usize, in_use: usize) {
        self.settled = Some(rss.saturating_sub(in_use));
    }
}

/// Starts the trimmer on the current runtime (`every` zero: never).
pub fn spawn_trimmer(every: Duration) {
    if every.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rule = TrimRule::default();
        loop {
            tick.tick().await;
            let Some((rss, now)) = resident().zip(heap()) else {
                return;
            };
            if !rule.due(rss, now.in_use) {
                continue;
            }
            if tokio::task::spawn_blocking(trim).await.is_err() {
                continue;
            }
            metrics::counter!(metric::MEMORY_TRIMS).increment(1);
            if let Some((rss, after)) = resident().zip(heap()) {
                rule.trimmed(rss, after.in_use);
            }
        }
    });
}

/// The process's resident set, from `/proc/self/statm`.
fn resident() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * usize::try_from(page).ok()?)
}

/// Publishes the memory in use (the allocator's and SQLite's) and the free memory the
/// allocator keeps.
pub fn publish_usage() {
    // SAFETY: sqlite3_memory_used only reads SQLite's own counter (thread-safe in the
    // serialized mode sqlx builds it in).
    let sqlite = unsafe { libsqlite3_sys::sqlite3_memory_used() };
    metrics::gauge!(metric::SQLITE_MEMORY).set(sqlite as f64);
    if let Some(heap) = heap() {
        metrics::gauge!(metric::HEAP_IN_USE).set(heap.in_use as f64);
        metrics::gauge!(metric::HEAP_FREE).set(heap.free as f64);
    }
}

/// The allocator's own account of its heap.
struct Heap {
    /// Bytes handed out and not had back.
    in_use: usize,
    /// Free bytes kept in the arenas (not returned to the operating system).
    free: usize,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap() -> Option<Heap> {
    // SAFETY: mallinfo2 only reads the allocator's own statistics.
    let info = unsafe { libc::mallinfo2() };
    Some(Heap {
        in_use: info.uordblks + info.hblkhd,
        free: info.fordblks,
    })
}

/// Other allocators do not say (and return memory on their own).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap() -> Option<Heap> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_first_look_trims() {
        assert!(TrimRule::default().due(40 * MIB, 17 * MIB));
    }

    #[test]
    fn a_node_that_freed_nothing_is_not_trimmed_again() {
        let mut rule = TrimRule::default();
        rule.trimmed(40 * MIB, 17 * MIB);
        // The heap grew, the memory outside it did not.
        assert!(!rule.due(42 * MIB, 19 * MIB));
        assert!(!rule.due(41 * MIB, 17 * MIB));
    }

    #[test]
    fn kept_free_pages_past_the_slack_are_given_back() {
        let mut rule = TrimRule::default();
        rule.trimmed(40 * MIB, 17 * MIB);
        assert!(rule.due(42 * MIB + 1, 17 * MIB));
        // A crowd left: the heap shrank, its pages stayed resident.
        assert!(rule.due(106 * MIB, 34 * MIB));
    }

    #[test]
    fn a_large_heap_gets_a_sixteenth_of_slack() {
        let mut rule = TrimRule::default();
        rule.trimmed(200 * MIB, 160 * MIB);
        assert!(!rule.due(210 * MIB, 160 * MIB));
        assert!(rule.due(210 * MIB + 1, 160 * MIB));
    }
}

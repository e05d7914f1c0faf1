//! The countdown cadence, as pure functions of the server clock.
//!
//! Before an activity starts its actor pushes `activity.countdown` at whole seconds before
//! `starts_at`: every [`COARSE_EVERY_SECS`] seconds while more than [`FINAL_SECS`] seconds are
//! left, then every second. A tick for `k` seconds left is due at `starts_at - k * 1000`, so
//! every subscriber sees the same `seconds_left` values whatever the time it subscribed.

use corral_protocol::EpochMs;

/// Spacing of ticks, in seconds, while more than [`FINAL_SECS`] are left.
pub const COARSE_EVERY_SECS: i64 = 10;

/// In the last this-many seconds a tick is pushed every second.
pub const FINAL_SECS: i64 = 60;

/// Whether a tick is pushed with `seconds_left` = `k`.
pub fn is_tick(k: i64) -> bool {
    k >= 1 && (k <= FINAL_SECS || k % COARSE_EVERY_SECS == 0)
}

/// The next tick to send at `now`: `(seconds_left, due_at)`. When `due_at <= now` it is due
/// already (its instant passed less than a second ago, or is now); otherwise it is the next
/// one to arm a timer for. `below` is the last tick sent: ticks only go down, so none is sent
/// twice. `None` when no tick is left before the start.
pub fn next_tick(starts_at: EpochMs, now: EpochMs, below: Option<i64>) -> Option<(i64, EpochMs)> {
    let left = starts_at - now;
    if left <= 0 {
        return None;
    }
    // The tick whose instant is now or passed within the last second.
    let mut k = (left + 999).div_euclid(1000);
    if let Some(last) = below {
        k = k.min(last - 1);
    }
    if k > FINAL_SECS {
        k -= k % COARSE_EVERY_SECS;
    }
    (k >= 1).then_some((k, starts_at - k * 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_follow_the_cadence() {
        let start = 1_000_000;
        // 125.5 s before the start the next tick is 120 s before it, at 120 s left.
        assert_eq!(
            next_tick(start, start - 125_500, None),
            Some((120, start - 120_000))
        );
        // Exactly on a tick instant, that tick is due now.
        assert_eq!(
            next_tick(start, start - 60_000, None),
            Some((60, start - 60_000))
        );
        // A timer fires a little late: its tick is still the one due.
        assert_eq!(
            next_tick(start, start - 59_997, None),
            Some((60, start - 60_000))
        );
        // In the last minute, every second.
        assert_eq!(
            next_tick(start, start - 60_000, Some(60)),
            Some((59, start - 59_000))
        );
        // A tick sent is not sent again, even when the clock has not moved.
        assert_eq!(
            next_tick(start, start - 2_000, Some(2)),
            Some((1, start - 1_000))
        );
        assert_eq!(
            next_tick(start, start - 999, None),
            Some((1, start - 1_000))
        );
        // After the last tick, the next event is the start itself.
        assert_eq!(next_tick(start, start - 999, Some(1)), None);
        assert_eq!(next_tick(start, start, None), None);
        assert_eq!(next_tick(start, start + 5, None), None);
    }

    #[test]
    fn every_tick_is_on_the_cadence() {
        let start = 10_000_000;
        let mut now = start - 200_000;
        let mut last = None;
        let mut seen = Vec::new();
        while let Some((k, at)) = next_tick(start, now, last) {
            assert!(at >= now && is_tick(k));
            seen.push(k);
            last = Some(k);
            now = at;
        }
        assert_eq!(&seen[..3], &[200, 190, 180]);
        assert_eq!(seen.iter().filter(|k| **k <= FINAL_SECS).count(), 60);
        assert_eq!(seen.last(), Some(&1));
    }
}

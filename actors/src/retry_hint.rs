//! How long a client should wait before trying again, when the node refuses or closes for
//! load (a shed request, a slow-consumer close, an admission refusal at the upgrade).
//!
//! The delay grows with the node's overload level (or, for a join the join budget refused,
//! with the members waiting for it: [`spread`]) and is jittered uniformly in `[d/2, d)`,
//! so a crowd told to wait at the same moment comes back spread out instead of as a second
//! wave. It is bounded: never under [`MIN`], never over [`MAX`].

use std::time::Duration;

/// The shortest hint: level 0 (the node is not shedding) gives `[MIN, 2 * MIN)`.
pub const MIN: Duration = Duration::from_millis(500);

/// The longest hint (exclusive bound): level 3 (only critical ops served) gives `[MAX/2, MAX)`.
pub const MAX: Duration = Duration::from_millis(8_000);

/// The delay for overload `level` (0 to 3; higher levels count as 3) and a jitter sample
/// `unit` in `[0, 1)` (out-of-range samples are clamped). Pure: the caller draws the sample.
///
/// The base doubles per level (1 s, 2 s, 4 s, 8 s) and the result is uniform in
/// `[base/2, base)`, so it always lies in `[MIN, MAX)`.
pub fn delay(level: u8, unit: f64) -> Duration {
    jitter_below((2 * millis(MIN)) << level.min(3), unit)
}

/// Uniform in `[base/2, base)` for a jitter sample `unit` in `[0, 1)` (out-of-range samples
/// are clamped), within `[MIN, MAX)`.
fn jitter_below(base_ms: u64, unit: f64) -> Duration {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    // Whole milliseconds, rounded down, as the wire carries them: a fraction would be rounded
    // up on the way out and could reach `base` itself. `unit == 1.0` would too; keep the upper
    // bound exclusive.
    let wait_ms = (base_ms as f64 / 2.0 * (1.0 + unit)) as u64;
    Duration::from_millis(wait_ms.min(base_ms - 1)).clamp(MIN, MAX - Duration::from_millis(1))
}

/// [`delay`] with a fresh random sample: what the node actually tells a client.
pub fn jittered(level: u8) -> Duration {
    delay(level, rand::random::<f64>())
}

/// A hint for a client refused until the node has room for it, about `expected` from now:
/// uniform in `[d/2, d)` for `d` = `expected` held within the bounds, from a jitter sample
/// `unit` in `[0, 1)`. Pure: the caller draws the sample.
pub fn spread_delay(expected: Duration, unit: f64) -> Duration {
    jitter_below(millis(expected.clamp(2 * MIN, MAX)), unit)
}

/// [`spread_delay`] with a fresh random sample.
pub fn spread(expected: Duration) -> Duration {
    spread_delay(expected, rand::random::<f64>())
}

/// The machine-readable close reason carrying a hint, `{"retry_after_ms":N}` (at most 26
/// bytes, well under the 123-byte limit of a close frame's reason).
pub fn close_reason(wait: Duration) -> String {
    format!(r#"{{"retry_after_ms":{}}}"#, millis(wait))
}

/// A hint in whole milliseconds, as the wire carries it.
pub fn millis(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_bounds_at_every_level_and_sample() {
        for level in 0..=5u8 {
            for unit in [0.0, 0.25, 0.5, 0.999_999, 1.0, -3.0, 7.0, f64::NAN] {
                let wait = delay(level, unit);
                assert!(wait >= MIN && wait < MAX, "{level} {unit}: {wait:?}");
            }
        }
    }

    #[test]
    fn a_hint_is_whole_milliseconds_below_its_level_bound() {
        // Just under 1.0: a fraction of a millisecond below 2 s must not round up to 2 s.
        let wait = delay(1, 0.999_999_9);
        assert_eq!(wait.subsec_nanos() % 1_000_000, 0);
        assert_eq!(wait, Duration::from_millis(1_999));
    }

    #[test]
    fn grows_with_the_level() {
        let low = (0..=3).map(|level| delay(level, 0.0)).collect::<Vec<_>>();
        assert_eq!(
            low,
            [500, 1_000, 2_000, 4_000]
                .map(Duration::from_millis)
                .to_vec()
        );
        for level in 0..3 {
            // Even the longest wait at one level is no longer than the shortest at the next.
            assert!(delay(level, 0.999) <= delay(level + 1, 0.0));
        }
    }

    #[test]
    fn jitter_spreads_a_crowd_over_half_the_base() {
        assert_eq!(delay(1, 0.5), Duration::from_millis(1_500));
        let waits = (0..200).map(|_| jittered(2)).collect::<Vec<_>>();
        assert!(
            waits
                .iter()
                .all(|w| *w >= Duration::from_secs(2) && *w < Duration::from_secs(4))
        );
        let distinct = waits
            .iter()
            .map(|w| w.as_millis())
            .collect::<std::collections::HashSet<_>>();
        assert!(
            distinct.len() > 50,
            "a crowd spreads out: {}",
            distinct.len()
        );
    }

    #[test]
    fn a_spread_hint_follows_the_expected_wait_within_bounds() {
        let s = Duration::from_secs;
        assert_eq!(spread_delay(s(4), 0.0), s(2));
        assert_eq!(spread_delay(s(4), 0.5), s(3));
        for expected in [Duration::ZERO, s(1), s(7), s(60), Duration::MAX] {
            for unit in [0.0, 0.5, 1.0, f64::NAN] {
                let wait = spread_delay(expected, unit);
                assert!(wait >= MIN && wait < MAX, "{expected:?} {unit}: {wait:?}");
            }
        }
    }

    #[test]
    fn close_reason_is_small_json() {
        let reason = close_reason(Duration::from_millis(2_300));
        assert_eq!(reason, r#"{"retry_after_ms":2300}"#);
        assert!(close_reason(Duration::MAX).len() < 123);
        let parsed: serde_json::Value = serde_json::from_str(&reason).unwrap_or_default();
        assert_eq!(parsed["retry_after_ms"], 2300);
    }
}

//! Fan-out pressure: how many connections the node closed lately for not keeping up with their
//! pushes (4008, queue full or too far behind). A node that had to drop members it could not
//! serve should not take new ones in their place: while the pressure lasts, `room.join` is
//! refused with a retry hint, so the members it keeps are served at full rate and the dropped
//! ones come back once it can carry them, instead of being dropped again (the storm).
//!
//! Pure: the caller passes the clock.

use std::time::{Duration, Instant};

/// Slow-consumer closes counted in windows of `window`; the pressure lasts `window` after the
/// last one.
#[derive(Debug, Clone)]
pub struct Pressure {
    window: Duration,
    /// Start of the current counting window and the closes counted in it.
    counted: Option<(Instant, u32)>,
    /// The last close.
    last: Option<Instant>,
}

impl Pressure {
    /// No pressure; closes are remembered for `window`.
    pub fn new(window: Duration) -> Pressure {
        Pressure {
            window,
            counted: None,
            last: None,
        }
    }

    /// A connection was closed as a slow consumer at `now`.
    pub fn note(&mut self, now: Instant) {
        let (start, n) = match self.counted {
            Some((start, n)) if now.saturating_duration_since(start) < self.window => (start, n),
            _ => (now, 0),
        };
        self.counted = Some((start, n.saturating_add(1)));
        self.last = Some(now);
    }

    /// 0 when no slow consumer was closed within the window before `now`; else 1, 2 or 3 for
    /// at least 1, 10 or 100 closes in the current window (the retry hint grows with it).
    pub fn level(&self, now: Instant) -> u8 {
        let recent = self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < self.window);
        if self.window.is_zero() || !recent {
            return 0;
        }
        let count = self.counted.map_or(0, |(_, n)| n);
        match count {
            0..10 => 1,
            10..100 => 2,
            _ => 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn no_close_no_pressure() {
        assert_eq!(Pressure::new(5 * S).level(Instant::now()), 0);
    }

    #[test]
    fn pressure_lasts_a_window_after_the_last_close() {
        let t0 = Instant::now();
        let mut p = Pressure::new(5 * S);
        p.note(t0);
        assert_eq!(p.level(t0), 1);
        assert_eq!(p.level(t0 + 4 * S), 1);
        assert_eq!(p.level(t0 + 5 * S), 0);
        p.note(t0 + 4 * S);
        assert_eq!(
            p.level(t0 + 8 * S),
            1,
            "the window runs from the last close"
        );
        assert_eq!(p.level(t0 + 9 * S), 0);
    }

    #[test]
    fn the_level_grows_with_the_closes_of_the_window() {
        let t0 = Instant::now();
        let mut p = Pressure::new(5 * S);
        for i in 0..9 {
            p.note(t0 + Duration::from_millis(i));
        }
        assert_eq!(p.level(t0 + S), 1);
        p.note(t0 + S);
        assert_eq!(p.level(t0 + S), 2);
        for _ in 0..90 {
            p.note(t0 + 2 * S);
        }
        assert_eq!(p.level(t0 + 2 * S), 3);
        // A new window counts afresh.
        p.note(t0 + 6 * S);
        assert_eq!(p.level(t0 + 6 * S), 1);
    }

    #[test]
    fn a_zero_window_disables_it() {
        let t0 = Instant::now();
        let mut p = Pressure::new(Duration::ZERO);
        p.note(t0);
        assert_eq!(p.level(t0), 0);
    }
}

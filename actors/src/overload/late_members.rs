//! Members served late: the share of a second's lag probes (a ping queued behind a
//! connection's pushes, timed to its pong) answered later than a bound. One member on a bad
//! link is its own affair; more than [`SHARE`] of a second's probes late means the node is not
//! serving its members in time, which counts as fan-out pressure.
//!
//! Pure: the caller passes the clock.

use std::time::{Duration, Instant};

/// The share of a second's probes that may be late before it counts.
pub const SHARE: f64 = 0.01;

const SECOND: Duration = Duration::from_secs(1);

/// Probes and late probes, counted a second at a time.
#[derive(Debug, Clone)]
pub struct LateMembers {
    bound: Duration,
    start: Instant,
    probes: u32,
    late: u32,
}

impl LateMembers {
    /// Probes answered later than `bound` count as late (zero: none ever does).
    pub fn new(bound: Duration, now: Instant) -> LateMembers {
        LateMembers {
            bound,
            start: now,
            probes: 0,
            late: 0,
        }
    }

    /// A probe was answered `lag` after it was sent, at `now`. True when this closes a second
    /// in which more than [`SHARE`] of the probes were late.
    pub fn note(&mut self, lag: Duration, now: Instant) -> bool {
        if self.bound.is_zero() {
            return false;
        }
        let mut late_second = false;
        if now.saturating_duration_since(self.start) >= SECOND {
            late_second = self.late > 0 && f64::from(self.late) > f64::from(self.probes) * SHARE;
            self.start = now;
            self.probes = 0;
            self.late = 0;
        }
        self.probes = self.probes.saturating_add(1);
        if lag > self.bound {
            self.late = self.late.saturating_add(1);
        }
        late_second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn second(t: Instant, probes: u32, late: u32) -> (LateMembers, Instant) {
        let mut m = LateMembers::new(2_000 * MS, t);
        for i in 0..probes {
            let lag = if i < late { 2_500 * MS } else { 30 * MS };
            assert!(
                !m.note(lag, t + MS * i.min(900)),
                "no verdict within the second"
            );
        }
        (m, t + SECOND)
    }

    #[test]
    fn a_second_with_more_than_the_share_late_counts() {
        let t0 = Instant::now();
        let (mut m, next) = second(t0, 1_000, 11);
        assert!(m.note(10 * MS, next));
        assert!(!m.note(10 * MS, next), "counted once");
    }

    #[test]
    fn one_slow_link_among_many_does_not() {
        let t0 = Instant::now();
        let (mut m, next) = second(t0, 1_000, 10);
        assert!(!m.note(10 * MS, next), "1% exactly");
        let (mut none, next) = second(t0, 50, 0);
        assert!(!none.note(10 * MS, next));
    }

    #[test]
    fn a_zero_bound_counts_nothing() {
        let t0 = Instant::now();
        let mut m = LateMembers::new(Duration::ZERO, t0);
        m.note(60 * SECOND, t0);
        assert!(!m.note(60 * SECOND, t0 + 2 * SECOND));
    }
}

//! Re-admission of room members under fan-out pressure: how many new members a second the
//! node takes in while it is not serving the ones it has in time.
//!
//! A hard gate (no new member while the pressure lasts) locks out the members it dropped for
//! as long as the pressure is renewed, and then lets them all back at once: a second wave.
//! The budget paces joins instead, the way TCP paces a sender: the first pressure sets it to
//! half the joins of the last second, each further second with pressure halves it again, and
//! each second without grows it by a quarter (at least [`STEP`] joins a second). Once no join
//! was refused and no pressure was felt for `calm`, joins are unlimited again. Churn takes
//! members away, and the budget lets back as many as the fan-out stays in time with, so the
//! node settles at the members it can serve. It never goes below [`FLOOR`]: a refused member
//! always gets in eventually.
//!
//! Pure: the caller passes the clock.

use std::time::{Duration, Instant};

/// The least joins a second a budget allows.
pub const FLOOR: f64 = 1.0;

/// The least a second without pressure adds to the budget (joins a second).
pub const STEP: f64 = 2.0;

/// The longest wait a refused member is asked for (the hint's jitter is applied on top).
const LONGEST_WAIT: Duration = Duration::from_secs(8);

/// No budget grows past this (joins a second): it is unlimited long before.
const CEILING: f64 = 1_000_000.0;

const SECOND: Duration = Duration::from_secs(1);

/// Events of the last whole second (or of the current one, when more).
#[derive(Debug, Clone, Copy)]
struct PerSecond {
    start: Instant,
    current: u32,
    last: u32,
}

impl PerSecond {
    fn new(now: Instant) -> PerSecond {
        PerSecond {
            start: now,
            current: 0,
            last: 0,
        }
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed >= 2 * SECOND {
            *self = PerSecond::new(now);
        } else if elapsed >= SECOND {
            self.last = self.current;
            self.current = 0;
            self.start += SECOND;
        }
    }

    fn add(&mut self, now: Instant) {
        self.roll(now);
        self.current = self.current.saturating_add(1);
    }

    fn rate(&mut self, now: Instant) -> f64 {
        self.roll(now);
        f64::from(self.last.max(self.current))
    }
}

/// A budget in force: the joins a second allowed, as a token bucket holding at most one
/// second of them.
#[derive(Debug, Clone, Copy)]
struct Limit {
    rate: f64,
    tokens: f64,
    refilled: Instant,
    /// The last halving.
    cut: Instant,
    /// The last pressure, or the last second the budget grew.
    grown: Instant,
    pressure: Instant,
    refusal: Option<Instant>,
}

impl Limit {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.refilled = now;
    }

    fn grow(&mut self, now: Instant) {
        while now.saturating_duration_since(self.grown) >= SECOND && self.rate < CEILING {
            self.rate = (self.rate + (self.rate / 4.0).max(STEP)).min(CEILING);
            self.grown += SECOND;
        }
    }

    fn calm(&self, now: Instant, calm: Duration) -> bool {
        let quiet = |at: Instant| now.saturating_duration_since(at) >= calm;
        quiet(self.pressure) && self.refusal.is_none_or(quiet)
    }
}

/// What a join is told.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// Take the member in.
    Admitted,
    /// Refuse it: about this long until the budget has room for the members waiting (before
    /// jitter).
    Wait(Duration),
}

/// The node's join budget (see the module doc).
#[derive(Debug, Clone)]
pub struct JoinBudget {
    calm: Duration,
    limit: Option<Limit>,
    admitted: PerSecond,
    refused: PerSecond,
}

impl JoinBudget {
    /// Unlimited until the first pressure; unlimited again after `calm` without pressure or
    /// refusal (zero: never limited).
    pub fn new(calm: Duration, now: Instant) -> JoinBudget {
        JoinBudget {
            calm,
            limit: None,
            admitted: PerSecond::new(now),
            refused: PerSecond::new(now),
        }
    }

    /// The node is not serving its members in time (at `now`).
    pub fn pressure(&mut self, now: Instant) {
        if self.calm.is_zero() {
            return;
        }
        match &mut self.limit {
            None => {
                let rate = (self.admitted.rate(now) / 2.0).max(FLOOR);
                self.limit = Some(Limit {
                    rate,
                    tokens: 0.0,
                    refilled: now,
                    cut: now,
                    grown: now,
                    pressure: now,
                    refusal: None,
                });
            }
            Some(limit) => {
                limit.refill(now);
                if now.saturating_duration_since(limit.cut) >= SECOND {
                    limit.rate = (limit.rate / 2.0).max(FLOOR);
                    limit.tokens = limit.tokens.min(limit.rate.max(1.0));
                    limit.cut = now;
                }
                limit.pressure = now;
                limit.grown = now;
            }
        }
    }

    /// Whether a join at `now` is taken in; counted either way.
    pub fn admit(&mut self, now: Instant) -> Admission {
        if let Some(limit) = &self.limit
            && limit.calm(now, self.calm)
        {
            self.limit = None;
        }
        let Some(limit) = &mut self.limit else {
            self.admitted.add(now);
            return Admission::Admitted;
        };
        limit.refill(now);
        limit.grow(now);
        if limit.tokens >= 1.0 {
            limit.tokens -= 1.0;
            self.admitted.add(now);
            return Admission::Admitted;
        }
        limit.refusal = Some(now);
        self.refused.add(now);
        // The members refused in the last second come back spread over the time the budget
        // takes to admit them all.
        let waiting = self.refused.rate(now);
        let wait = Duration::from_secs_f64((waiting / limit.rate).min(LONGEST_WAIT.as_secs_f64()));
        Admission::Wait(wait.max(SECOND))
    }

    /// The joins a second allowed now (`None`: unlimited).
    pub fn rate(&self) -> Option<f64> {
        self.limit.map(|limit| limit.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn admitted(budget: &mut JoinBudget, at: Instant, tries: usize) -> usize {
        (0..tries)
            .filter(|_| budget.admit(at) == Admission::Admitted)
            .count()
    }

    #[test]
    fn unlimited_until_pressure() {
        let t0 = Instant::now();
        let mut b = JoinBudget::new(5_000 * MS, t0);
        assert_eq!(admitted(&mut b, t0, 1_000), 1_000);
        assert_eq!(b.rate(), None);
    }

    #[test]
    fn the_first_pressure_halves_the_joins_of_the_last_second() {
        let t0 = Instant::now();
        let mut b = JoinBudget::new(5_000 * MS, t0);
        admitted(&mut b, t0 + 500 * MS, 100);
        b.pressure(t0 + 1_100 * MS);
        assert_eq!(b.rate(), Some(50.0));
        assert_eq!(admitted(&mut b, t0 + 1_100 * MS, 10), 0, "no tokens yet");
        // A second later: one second's worth, no more.
        assert_eq!(admitted(&mut b, t0 + 2_100 * MS, 100), 50);
    }

    #[test]
    fn pressure_halves_at_most_once_a_second_and_never_below_the_floor() {
        let t0 = Instant::now();
        let mut b = JoinBudget::new(5_000 * MS, t0);
        admitted(&mut b, t0, 64);
        b.pressure(t0 + 10 * MS);
        assert_eq!(b.rate(), Some(32.0));
        b.pressure(t0 + 500 * MS);
        assert_eq!(b.rate(), Some(32.0), "once a second");
        for s in 1..20 {
            b.pressure(t0 + s * 1_010 * MS);
        }
        assert_eq!(b.rate(), Some(FLOOR));
        let later = t0 + 20_000 * MS;
        b.pressure(later);
        admitted(&mut b, later, 10);
        assert_eq!(admitted(&mut b, later + 999 * MS, 10), 0);
        assert_eq!(
            admitted(&mut b, later + 1_001 * MS, 10),
            1,
            "the floor admits one a second"
        );
    }

    #[test]
    fn it_grows_by_a_quarter_each_second_without_pressure() {
        let t0 = Instant::now();
        let mut b = JoinBudget::new(60_000 * MS, t0);
        admitted(&mut b, t0, 80);
        b.pressure(t0);
        assert_eq!(b.rate(), Some(40.0));
        b.admit(t0 + 999 * MS);
        assert_eq!(b.rate(), Some(40.0));
        b.admit(t0 + 1_000 * MS);
        assert_eq!(b.rate(), Some(50.0));
        b.admit(t0 + 3_000 * MS);
        assert_eq!(b.rate(), Some(50.0 * 1.25 * 1.25));
        // From the floor, by the step.
        let mut low = JoinBudget::new(60_000 * MS, t0);
        low.pressure(t0);
        low.admit(t0 + 1_000 * MS);
        assert_eq!(low.rate(), Some(FLOOR + STEP));
    }

    #[test]
    fn unlimited_again_only_when_calm_and_nobody_is_waiting() {
        let t0 = Instant::now();
        let mut b = JoinBudget::new(2_000 * MS, t0);
        b.pressure(t0);
        // Refused members keep coming back: still limited after the calm period.
        for ms in (100..3_000).step_by(100) {
            b.admit(t0 + ms * MS);
        }
        assert!(b.rate().is_some());
        // Two seconds without pressure and without a refusal.
        let quiet = t0 + 10_000 * MS;
        b.admit(quiet);
        assert_eq!(admitted(&mut b, quiet + 2_000 * MS, 1_000), 1_000);
        assert_eq!(b.rate(), None);
    }

    #[test]
    fn the_wait_grows_with_the_members_refused_against_the_budget() {
        let t0 = Instant::now();
        let mut b = JoinBudget::new(5_000 * MS, t0);
        b.pressure(t0);
        let Admission::Wait(first) = b.admit(t0) else {
            panic!("refused")
        };
        assert_eq!(first, SECOND, "never under a second");
        let mut wait = first;
        for _ in 0..20 {
            if let Admission::Wait(w) = b.admit(t0 + 10 * MS) {
                wait = w;
            }
        }
        assert!(wait > 4 * SECOND, "21 waiting at 1 a second: {wait:?}");
        assert!(wait <= LONGEST_WAIT);
    }

    #[test]
    fn a_zero_calm_never_limits() {
        let t0 = Instant::now();
        let mut b = JoinBudget::new(Duration::ZERO, t0);
        b.pressure(t0);
        assert_eq!(admitted(&mut b, t0, 100), 100);
    }
}

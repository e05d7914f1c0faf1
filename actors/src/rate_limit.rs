//! A token bucket, the rate limiter used per connection, per user and for new connections.

use std::time::Instant;

/// A classic token bucket: `burst` tokens, refilled at `per_sec` tokens per second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_sec: f64, burst: f64) -> Self {
        TokenBucket {
            capacity: burst.max(1.0),
            per_sec: per_sec.max(0.0),
            tokens: burst.max(1.0),
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self) -> bool {
        self.try_take_at(Instant::now())
    }

    /// Takes one token at the given instant (testable without sleeping).
    pub fn try_take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_a_burst_then_refills() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 3.0);
        assert!(bucket.try_take_at(t0));
        assert!(bucket.try_take_at(t0));
        assert!(bucket.try_take_at(t0));
        assert!(!bucket.try_take_at(t0));
        assert!(!bucket.try_take_at(t0 + Duration::from_millis(50)));
        assert!(bucket.try_take_at(t0 + Duration::from_millis(150)));
        // Never more than the burst, however long idle.
        let later = t0 + Duration::from_secs(60);
        let taken = (0..10).filter(|_| bucket.try_take_at(later)).count();
        assert_eq!(taken, 3);
    }
}

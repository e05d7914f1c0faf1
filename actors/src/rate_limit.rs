//! A token bucket, the rate limiter used per connection, per user and for new connections,
//! and [`KeyedLimiter`], one bucket per key (client IP, account, user) with bounded memory.
//!
//! Hand-written rather than `governor`: a user's budget shared over a cluster needs
//! [`TokenBucket::cap_at`] (hold a bucket to what the cluster says is left, down to a debt),
//! and governor's GCRA state can only be checked, never set or put in debt. Governor's checks
//! measure faster (10 against 37 ns, `examples/rate_limit_bench.rs`, BENCHMARKS.md), most of
//! the difference being the clock: `Instant::now` is ~26 ns of ours, governor reads quanta's.

use std::hash::Hash;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::metric_catalogue as metric;

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

    /// How long until a token is available at `now` (zero when one is).
    pub fn wait_at(&self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        if tokens >= 1.0 {
            Duration::ZERO
        } else if self.per_sec <= 0.0 {
            Duration::MAX
        } else {
            Duration::from_secs_f64((1.0 - tokens) / self.per_sec)
        }
    }

    /// Refills to `now`, then holds at most `tokens` (which may be negative: a debt that
    /// must refill before the next token).
    pub fn cap_at(&mut self, now: Instant, tokens: f64) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec)
            .min(self.capacity)
            .min(tokens);
    }

    /// Whether the bucket has refilled to its burst by `now` (it then carries no history and
    /// may be forgotten).
    fn is_full_at(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.per_sec >= self.capacity
    }
}

/// One token bucket per key, for limits keyed by something a client chooses or many clients
/// have (an IP address, an account name, a user). Memory is bounded: past `max_keys` keys,
/// buckets that have refilled are forgotten; if every bucket is still in use, all are
/// forgotten (the limit then fails open for a moment rather than growing without bound).
pub struct KeyedLimiter<K: Hash + Eq> {
    per_sec: f64,
    burst: f64,
    max_keys: usize,
    buckets: DashMap<K, TokenBucket>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// `per_sec` sustained and `burst` at once for each key, remembering at most `max_keys`.
    pub fn new(per_sec: f64, burst: f64, max_keys: usize) -> Self {
        KeyedLimiter {
            per_sec,
            burst,
            max_keys: max_keys.max(1),
            buckets: DashMap::new(),
        }
    }

    /// Takes a token for `key`, or says how long until one is available.
    pub fn check(&self, key: K) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// As [`KeyedLimiter::check`] at a given instant (testable without sleeping).
    pub fn check_at(&self, key: K, now: Instant) -> Result<(), Duration> {
        if self.buckets.len() >= self.max_keys && !self.buckets.contains_key(&key) {
            self.buckets.retain(|_, bucket| !bucket.is_full_at(now));
            if self.buckets.len() >= self.max_keys {
                metrics::counter!(metric::RATE_LIMITER_RESETS).increment(1);
                self.buckets.clear();
            }
        }
        let mut bucket = self
            .buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::new(self.per_sec, self.burst));
        // A new bucket starts full at its creation instant; `now` may be earlier in tests.
        if bucket.try_take_at(now) {
            Ok(())
        } else {
            Err(bucket.wait_at(now))
        }
    }

    /// Holds `key`'s bucket at no more than `tokens` from `now` (a key it does not remember
    /// has spent nothing here and is left alone).
    pub fn cap_at(&self, key: &K, now: Instant, tokens: f64) {
        if let Some(mut bucket) = self.buckets.get_mut(key) {
            bucket.cap_at(now, tokens);
        }
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn says_how_long_until_the_next_token() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(2.0, 1.0);
        assert_eq!(bucket.wait_at(t0), Duration::ZERO);
        assert!(bucket.try_take_at(t0));
        let wait = bucket.wait_at(t0);
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500));
    }

    #[test]
    fn keyed_limits_each_key_apart_and_forgets_idle_keys() {
        let t0 = Instant::now();
        let limiter = KeyedLimiter::new(1.0, 2.0, 3);
        assert!(limiter.check_at("a", t0).is_ok());
        assert!(limiter.check_at("a", t0).is_ok());
        assert!(limiter.check_at("a", t0).is_err());
        assert!(limiter.check_at("b", t0).is_ok());
        assert!(limiter.check_at("c", t0).is_ok());
        assert_eq!(limiter.len(), 3);
        // Later, every bucket has refilled: a new key makes room by forgetting them.
        let later = t0 + Duration::from_secs(10);
        assert!(limiter.check_at("d", later).is_ok());
        assert_eq!(limiter.len(), 1);
        // "a" starts over, full.
        assert!(limiter.check_at("a", later).is_ok());
        assert!(limiter.check_at("a", later).is_ok());
        assert!(limiter.check_at("a", later).is_err());
    }

    #[test]
    fn a_cap_below_zero_is_a_debt_that_refills_first() {
        let t0 = Instant::now();
        let limiter = KeyedLimiter::new(10.0, 5.0, 10);
        assert!(limiter.check_at("a", t0).is_ok());
        limiter.cap_at(&"a", t0, -2.0);
        // Three tokens to refill before one is whole: 300 ms at 10 per second.
        let wait = limiter.check_at("a", t0).expect_err("in debt");
        assert!(wait > Duration::from_millis(290) && wait <= Duration::from_millis(300));
        assert!(
            limiter
                .check_at("a", t0 + Duration::from_millis(310))
                .is_ok()
        );
        // A cap above what the bucket holds changes nothing; an unknown key is not added.
        limiter.cap_at(&"a", t0 + Duration::from_millis(310), 100.0);
        assert!(
            limiter
                .check_at("a", t0 + Duration::from_millis(310))
                .is_err()
        );
        limiter.cap_at(&"b", t0, -10.0);
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn keyed_memory_stays_bounded_under_a_flood_of_keys() {
        let t0 = Instant::now();
        let limiter = KeyedLimiter::new(0.001, 1.0, 100);
        for n in 0..10_000 {
            let _ = limiter.check_at(n, t0);
            assert!(limiter.len() <= 100);
        }
    }
}

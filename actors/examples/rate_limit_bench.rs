//! The cost of one rate-limit check: Corral's `TokenBucket` and `KeyedLimiter` beside
//! `governor` (the well-kept crate they were measured against before staying hand-written),
//! single-threaded, every check allowed (a bucket too large to run dry), best of 5 rounds.
//!
//! `cargo run --release -p corral-actors --example rate_limit_bench`

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use corral_actors::rate_limit::{KeyedLimiter, TokenBucket};
use governor::{Quota, RateLimiter};

const CHECKS: u32 = 20_000_000;
const KEYS: u32 = 10_000;
const ROUNDS: usize = 5;

/// Nanoseconds per call of `check`, the best of [`ROUNDS`] rounds of [`CHECKS`] calls.
fn per_check(mut check: impl FnMut(u32) -> bool) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let mut allowed = 0u32;
        for i in 0..CHECKS {
            allowed += u32::from(check(black_box(i)));
        }
        assert_eq!(
            allowed, CHECKS,
            "every check is allowed, or the figure is not comparable"
        );
        best = best.min(started.elapsed());
    }
    best.as_nanos() as f64 / f64::from(CHECKS)
}

fn main() {
    let huge = 1e12;
    let quota = Quota::per_second(NonZeroU32::MAX).allow_burst(NonZeroU32::MAX);

    let mut bucket = TokenBucket::new(huge, huge);
    let corral_one = per_check(|_| bucket.try_take());
    let governor_one = RateLimiter::direct(quota);
    let governor_one = per_check(|_| governor_one.check().is_ok());

    let keyed = KeyedLimiter::new(huge, huge, KEYS as usize);
    let corral_keyed = per_check(|i| keyed.check(i % KEYS).is_ok());
    let governor_keyed = RateLimiter::dashmap(quota);
    let governor_keyed = per_check(|i| governor_keyed.check_key(&(i % KEYS)).is_ok());

    let clock = per_check(|_| black_box(Instant::now()).elapsed() < Duration::from_secs(3600));

    println!("check                  corral ns  governor ns");
    println!("one bucket             {corral_one:>9.1}  {governor_one:>11.1}");
    println!("keyed, {KEYS} keys      {corral_keyed:>9.1}  {governor_keyed:>11.1}");
    println!("Instant::now + elapsed {clock:>9.1}");
}

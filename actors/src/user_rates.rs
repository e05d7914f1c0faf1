//! Each user's request budget over all of its connections. On one node it is a token bucket
//! per user. In a cluster the node also settles, every `every`, what each user spent here
//! against the user's bucket in the cluster's store ([`SharedRates`]) and holds its own bucket
//! to what is left there, so sockets spread over several nodes share one budget: a user can
//! overspend by at most what its nodes let through in one settlement interval.

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_protocol::UserId;
use dashmap::DashMap;

use crate::metric_catalogue as metric;
use crate::ports::rates::SharedRates;
use crate::rate_limit::KeyedLimiter;

/// Users settled in one call to the store.
const SETTLE_CHUNK: usize = 512;

/// Requests per user (from the `[ws]` config section).
pub struct UserRates {
    local: KeyedLimiter<UserId>,
    /// What each user spent here since the last settlement (only kept in a cluster).
    spent: Option<DashMap<UserId, u32>>,
}

impl UserRates {
    /// A node-local budget: `per_sec` sustained, `burst` at once, for at most `max_users`
    /// remembered users.
    pub fn local(per_sec: f64, burst: f64, max_users: usize) -> UserRates {
        UserRates {
            local: KeyedLimiter::new(per_sec, burst, max_users),
            spent: None,
        }
    }

    /// A budget shared with the cluster through `shared`, settled every `every` (on the
    /// current runtime).
    pub fn shared(
        per_sec: f64,
        burst: f64,
        max_users: usize,
        shared: Arc<dyn SharedRates>,
        every: Duration,
    ) -> Arc<UserRates> {
        let rates = Arc::new(UserRates {
            local: KeyedLimiter::new(per_sec, burst, max_users),
            spent: Some(DashMap::new()),
        });
        let weak = Arc::downgrade(&rates);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(rates) = weak.upgrade() else { return };
                rates.settle(shared.as_ref()).await;
            }
        });
        rates
    }

    /// Takes one request from `user`'s budget, or says how long until one is available.
    pub fn check(&self, user: UserId) -> Result<(), Duration> {
        self.local.check(user)?;
        if let Some(spent) = &self.spent {
            *spent.entry(user).or_insert(0) += 1;
        }
        Ok(())
    }

    /// Settles what was spent since the last call. When the store fails, the spending is
    /// forgotten and each node keeps its own budget until it is back.
    async fn settle(&self, shared: &dyn SharedRates) {
        let Some(spent) = &self.spent else { return };
        let users: Vec<UserId> = spent.iter().map(|e| *e.key()).collect();
        let taken: Vec<(UserId, u32)> = users
            .into_iter()
            .filter_map(|user| spent.remove(&user))
            .collect();
        for chunk in taken.chunks(SETTLE_CHUNK) {
            match shared.settle(chunk).await {
                Ok(left) => {
                    let now = Instant::now();
                    for (&(user, _), tokens) in chunk.iter().zip(left) {
                        self.local.cap_at(&user, now, tokens);
                    }
                }
                Err(err) => {
                    metrics::counter!(metric::USER_RATE_SETTLE_ERRORS).increment(1);
                    tracing::debug!(%err, "request budgets not settled with the cluster");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::rates::SharedRatesError;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// One cluster bucket per user, never refilling: what every node spent, subtracted.
    #[derive(Default)]
    struct Tally {
        budget: f64,
        spent: Mutex<std::collections::HashMap<UserId, f64>>,
        down: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl SharedRates for Tally {
        async fn settle(&self, spent: &[(UserId, u32)]) -> Result<Vec<f64>, SharedRatesError> {
            if self.down.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(SharedRatesError("down".into()));
            }
            let mut all = self.spent.lock().expect("lock");
            Ok(spent
                .iter()
                .map(|&(user, n)| {
                    let total = all.entry(user).or_default();
                    *total += f64::from(n);
                    self.budget - *total
                })
                .collect())
        }
    }

    fn node() -> UserRates {
        UserRates {
            local: KeyedLimiter::new(0.0, 10.0, 100),
            spent: Some(DashMap::new()),
        }
    }

    #[tokio::test]
    async fn nodes_settling_against_one_bucket_share_its_budget() {
        let cluster = Tally {
            budget: 10.0,
            ..Tally::default()
        };
        let (a, b) = (node(), node());
        // Each node alone would allow 10; both spend 6, then settle.
        for _ in 0..6 {
            assert!(a.check(1).is_ok());
            assert!(b.check(1).is_ok());
        }
        a.settle(&cluster).await;
        b.settle(&cluster).await;
        // The cluster holds -2 for user 1: b, which settled last, knows it.
        assert!(b.check(1).is_err());
        // a learns it at its next settlement: one more request passes there, then none.
        assert!(a.check(1).is_ok());
        a.settle(&cluster).await;
        assert!(a.check(1).is_err());
        // Another user is untouched.
        assert!(a.check(2).is_ok());
    }

    #[tokio::test]
    async fn without_the_store_each_node_keeps_its_own_budget() {
        let cluster = Tally {
            budget: 10.0,
            ..Tally::default()
        };
        cluster
            .down
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let a = node();
        for _ in 0..6 {
            assert!(a.check(1).is_ok());
        }
        a.settle(&cluster).await;
        // What failed to settle is not carried over.
        assert!(a.spent.as_ref().expect("shared").is_empty());
        for _ in 0..4 {
            assert!(a.check(1).is_ok());
        }
        assert!(a.check(1).is_err());
    }

    #[test]
    fn a_local_budget_keeps_no_spending() {
        let rates = UserRates::local(1.0, 2.0, 10);
        assert!(rates.check(7).is_ok());
        assert!(rates.check(7).is_ok());
        assert!(rates.check(7).is_err());
        assert!(rates.spent.is_none());
    }
}

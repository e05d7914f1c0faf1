//! Cluster mode: reconciles the claim counters in Redis with the committed claim rows.
//!
//! A claim takes its slot in Redis first and commits its row after, so a node that dies in
//! between leaves a slot held in Redis with no row: an orphan that would never expire. Each
//! pass lists the slots Redis holds and looks up their rows:
//! - a held row: in order;
//! - a confirmed, expired or cancelled row: a `confirm` / `release` that did not reach Redis
//!   (both are no-ops unless the slot is still held, so applying them again is safe);
//! - no row for this decision of the key (none at all, or one of an earlier attempt, see
//!   `attempt.rs`): maybe a claim whose row is being committed right now. It becomes a
//!   suspect; a suspect still without its row at the next pass (a pass that failed in
//!   between, Redis being down, clears the suspects) is voided: a `void` row is written for
//!   its key and attempt (only if no other row stands: the unique key and the attempt settle
//!   a race with a late commit either way) and, if it was written, the slot is released. The
//!   client was never told `held`, so its retry of the key is decided afresh;
//! - a row of a later attempt: this decision was voided and its release did not reach Redis.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_actors::clock::now_ms;
use corral_actors::metric_catalogue as metric;
use corral_actors::ports::activities::{ActivityCatalog, ActivityRecord};
use corral_actors::ports::claims::LedgerError;
use corral_protocol::UserId;
use corral_protocol::ops::{ActivityId, ClaimStatus};

use super::attempt;
use super::ledger::SlotArbiter;
use super::redis::ledger::RedisArbiter;
use super::sql::claims::ClaimRows;

/// What one pass changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Orphan slots (held in Redis, never committed) given back.
    pub orphans: usize,
    /// Slots whose row was released or confirmed, brought in line in Redis.
    pub repaired: usize,
    /// Held slots without a row seen for the first time (checked again next pass).
    pub suspects: usize,
    /// Activities whose stock this pass changed.
    pub returned: Vec<ActivityId>,
}

/// Compares Redis's held slots with the claim rows, pass by pass.
pub struct Reconciler {
    arbiter: RedisArbiter,
    rows: ClaimRows,
    catalog: Arc<dyn ActivityCatalog>,
    /// Held slots without a row at the previous pass, by activity.
    suspects: Mutex<HashMap<ActivityId, HashSet<(UserId, String)>>>,
}

impl Reconciler {
    /// A reconciler over the cluster's arbiter, the claim rows and the activity catalog.
    pub fn new(
        arbiter: RedisArbiter,
        rows: ClaimRows,
        catalog: Arc<dyn ActivityCatalog>,
    ) -> Reconciler {
        Reconciler {
            arbiter,
            rows,
            catalog,
            suspects: Mutex::default(),
        }
    }

    /// Runs a pass now (start-up) and then every `every`, on the current runtime; each
    /// activity whose slots a pass gave back goes to `returned` (its watchers must hear).
    pub fn spawn(self, every: Duration, returned: impl Fn(ActivityId) + Send + 'static) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match self.pass().await {
                    Ok(done) if done.orphans + done.repaired > 0 => {
                        tracing::info!(?done, "reconciled the claim counters in Redis");
                        done.returned.iter().copied().for_each(&returned);
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(%err, "claim reconciliation failed"),
                }
            }
        });
    }

    /// One pass over every activity with counters in Redis that can still change.
    pub async fn pass(&self) -> Result<Reconciled, LedgerError> {
        let mut done = Reconciled::default();
        // A suspect is voided only when two passes in a row saw it: after a failed pass (Redis
        // down) the same key may be a claim decided afresh, its row being committed now.
        let mut previous = self
            .suspects
            .lock()
            .map(|mut map| std::mem::take(&mut *map))
            .unwrap_or_default();
        let ids = self.arbiter.activities().await?;
        let mut suspects = HashMap::new();
        for id in ids {
            // A cancelled activity takes no claims (the desk has none for it either).
            let Some(spec) = self.catalog.activity(id).await?.filter(|a| !a.cancelled) else {
                continue;
            };
            if now_ms() > spec.settled_at() {
                continue;
            }
            let before = previous.remove(&id).unwrap_or_default();
            let fixed = done.orphans + done.repaired;
            let still = self.activity(&spec, &before, &mut done).await?;
            if done.orphans + done.repaired > fixed {
                done.returned.push(id);
            }
            if !still.is_empty() {
                suspects.insert(id, still);
            }
        }
        done.suspects = suspects.values().map(HashSet::len).sum();
        if let Ok(mut map) = self.suspects.lock() {
            *map = suspects;
        }
        for (action, n) in [("orphan", done.orphans), ("repaired", done.repaired)] {
            metrics::counter!(metric::CLAIMS_RECONCILED, "action" => action).increment(n as u64);
        }
        Ok(done)
    }

    /// Reconciles one activity; returns its held slots without a row seen for the first time.
    async fn activity(
        &self,
        spec: &ActivityRecord,
        before: &HashSet<(UserId, String)>,
        done: &mut Reconciled,
    ) -> Result<HashSet<(UserId, String)>, LedgerError> {
        // Redis first, rows second: a row committed in between is seen.
        let held = self.arbiter.held(spec).await?;
        let decisions: Vec<(UserId, &str, i64)> = held
            .iter()
            .map(|h| {
                let (key, attempt) = attempt::split(&h.key);
                (h.user, key, attempt)
            })
            .collect();
        let wanted: Vec<(UserId, &str)> = decisions.iter().map(|&(u, k, _)| (u, k)).collect();
        let rows = self.rows.standings(spec.id, &wanted).await?;
        let mut suspects = HashSet::new();
        for (hold, &(user, key, attempt)) in held.iter().zip(&decisions) {
            let identity = (user, hold.key.clone());
            let row = rows
                .get(&(user, key.to_string()))
                .filter(|row| row.attempt >= attempt);
            match row {
                Some(row) if row.attempt > attempt => {
                    self.arbiter.release(spec, user, &hold.key).await?;
                    done.repaired += 1;
                }
                Some(row) => match row.status {
                    ClaimStatus::Held => {}
                    ClaimStatus::Confirmed => {
                        self.arbiter.confirm(spec, user, &hold.key).await?;
                        done.repaired += 1;
                    }
                    _ => {
                        self.arbiter.release(spec, user, &hold.key).await?;
                        done.repaired += 1;
                    }
                },
                None if before.contains(&identity) => {
                    if self
                        .rows
                        .void(spec.id, hold.item, user, key, attempt, now_ms())
                        .await?
                    {
                        self.arbiter.release(spec, user, &hold.key).await?;
                        done.orphans += 1;
                    }
                }
                None => {
                    suspects.insert(identity);
                }
            }
        }
        Ok(suspects)
    }
}

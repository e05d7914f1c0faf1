//! The embedded claim arbiter: one [`StockBook`] per activity in process memory, the
//! [`SlotArbiter`] of a node alone (the Redis Lua script is the cluster's, in
//! `store::redis::ledger`).

use std::sync::Mutex;

use async_trait::async_trait;
use corral_actors::claims::{RestoredClaim, StockBook};
use corral_actors::ports::activities::{ActivityRecord, ItemId};
use corral_actors::ports::claims::{LedgerError, StockLevel};
use corral_protocol::UserId;
use corral_protocol::ops::ActivityId;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::store::ledger::{Ruled, SlotArbiter};

/// The embedded arbiter: one [`StockBook`] per activity, in process memory.
#[derive(Default)]
pub struct BookArbiter {
    books: DashMap<ActivityId, Mutex<StockBook>>,
}

impl BookArbiter {
    fn with<T>(&self, id: ActivityId, f: impl FnOnce(&mut StockBook) -> T) -> Option<T> {
        let entry = self.books.get(&id)?;
        let mut book = entry.lock().ok()?;
        Some(f(&mut book))
    }
}

#[async_trait]
impl SlotArbiter for BookArbiter {
    fn fenced(&self) -> bool {
        // The books live and die with the process, and so do the holds being written.
        false
    }

    async fn decide(
        &self,
        spec: &ActivityRecord,
        user: UserId,
        key: &str,
        item: Option<ItemId>,
    ) -> Result<Option<Ruled>, LedgerError> {
        Ok(self.with(spec.id, |b| Ruled {
            decision: b.decide(user, key, item),
            epoch: None,
        }))
    }

    async fn release(
        &self,
        spec: &ActivityRecord,
        user: UserId,
        key: &str,
    ) -> Result<(), LedgerError> {
        self.with(spec.id, |b| b.release(user, key));
        Ok(())
    }

    async fn confirm(
        &self,
        spec: &ActivityRecord,
        user: UserId,
        key: &str,
    ) -> Result<(), LedgerError> {
        self.with(spec.id, |b| b.confirm(user, key));
        Ok(())
    }

    async fn retake(
        &self,
        spec: &ActivityRecord,
        user: UserId,
        key: &str,
        item: ItemId,
    ) -> Result<bool, LedgerError> {
        Ok(self
            .with(spec.id, |b| b.retake(user, key, item))
            .unwrap_or(false))
    }

    async fn ready(&self, spec: &ActivityRecord) -> Result<bool, LedgerError> {
        Ok(self.with(spec.id, |b| b.follows(spec)).unwrap_or(false))
    }

    async fn restore(
        &self,
        spec: &ActivityRecord,
        rows: &[RestoredClaim],
        _epoch: Option<i64>,
    ) -> Result<(), LedgerError> {
        // A book already kept is the live truth (it may be ahead of the rows by in-flight
        // holds); it is rebuilt only when the rules changed, which edits allow before the
        // start alone, when nothing can be held.
        let fresh = || Mutex::new(StockBook::restore(spec, rows));
        match self.books.entry(spec.id) {
            Entry::Occupied(mut kept) => {
                let current = kept
                    .get()
                    .lock()
                    .map(|book| book.follows(spec))
                    .unwrap_or(false);
                if !current {
                    kept.insert(fresh());
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(fresh());
            }
        }
        Ok(())
    }

    async fn stock(&self, spec: &ActivityRecord) -> Result<Option<StockLevel>, LedgerError> {
        Ok(self.with(spec.id, |b| b.stock()))
    }
}

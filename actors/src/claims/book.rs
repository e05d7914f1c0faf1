//! The pure claim decision: per-item slots, the per-user limit, any-item selection and the
//! idempotency of `(user, key)`. No I/O and no clock: the embedded ledger keeps one book per
//! activity in memory, and the Redis Lua script implements the same rules (the unit tests
//! here are the reference for both).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use corral_protocol::UserId;

use crate::ports::activities::{ActivityRecord, ItemId};
use crate::ports::claims::{ClaimRefusal, StockLevel};

/// What a claim request decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A fresh hold on `item`: the caller must make it durable, or release it.
    Take(ItemId),
    /// The key was used before and took `item`: answer with that same claim.
    Seen(ItemId),
    /// No hold (recorded, so the key keeps yielding the same answer).
    Refused(ClaimRefusal),
}

/// What a key stands for in the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyState {
    /// Holds or owns a slot of the item (held or confirmed).
    Active(ItemId),
    /// Took a slot of the item that went back to stock (expired or cancelled).
    Released(ItemId),
    /// Was refused.
    Refused(ClaimRefusal),
}

#[derive(Debug, Clone, Copy, Default)]
struct ItemStock {
    slots: i64,
    held: i64,
    confirmed: i64,
}

impl ItemStock {
    fn free(&self) -> i64 {
        self.slots - self.held - self.confirmed
    }
}

/// One activity's stock and claimants.
#[derive(Debug, Clone)]
pub struct StockBook {
    per_user_limit: i64,
    items: BTreeMap<ItemId, ItemStock>,
    /// Items with a free slot, so "any item" is found without a scan.
    available: BTreeSet<ItemId>,
    /// Active (held + confirmed) claims per user.
    users: HashMap<UserId, i64>,
    keys: HashMap<(UserId, String), KeyState>,
}

impl StockBook {
    /// A full book for `spec`, nothing claimed.
    pub fn new(spec: &ActivityRecord) -> StockBook {
        let mut book = StockBook {
            per_user_limit: spec.per_user_limit,
            items: BTreeMap::new(),
            available: BTreeSet::new(),
            users: HashMap::new(),
            keys: HashMap::new(),
        };
        for item in &spec.items {
            book.items.insert(
                item.item_id,
                ItemStock {
                    slots: item.slots,
                    ..ItemStock::default()
                },
            );
            book.refresh(item.item_id);
        }
        book
    }

    fn refresh(&mut self, item: ItemId) {
        match self.items.get(&item) {
            Some(stock) if stock.free() > 0 => self.available.insert(item),
            _ => self.available.remove(&item),
        };
    }

    /// Decides a claim by `user` with `key` for `item` (or any available item).
    pub fn decide(&mut self, user: UserId, key: &str, item: Option<ItemId>) -> Decision {
        let k = (user, key.to_string());
        match self.keys.get(&k) {
            Some(KeyState::Active(i) | KeyState::Released(i)) => return Decision::Seen(*i),
            Some(KeyState::Refused(r)) => return Decision::Refused(*r),
            None => {}
        }
        let decision = self.take(user, item);
        self.keys.insert(
            k,
            match decision {
                Decision::Take(i) | Decision::Seen(i) => KeyState::Active(i),
                Decision::Refused(r) => KeyState::Refused(r),
            },
        );
        decision
    }

    fn take(&mut self, user: UserId, item: Option<ItemId>) -> Decision {
        let chosen = match item {
            Some(item) => match self.items.get(&item) {
                None => return Decision::Refused(ClaimRefusal::NoSuchItem),
                Some(stock) if stock.free() <= 0 => {
                    return Decision::Refused(ClaimRefusal::SoldOut);
                }
                Some(_) => item,
            },
            None => match self.available.first() {
                Some(item) => *item,
                None => return Decision::Refused(ClaimRefusal::SoldOut),
            },
        };
        if self.users.get(&user).copied().unwrap_or(0) >= self.per_user_limit {
            return Decision::Refused(ClaimRefusal::LimitReached);
        }
        self.occupy(user, chosen, false);
        Decision::Take(chosen)
    }

    fn occupy(&mut self, user: UserId, item: ItemId, confirmed: bool) {
        if let Some(stock) = self.items.get_mut(&item) {
            if confirmed {
                stock.confirmed += 1;
            } else {
                stock.held += 1;
            }
        }
        *self.users.entry(user).or_default() += 1;
        self.refresh(item);
    }

    fn vacate(&mut self, user: UserId, item: ItemId, confirmed: bool) {
        if let Some(stock) = self.items.get_mut(&item) {
            if confirmed {
                stock.confirmed -= 1;
            } else {
                stock.held -= 1;
            }
        }
        if let Some(n) = self.users.get_mut(&user) {
            *n -= 1;
            if *n <= 0 {
                self.users.remove(&user);
            }
        }
        self.refresh(item);
    }

    /// A hold lapsed or was cancelled: its slot returns to stock. False when the key held
    /// nothing (already released).
    pub fn release(&mut self, user: UserId, key: &str) -> bool {
        let k = (user, key.to_string());
        let Some(KeyState::Active(item)) = self.keys.get(&k).copied() else {
            return false;
        };
        self.keys.insert(k, KeyState::Released(item));
        self.vacate(user, item, false);
        true
    }

    /// A held slot was paid.
    pub fn confirm(&mut self, user: UserId, key: &str) {
        if let Some(KeyState::Active(item)) = self.keys.get(&(user, key.to_string())).copied()
            && let Some(stock) = self.items.get_mut(&item)
        {
            stock.held -= 1;
            stock.confirmed += 1;
        }
    }

    /// A payment arrived for a released hold: takes a slot of `item` again, confirmed, if one
    /// is free (the per-user limit does not apply: the slot was the user's and is paid).
    pub fn retake(&mut self, user: UserId, key: &str, item: ItemId) -> bool {
        let free = self.items.get(&item).is_some_and(|s| s.free() > 0);
        if !free {
            return false;
        }
        self.keys
            .insert((user, key.to_string()), KeyState::Active(item));
        self.occupy(user, item, true);
        true
    }

    /// Rebuilds from durable rows: every claim ever made, with whether it is active and
    /// whether it is confirmed.
    pub fn restore(spec: &ActivityRecord, rows: &[RestoredClaim]) -> StockBook {
        let mut book = StockBook::new(spec);
        for row in rows {
            let k = (row.user, row.key.clone());
            if row.active {
                book.keys.insert(k, KeyState::Active(row.item));
                book.occupy(row.user, row.item, row.confirmed);
            } else {
                book.keys.insert(k, KeyState::Released(row.item));
            }
        }
        book
    }

    /// Whether the book was built for these rules (limit, items and their slots): an
    /// activity edited before its start gets a new book.
    pub fn follows(&self, spec: &ActivityRecord) -> bool {
        self.per_user_limit == spec.per_user_limit
            && self.items.len() == spec.items.len()
            && spec.items.iter().all(|item| {
                self.items
                    .get(&item.item_id)
                    .is_some_and(|s| s.slots == item.slots)
            })
    }

    /// Free and held slot counts.
    pub fn stock(&self) -> StockLevel {
        let (left, held) = self
            .items
            .values()
            .fold((0, 0), |(l, h), s| (l + s.free().max(0), h + s.held));
        StockLevel { left, held }
    }
}

/// One durable claim row, as recovery reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredClaim {
    /// The claimant.
    pub user: UserId,
    /// Their idempotency key.
    pub key: String,
    /// The item.
    pub item: ItemId,
    /// Held or confirmed (it occupies a slot).
    pub active: bool,
    /// Confirmed (paid).
    pub confirmed: bool,
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::activities::ActivityItem;

    fn spec(items: &[(ItemId, i64)], limit: i64) -> ActivityRecord {
        ActivityRecord {
            id: 1,
            merchant_id: 9,
            title: "t".into(),
            starts_at: 0,
            ends_at: 1_000,
            per_user_limit: limit,
            hold_seconds: 60,
            cancelled: false,
            rules: Default::default(),
            items: items
                .iter()
                .map(|&(item_id, slots)| ActivityItem {
                    item_id,
                    animal_id: item_id,
                    slots,
                })
                .collect(),
        }
    }

    #[test]
    fn slots_are_never_oversold() {
        let mut book = StockBook::new(&spec(&[(10, 2), (11, 1)], 1));
        let outcomes: Vec<_> = (0..5).map(|u| book.decide(u, "k", Some(10))).collect();
        assert_eq!(
            outcomes,
            vec![
                Decision::Take(10),
                Decision::Take(10),
                Decision::Refused(ClaimRefusal::SoldOut),
                Decision::Refused(ClaimRefusal::SoldOut),
                Decision::Refused(ClaimRefusal::SoldOut),
            ]
        );
        assert_eq!(book.stock(), StockLevel { left: 1, held: 2 });
        assert_eq!(
            book.decide(7, "k", Some(99)),
            Decision::Refused(ClaimRefusal::NoSuchItem)
        );
    }

    #[test]
    fn any_item_takes_whatever_is_free() {
        let mut book = StockBook::new(&spec(&[(10, 1), (11, 1), (12, 1)], 5));
        let mut taken = Vec::new();
        for u in 0..4 {
            taken.push(book.decide(u, "k", None));
        }
        assert_eq!(
            taken,
            vec![
                Decision::Take(10),
                Decision::Take(11),
                Decision::Take(12),
                Decision::Refused(ClaimRefusal::SoldOut)
            ]
        );
        assert!(book.release(1, "k"));
        assert_eq!(book.decide(5, "k", None), Decision::Take(11));
    }

    #[test]
    fn per_user_limit_counts_active_claims() {
        let mut book = StockBook::new(&spec(&[(10, 5)], 2));
        assert_eq!(book.decide(1, "a", None), Decision::Take(10));
        assert_eq!(book.decide(1, "b", None), Decision::Take(10));
        assert_eq!(
            book.decide(1, "c", None),
            Decision::Refused(ClaimRefusal::LimitReached)
        );
        // The refused key keeps its answer even once the user is under the limit again.
        assert!(book.release(1, "a"));
        assert_eq!(
            book.decide(1, "c", None),
            Decision::Refused(ClaimRefusal::LimitReached)
        );
        assert_eq!(book.decide(1, "d", None), Decision::Take(10));
    }

    #[test]
    fn same_key_same_claim() {
        let mut book = StockBook::new(&spec(&[(10, 1), (11, 1)], 3));
        assert_eq!(book.decide(1, "k", None), Decision::Take(10));
        assert_eq!(book.decide(1, "k", Some(11)), Decision::Seen(10));
        assert_eq!(book.stock().held, 1);
    }

    #[test]
    fn release_is_once_and_confirm_and_retake_keep_conservation() {
        let mut book = StockBook::new(&spec(&[(10, 1)], 1));
        assert_eq!(book.decide(1, "k", None), Decision::Take(10));
        assert!(book.release(1, "k"));
        assert!(!book.release(1, "k"));
        assert_eq!(book.stock(), StockLevel { left: 1, held: 0 });
        // A late payment re-takes the free slot, confirmed.
        assert!(book.retake(1, "k", 10));
        assert_eq!(book.stock(), StockLevel { left: 0, held: 0 });
        // Nobody else can have it now.
        assert_eq!(
            book.decide(2, "k", None),
            Decision::Refused(ClaimRefusal::SoldOut)
        );
        let mut other = StockBook::new(&spec(&[(10, 1)], 1));
        assert_eq!(other.decide(1, "k", None), Decision::Take(10));
        other.confirm(1, "k");
        assert_eq!(other.stock(), StockLevel { left: 0, held: 0 });
        assert!(!other.retake(2, "x", 10));
    }

    #[test]
    fn restore_rebuilds_counts_and_keys() {
        let s = spec(&[(10, 2), (11, 1)], 1);
        let rows = vec![
            RestoredClaim {
                user: 1,
                key: "a".into(),
                item: 10,
                active: true,
                confirmed: false,
            },
            RestoredClaim {
                user: 2,
                key: "b".into(),
                item: 11,
                active: true,
                confirmed: true,
            },
            RestoredClaim {
                user: 3,
                key: "c".into(),
                item: 10,
                active: false,
                confirmed: false,
            },
        ];
        let mut book = StockBook::restore(&s, &rows);
        assert!(book.follows(&s));
        assert!(!book.follows(&spec(&[(10, 2), (11, 2)], 1)));
        assert!(!book.follows(&spec(&[(10, 2), (11, 1)], 2)));
        assert!(!book.follows(&spec(&[(10, 2)], 1)));
        assert_eq!(book.stock(), StockLevel { left: 1, held: 1 });
        assert_eq!(book.decide(1, "a", None), Decision::Seen(10));
        assert_eq!(book.decide(3, "c", None), Decision::Seen(10));
        assert_eq!(
            book.decide(1, "z", None),
            Decision::Refused(ClaimRefusal::LimitReached)
        );
        assert_eq!(book.decide(3, "d", None), Decision::Take(10));
    }
}

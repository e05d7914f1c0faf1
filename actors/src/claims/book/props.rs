//! The claim book against a reference model, over random sequences of claims,
//! expiries and cancels, payments (of held and of lapsed holds), edits before the start and
//! restarts (a rebuild from the durable rows). The model keeps each key's state in a plain map
//! and recounts everything from it, so the book's incremental counters, its any-item choice
//! and its idempotency are checked at every step, together with the invariant that no item
//! has more holders than slots.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;
use crate::ports::activities::ActivityItem;

const USERS: i64 = 5;
const KEYS: usize = 4;
const ITEMS: [ItemId; 3] = [10, 11, 12];

/// What a key stands for in the model; refusals are not rows, so a restart forgets them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Held(ItemId),
    Confirmed(ItemId),
    Released(ItemId),
    Refused(ClaimRefusal),
}

#[derive(Debug, Clone)]
enum Step {
    Claim(UserId, usize, Option<usize>),
    /// A hold expired or was cancelled (the ledger releases held rows only).
    Release(UserId, usize),
    /// A held slot was paid.
    Confirm(UserId, usize),
    /// A lapsed hold was paid.
    Retake(UserId, usize),
    /// The node restarted: the book is rebuilt from the rows.
    Restart,
    /// Edited before anything was claimed: new slots and limit.
    Edit(Vec<i64>, i64),
}

fn step() -> impl Strategy<Value = Step> {
    let user = 0..USERS;
    let key = 0..KEYS;
    prop_oneof![
        6 => (user.clone(), key.clone(), prop::option::of(0..ITEMS.len() + 1))
            .prop_map(|(u, k, i)| Step::Claim(u, k, i)),
        2 => (user.clone(), key.clone()).prop_map(|(u, k)| Step::Release(u, k)),
        2 => (user.clone(), key.clone()).prop_map(|(u, k)| Step::Confirm(u, k)),
        1 => (user, key).prop_map(|(u, k)| Step::Retake(u, k)),
        1 => Just(Step::Restart),
        1 => (prop::collection::vec(0i64..4, ITEMS.len()), 1i64..3)
            .prop_map(|(slots, limit)| Step::Edit(slots, limit)),
    ]
}

struct Model {
    slots: BTreeMap<ItemId, i64>,
    limit: i64,
    keys: HashMap<(UserId, String), State>,
}

impl Model {
    fn spec(&self) -> ActivityRecord {
        ActivityRecord {
            id: 1,
            merchant_id: 9,
            title: "t".into(),
            starts_at: 0,
            ends_at: 1_000,
            per_user_limit: self.limit,
            hold_seconds: 60,
            cancelled: false,
            rules: Default::default(),
            items: self
                .slots
                .iter()
                .map(|(&item_id, &slots)| ActivityItem {
                    item_id,
                    animal_id: item_id,
                    slots,
                })
                .collect(),
        }
    }

    fn occupied(&self, item: ItemId) -> (i64, i64) {
        self.keys.values().fold((0, 0), |(h, c), s| match s {
            State::Held(i) if *i == item => (h + 1, c),
            State::Confirmed(i) if *i == item => (h, c + 1),
            _ => (h, c),
        })
    }

    fn free(&self, item: ItemId) -> i64 {
        let (held, confirmed) = self.occupied(item);
        self.slots.get(&item).map_or(0, |s| s - held - confirmed)
    }

    fn active(&self, user: UserId) -> i64 {
        self.keys
            .iter()
            .filter(|((u, _), s)| *u == user && matches!(s, State::Held(_) | State::Confirmed(_)))
            .count() as i64
    }

    fn decide(&mut self, user: UserId, key: &str, item: Option<ItemId>) -> Decision {
        let k = (user, key.to_string());
        match self.keys.get(&k) {
            Some(State::Held(i) | State::Confirmed(i) | State::Released(i)) => {
                return Decision::Seen(*i);
            }
            Some(State::Refused(r)) => return Decision::Refused(*r),
            None => {}
        }
        let chosen = match item {
            Some(item) if !self.slots.contains_key(&item) => Err(ClaimRefusal::NoSuchItem),
            Some(item) if self.free(item) <= 0 => Err(ClaimRefusal::SoldOut),
            Some(item) => Ok(item),
            None => self
                .slots
                .keys()
                .copied()
                .find(|&i| self.free(i) > 0)
                .ok_or(ClaimRefusal::SoldOut),
        };
        let decision = match chosen {
            Ok(_) if self.active(user) >= self.limit => {
                Decision::Refused(ClaimRefusal::LimitReached)
            }
            Ok(item) => Decision::Take(item),
            Err(refusal) => Decision::Refused(refusal),
        };
        self.keys.insert(
            k,
            match decision {
                Decision::Take(i) | Decision::Seen(i) => State::Held(i),
                Decision::Refused(r) => State::Refused(r),
            },
        );
        decision
    }

    fn rows(&self) -> Vec<RestoredClaim> {
        self.keys
            .iter()
            .filter_map(|((user, key), state)| {
                let (item, active, confirmed) = match *state {
                    State::Held(i) => (i, true, false),
                    State::Confirmed(i) => (i, true, true),
                    State::Released(i) => (i, false, false),
                    State::Refused(_) => return None,
                };
                Some(RestoredClaim {
                    user: *user,
                    key: key.clone(),
                    item,
                    active,
                    confirmed,
                })
            })
            .collect()
    }

    fn stock(&self) -> StockLevel {
        let (left, held) = self.slots.keys().fold((0, 0), |(l, h), &item| {
            (l + self.free(item).max(0), h + self.occupied(item).0)
        });
        StockLevel { left, held }
    }
}

fn key(k: usize) -> String {
    format!("k{k}")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn the_book_behaves_as_the_model(
        slots in prop::collection::vec(0i64..4, ITEMS.len()),
        limit in 1i64..3,
        steps in prop::collection::vec(step(), 1..80),
    ) {
        let mut model = Model {
            slots: ITEMS.iter().copied().zip(slots).collect(),
            limit,
            keys: HashMap::new(),
        };
        let mut book = StockBook::new(&model.spec());
        for step in steps {
            match step {
                Step::Claim(user, k, item) => {
                    // Index ITEMS.len() asks for an item that is not in the promotion.
                    let item = item.map(|i| ITEMS.get(i).copied().unwrap_or(99));
                    let got = book.decide(user, &key(k), item);
                    let want = model.decide(user, &key(k), item);
                    prop_assert_eq!(&got, &want);
                }
                Step::Release(user, k) => {
                    let id = (user, key(k));
                    if let Some(State::Held(item)) = model.keys.get(&id).copied() {
                        prop_assert!(book.release(user, &id.1));
                        model.keys.insert(id, State::Released(item));
                    }
                }
                Step::Confirm(user, k) => {
                    let id = (user, key(k));
                    if let Some(State::Held(item)) = model.keys.get(&id).copied() {
                        book.confirm(user, &id.1);
                        model.keys.insert(id, State::Confirmed(item));
                    }
                }
                Step::Retake(user, k) => {
                    let id = (user, key(k));
                    if let Some(State::Released(item)) = model.keys.get(&id).copied() {
                        let free = model.free(item) > 0;
                        prop_assert_eq!(book.retake(user, &id.1, item), free);
                        if free {
                            model.keys.insert(id, State::Confirmed(item));
                        }
                    }
                }
                Step::Restart => {
                    model.keys.retain(|_, s| !matches!(s, State::Refused(_)));
                    book = StockBook::restore(&model.spec(), &model.rows());
                }
                Step::Edit(slots, limit) => {
                    // Edits are allowed before the start only, when nothing is claimed.
                    if model.keys.is_empty() {
                        model.slots = ITEMS.iter().copied().zip(slots).collect();
                        model.limit = limit;
                        prop_assert!(!book.follows(&model.spec()) || book.stock() == model.stock());
                        book = StockBook::restore(&model.spec(), &[]);
                    }
                }
            }
            prop_assert_eq!(book.stock(), model.stock());
            for &item in model.slots.keys() {
                let (held, confirmed) = model.occupied(item);
                prop_assert!(held + confirmed <= model.slots[&item], "item {item} oversold");
            }
        }
    }
}

//! Invariant checks run after every scenario; any violation fails the run.
//!
//! - Delivery ([`DeliveryLedger`]): every message published into a stream (a room, a
//!   broadcast publisher, a feed author) reached every member of that stream exactly once and
//!   in sequence order.
//! - Claims ([`ClaimsLedger`]): held + confirmed never above an item's slots, every `held` a
//!   client was told about is present in the merchant view, no user above the per-user limit;
//!   and, from the clients' own evidence, no instant of the run when the holds they were told
//!   about exceeded an item's slots or the limit (a soak's holds come and go: the end alone
//!   shows little).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// A stream of messages whose delivery is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// A chat room (`room:<id>`): ordered by the room's `seq`.
    Room(i64),
    /// An author's feed posts (`feed:<user>`): ordered by `post_id`.
    Feed(i64),
    /// A raw-broadcast publisher (`pub:<client>`): ordered by the payload's sequence number.
    Publisher(u64),
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stream::Room(id) => write!(f, "room:{id}"),
            Stream::Feed(user) => write!(f, "feed:{user}"),
            Stream::Publisher(n) => write!(f, "pub:{n}"),
        }
    }
}

impl Stream {
    /// Reads a raw publisher's name (`pub:<client>`) back.
    pub fn publisher(name: &str) -> Option<Stream> {
        name.strip_prefix("pub:")?
            .parse()
            .ok()
            .map(Stream::Publisher)
    }
}

/// One invariant's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Which invariant.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// What was checked, or the first violations found.
    pub detail: String,
}

/// The most violations spelled out in a check's detail.
const SHOWN: usize = 5;

/// What one receiver saw of one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Distinct messages received in order.
    pub got: u64,
    /// Messages whose sequence number was seen already.
    pub duplicates: u64,
    /// Messages whose sequence number was below one seen already (out of order).
    pub out_of_order: u64,
    last_seq: Option<u64>,
}

impl Tally {
    /// A tally of a stream whose messages up to `seq` were published before this receiver
    /// joined (a room's `last_seq` in the join reply).
    pub fn after(seq: u64) -> Tally {
        Tally {
            last_seq: Some(seq),
            ..Tally::default()
        }
    }

    /// Accounts one received message with sequence number `seq`.
    pub fn see(&mut self, seq: u64) {
        match self.last_seq {
            Some(last) if seq == last => self.duplicates += 1,
            Some(last) if seq < last => self.out_of_order += 1,
            _ => {
                self.got += 1;
                self.last_seq = Some(seq);
            }
        }
    }

    /// The highest sequence number seen in order.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }
}

/// Delivery evidence merged over workers: per stream, how many messages were published
/// (acknowledged) and how many receivers saw how many of them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeliveryLedger {
    /// Messages published (and acknowledged, where the server acknowledges) per stream.
    pub sent: BTreeMap<String, u64>,
    /// Messages sent whose acknowledgement never came, per stream: stored or not, receivers
    /// may have them (at most once each).
    #[serde(default)]
    pub unacknowledged: BTreeMap<String, u64>,
    /// Per stream: received count -> number of receivers with that count.
    #[serde(with = "count_pairs")]
    pub received: BTreeMap<String, BTreeMap<u64, u64>>,
    /// Per stream: the last sequence number a receiver saw in order -> receivers, so a
    /// receiver short of messages is told apart as stopped early or missing some in between.
    #[serde(default, with = "count_pairs")]
    pub ended_at: BTreeMap<String, BTreeMap<u64, u64>>,
    /// Duplicates seen, per stream.
    pub duplicates: BTreeMap<String, u64>,
    /// Out-of-order messages seen, per stream.
    pub out_of_order: BTreeMap<String, u64>,
}

impl DeliveryLedger {
    /// Records that a message went out on `stream`.
    pub fn published(&mut self, stream: Stream, n: u64) {
        *self.sent.entry(stream.to_string()).or_default() += n;
    }

    /// Records that `n` messages sent on `stream` were never acknowledged.
    pub fn unacknowledged(&mut self, stream: Stream, n: u64) {
        *self.unacknowledged.entry(stream.to_string()).or_default() += n;
    }

    /// Adds one receiver's tally of `stream`.
    pub fn receiver(&mut self, stream: Stream, tally: &Tally) {
        let stream = stream.to_string();
        if tally.duplicates > 0 {
            *self.duplicates.entry(stream.clone()).or_default() += tally.duplicates;
        }
        if tally.out_of_order > 0 {
            *self.out_of_order.entry(stream.clone()).or_default() += tally.out_of_order;
        }
        if let Some(last) = tally.last_seq {
            *self
                .ended_at
                .entry(stream.clone())
                .or_default()
                .entry(last)
                .or_default() += 1;
        }
        *self
            .received
            .entry(stream)
            .or_default()
            .entry(tally.got)
            .or_default() += 1;
    }

    /// Folds another worker's ledger in.
    pub fn merge(&mut self, other: &DeliveryLedger) {
        for (s, n) in &other.sent {
            *self.sent.entry(s.clone()).or_default() += n;
        }
        for (s, n) in &other.unacknowledged {
            *self.unacknowledged.entry(s.clone()).or_default() += n;
        }
        for (mine, theirs) in [
            (&mut self.received, &other.received),
            (&mut self.ended_at, &other.ended_at),
        ] {
            for (s, counts) in theirs {
                let mine = mine.entry(s.clone()).or_default();
                for (n, members) in counts {
                    *mine.entry(*n).or_default() += members;
                }
            }
        }
        for (s, n) in &other.duplicates {
            *self.duplicates.entry(s.clone()).or_default() += n;
        }
        for (s, n) in &other.out_of_order {
            *self.out_of_order.entry(s.clone()).or_default() += n;
        }
    }

    /// Checks exactly-once, in-order delivery to every receiver of every stream (a message
    /// whose acknowledgement never came may or may not have been delivered).
    pub fn check(&self) -> Vec<Check> {
        let mut missing = Vec::new();
        let mut receivers = 0u64;
        for (stream, counts) in &self.received {
            let sent = self.sent.get(stream).copied().unwrap_or(0);
            let unsure = self.unacknowledged.get(stream).copied().unwrap_or(0);
            for (&got, &members) in counts {
                receivers += members;
                if got < sent || got > sent + unsure {
                    let unsure = match unsure {
                        0 => String::new(),
                        n => format!(" (+{n} unacknowledged)"),
                    };
                    missing.push(format!(
                        "{stream}: {members} receiver(s) got {got} of {sent}{unsure}"
                    ));
                }
            }
            if missing
                .last()
                .is_some_and(|m| m.starts_with(&format!("{stream}:")))
            {
                missing.push(self.where_they_stopped(stream));
            }
        }
        let total_sent: u64 = self.sent.values().sum();
        // A run that published nothing proved nothing.
        if total_sent == 0 {
            missing.push("no message was published (acknowledged)".into());
        }
        let once = Check {
            name: "every message delivered to every member".into(),
            passed: missing.is_empty(),
            detail: if missing.is_empty() {
                format!(
                    "{total_sent} messages over {} streams, {receivers} receiver tallies",
                    self.sent.len()
                )
            } else {
                missing.truncate(SHOWN);
                missing.join("; ")
            },
        };
        let dups: u64 = self.duplicates.values().sum();
        let ooo: u64 = self.out_of_order.values().sum();
        let order = Check {
            name: "no duplicates, in sequence order".into(),
            passed: dups == 0 && ooo == 0,
            detail: format!("{dups} duplicates, {ooo} out of order"),
        };
        vec![once, order]
    }
}

impl DeliveryLedger {
    /// How many receivers of `stream` stopped before the last sequence number any saw: those
    /// missed the end (still reading a backlog when the run ended); the others missed
    /// messages in between.
    fn where_they_stopped(&self, stream: &str) -> String {
        let ended = self.ended_at.get(stream);
        let last = ended
            .and_then(|e| e.keys().next_back().copied())
            .unwrap_or(0);
        let early: u64 = ended
            .map(|e| e.range(..last).map(|(_, n)| n).sum())
            .unwrap_or(0);
        let earliest = ended.and_then(|e| e.keys().next().copied()).unwrap_or(0);
        match early {
            0 => {
                format!("{stream}: every receiver saw seq {last}: the missing ones were in between")
            }
            n => format!(
                "{stream}: {n} receiver(s) stopped before seq {last} (the earliest at {earliest})"
            ),
        }
    }
}

/// `count -> receivers` maps travel as `[count, receivers]` pairs: integer map keys do not
/// survive serde's buffering inside the workers' internally tagged events.
mod count_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    type Received = BTreeMap<String, BTreeMap<u64, u64>>;

    pub fn serialize<S: Serializer>(map: &Received, ser: S) -> Result<S::Ok, S::Error> {
        let pairs: BTreeMap<&String, Vec<(u64, u64)>> = map
            .iter()
            .map(|(k, v)| (k, v.iter().map(|(a, b)| (*a, *b)).collect()))
            .collect();
        pairs.serialize(ser)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Received, D::Error> {
        let pairs: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::deserialize(de)?;
        Ok(pairs
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect())
    }
}

/// A hold a client was told about (`claim` replied `held`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HeldClaim {
    /// The claim.
    pub claim_id: i64,
    /// Who holds it.
    pub user_id: i64,
    /// The item (activity item id).
    pub item: i64,
    /// When the client read the reply (us since the epoch): the hold was made before.
    #[serde(default)]
    pub held_at_us: u64,
    /// The reply's `expires_at` (ms since the epoch, server clock): unless given back, the
    /// hold lives until then at least.
    #[serde(default)]
    pub expires_at_ms: i64,
}

/// A hold its client gave back: when it sent `claim.cancel` (us since the epoch), the hold was
/// still live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GivenBack {
    /// The claim.
    pub claim_id: i64,
    /// When the cancel was sent.
    pub at_us: u64,
}

/// One row of the merchant view of an activity's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRow {
    /// The claim.
    pub claim_id: i64,
    /// Its holder.
    pub user_id: i64,
    /// Its item.
    pub item: i64,
    /// `held`, `confirmed`, `expired`, `cancelled`.
    pub status: String,
}

/// Everything the claim invariants look at.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClaimsLedger {
    /// Holds acknowledged to clients.
    pub acknowledged: Vec<HeldClaim>,
    /// Holds their clients gave back.
    #[serde(default)]
    pub given_back: Vec<GivenBack>,
    /// The merchant view after the run.
    pub view: Vec<LedgerRow>,
    /// Slots per item.
    pub slots: BTreeMap<i64, u64>,
    /// The activity's per-user limit.
    pub per_user_limit: u64,
}

fn live(status: &str) -> bool {
    matches!(status, "held" | "confirmed")
}

/// What one look at the merchant view found live (held or confirmed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// Live claims over every item.
    pub claims: u64,
    /// Users holding at least one.
    pub users: usize,
    /// Items with more live claims than slots, spelled out.
    pub oversold: Vec<String>,
    /// Users above the per-user limit, spelled out.
    pub over_limit: Vec<String>,
}

impl Live {
    /// Counts the live claims of `view` against `slots` per item and `per_user_limit`.
    pub fn count(view: &[LedgerRow], slots: &BTreeMap<i64, u64>, per_user_limit: u64) -> Live {
        let mut per_item: HashMap<i64, u64> = HashMap::new();
        let mut per_user: HashMap<i64, u64> = HashMap::new();
        for row in view.iter().filter(|r| live(&r.status)) {
            *per_item.entry(row.item).or_default() += 1;
            *per_user.entry(row.user_id).or_default() += 1;
        }
        let mut oversold: Vec<String> = per_item
            .iter()
            .filter(|(item, n)| **n > slots.get(item).copied().unwrap_or(0))
            .map(|(item, n)| {
                format!(
                    "item {item}: {n} live claims for {} slots",
                    slots.get(item).copied().unwrap_or(0)
                )
            })
            .collect();
        oversold.sort();
        let mut over_limit: Vec<String> = per_user
            .iter()
            .filter(|(_, n)| **n > per_user_limit)
            .map(|(user, n)| format!("user {user}: {n} live claims"))
            .collect();
        over_limit.sort();
        Live {
            claims: per_item.values().sum(),
            users: per_user.len(),
            oversold,
            over_limit,
        }
    }
}

/// When one acknowledged hold was certainly live, in us since the epoch: from its `held`
/// reply (made before) until its cancel was sent or its `expires_at` (released after).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    from: u64,
    until: u64,
    item: i64,
    user: i64,
}

impl ClaimsLedger {
    /// The spans of the acknowledged holds (one per claim: a claim acknowledged twice counts
    /// once, from its first acknowledgement; a hold acknowledged only after it lapsed has none).
    fn spans(&self) -> Vec<Span> {
        let mut given_back: HashMap<i64, u64> = HashMap::new();
        for g in &self.given_back {
            let at = given_back.entry(g.claim_id).or_insert(g.at_us);
            *at = (*at).min(g.at_us);
        }
        let mut first: HashMap<i64, &HeldClaim> = HashMap::new();
        for hold in &self.acknowledged {
            let seen = first.entry(hold.claim_id).or_insert(hold);
            if hold.held_at_us < seen.held_at_us {
                *seen = hold;
            }
        }
        first
            .into_values()
            .filter_map(|hold| {
                let expires_us = u64::try_from(hold.expires_at_ms).ok()?.saturating_mul(1000);
                let until = given_back
                    .get(&hold.claim_id)
                    .map_or(expires_us, |at| (*at).min(expires_us));
                (until > hold.held_at_us).then_some(Span {
                    from: hold.held_at_us,
                    until,
                    item: hold.item,
                    user: hold.user_id,
                })
            })
            .collect()
    }

    /// Sweeps the spans in time order: the instants where an item had more certainly-live
    /// holds than slots, or a user more than the limit (the first few), and the most live at
    /// once.
    fn at_every_instant(&self) -> (Vec<String>, u64) {
        let spans = self.spans();
        let origin = spans.iter().map(|s| s.from).min().unwrap_or(0);
        // Ends before starts at the same instant: a span is [from, until).
        let mut events: Vec<(u64, bool, Span)> = spans
            .iter()
            .flat_map(|s| [(s.from, true, *s), (s.until, false, *s)])
            .collect();
        events.sort_by_key(|(at, starts, s)| (*at, *starts, s.item, s.user));
        let (mut per_item, mut per_user) = (HashMap::new(), HashMap::new());
        let (mut live, mut most, mut wrong) = (0u64, 0u64, Vec::new());
        for (at, starts, span) in events {
            let item: &mut u64 = per_item.entry(span.item).or_default();
            let user: &mut u64 = per_user.entry(span.user).or_default();
            if !starts {
                *item -= 1;
                *user -= 1;
                live -= 1;
                continue;
            }
            *item += 1;
            *user += 1;
            live += 1;
            most = most.max(live);
            let second = (at - origin) as f64 / 1e6;
            let slots = self.slots.get(&span.item).copied().unwrap_or(0);
            if *item > slots && wrong.len() < SHOWN {
                wrong.push(format!(
                    "+{second:.3} s: item {}: {item} holds for {slots} slots",
                    span.item
                ));
            }
            if *user > self.per_user_limit && wrong.len() < SHOWN {
                wrong.push(format!("+{second:.3} s: user {}: {user} holds", span.user));
            }
        }
        (wrong, most)
    }

    /// Checks no oversell, no lost acknowledgement, and the per-user limit.
    pub fn check(&self) -> Vec<Check> {
        let Live {
            claims: live_total,
            users,
            oversold,
            over_limit: over,
        } = Live::count(&self.view, &self.slots, self.per_user_limit);
        let slots_total: u64 = self.slots.values().sum();
        let (wrong, most) = self.at_every_instant();

        let known: HashSet<(i64, i64, i64)> = self
            .view
            .iter()
            .map(|r| (r.claim_id, r.user_id, r.item))
            .collect();
        let mut lost: Vec<String> = self
            .acknowledged
            .iter()
            .filter(|h| !known.contains(&(h.claim_id, h.user_id, h.item)))
            .map(|h| format!("claim {} (user {}, item {})", h.claim_id, h.user_id, h.item))
            .collect();
        let lost_count = lost.len();

        let detail = |mut list: Vec<String>, ok: String| {
            if list.is_empty() {
                ok
            } else {
                list.truncate(SHOWN);
                list.join("; ")
            }
        };
        lost.sort();
        vec![
            Check {
                name: "held + confirmed <= slots".into(),
                passed: oversold.is_empty(),
                detail: detail(
                    oversold,
                    format!("{live_total} live claims, {slots_total} slots"),
                ),
            },
            Check {
                name: "every acknowledged hold is in the merchant view".into(),
                passed: lost_count == 0,
                detail: detail(
                    lost,
                    format!("{} acknowledged holds found", self.acknowledged.len()),
                ),
            },
            Check {
                name: "no user above the per-user limit".into(),
                passed: over.is_empty(),
                detail: detail(
                    over,
                    format!("{users} users, limit {}", self.per_user_limit),
                ),
            },
            Check {
                name: "acknowledged holds within the slots and the limit at every instant".into(),
                passed: wrong.is_empty(),
                detail: detail(
                    wrong,
                    format!(
                        "at most {most} of {} acknowledged holds live at once, {slots_total} slots",
                        self.acknowledged.len()
                    ),
                ),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(claim_id: i64, user_id: i64, item: i64, status: &str) -> LedgerRow {
        LedgerRow {
            claim_id,
            user_id,
            item,
            status: status.into(),
        }
    }

    fn held(claim_id: i64, user_id: i64, item: i64) -> HeldClaim {
        held_between(claim_id, user_id, item, 1_000_000, 1_900_000)
    }

    /// A hold acknowledged at `from_ms` that expires at `until_ms` (ms since the epoch).
    fn held_between(
        claim_id: i64,
        user_id: i64,
        item: i64,
        from_ms: u64,
        until_ms: i64,
    ) -> HeldClaim {
        HeldClaim {
            claim_id,
            user_id,
            item,
            held_at_us: from_ms * 1000,
            expires_at_ms: until_ms,
        }
    }

    fn good_ledger() -> ClaimsLedger {
        ClaimsLedger {
            acknowledged: vec![held(1, 10, 100), held(2, 11, 100), held(3, 12, 101)],
            view: vec![
                row(1, 10, 100, "held"),
                row(2, 11, 100, "confirmed"),
                row(3, 12, 101, "held"),
                row(4, 13, 101, "expired"),
            ],
            slots: BTreeMap::from([(100, 2), (101, 1)]),
            per_user_limit: 1,
            given_back: Vec::new(),
        }
    }

    fn failed(checks: &[Check]) -> Vec<&str> {
        checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect()
    }

    #[test]
    fn a_consistent_ledger_passes() {
        let checks = good_ledger().check();
        assert_eq!(checks.len(), 4);
        assert!(failed(&checks).is_empty(), "{checks:?}");
    }

    #[test]
    fn a_ledger_view_missing_an_acknowledged_hold_fails() {
        let mut ledger = good_ledger();
        ledger.view.retain(|r| r.claim_id != 3);
        assert_eq!(
            failed(&ledger.check()),
            vec!["every acknowledged hold is in the merchant view"]
        );
        // A view that names the claim on another item is just as wrong.
        let mut ledger = good_ledger();
        ledger.view[2].item = 100;
        let checks = ledger.check();
        let failures = failed(&checks);
        assert!(failures.contains(&"every acknowledged hold is in the merchant view"));
        assert!(failures.contains(&"held + confirmed <= slots"));
    }

    #[test]
    fn an_oversold_item_fails() {
        let mut ledger = good_ledger();
        ledger.view.push(row(5, 14, 101, "held"));
        let checks = ledger.check();
        assert_eq!(failed(&checks), vec!["held + confirmed <= slots"]);
        assert!(
            checks[0]
                .detail
                .contains("item 101: 2 live claims for 1 slots")
        );
    }

    #[test]
    fn a_user_above_the_limit_fails() {
        let mut ledger = good_ledger();
        ledger.slots.insert(100, 3);
        ledger.view.push(row(6, 10, 100, "held"));
        assert_eq!(
            failed(&ledger.check()),
            vec!["no user above the per-user limit"]
        );
    }

    const INSTANT: &str = "acknowledged holds within the slots and the limit at every instant";

    /// One slot (item 100), limit 1: holds of users 10 and 11 acknowledged at 1 000 s and
    /// 1 010 s; the first expires at `first_until_ms` unless given back at `given_back_ms`.
    fn one_slot_twice(first_until_ms: i64, given_back_ms: Option<u64>) -> ClaimsLedger {
        ClaimsLedger {
            acknowledged: vec![
                held_between(1, 10, 100, 1_000_000, first_until_ms),
                held_between(2, 11, 100, 1_010_000, 1_040_000),
            ],
            given_back: given_back_ms
                .map(|ms| GivenBack {
                    claim_id: 1,
                    at_us: ms * 1000,
                })
                .into_iter()
                .collect(),
            // By the end both lapsed: the end alone shows nothing wrong.
            view: vec![row(1, 10, 100, "expired"), row(2, 11, 100, "expired")],
            slots: BTreeMap::from([(100, 1)]),
            per_user_limit: 1,
        }
    }

    #[test]
    fn a_slot_held_twice_at_once_fails_even_if_the_end_is_clean() {
        // The first hold still had 20 s to live when the second was acknowledged.
        let ledger = one_slot_twice(1_030_000, None);
        let checks = ledger.check();
        assert_eq!(failed(&checks), vec![INSTANT]);
        let detail = &checks[3].detail;
        assert!(
            detail.contains("+10.000 s: item 100: 2 holds for 1 slots"),
            "{detail}"
        );
    }

    #[test]
    fn a_slot_that_changes_hands_passes() {
        // Expired before the second hold, or given back before it.
        assert!(failed(&one_slot_twice(1_005_000, None).check()).is_empty());
        assert!(failed(&one_slot_twice(1_030_000, Some(1_009_000)).check()).is_empty());
        // Expiring at the very instant the next hold is acknowledged is no overlap.
        assert!(failed(&one_slot_twice(1_010_000, None).check()).is_empty());
        // A cancel sent after the second hold came does not excuse the overlap.
        assert_eq!(
            failed(&one_slot_twice(1_030_000, Some(1_011_000)).check()),
            vec![INSTANT]
        );
    }

    #[test]
    fn a_hold_acknowledged_twice_counts_once() {
        let mut ledger = one_slot_twice(1_005_000, None);
        let again = held_between(2, 11, 100, 1_012_000, 1_040_000);
        ledger.acknowledged.push(again);
        let checks = ledger.check();
        assert!(failed(&checks).is_empty(), "{checks:?}");
        assert!(checks[3].detail.starts_with("at most 1 of 3"), "{checks:?}");
    }

    #[test]
    fn a_user_over_the_limit_at_an_instant_fails() {
        let mut ledger = one_slot_twice(1_030_000, None);
        ledger.slots.insert(100, 2);
        ledger.acknowledged[1].user_id = 10;
        ledger.view[1].user_id = 10;
        let checks = ledger.check();
        assert_eq!(failed(&checks), vec![INSTANT]);
        assert!(checks[3].detail.contains("user 10: 2 holds"), "{checks:?}");
    }

    #[test]
    fn tallies_catch_duplicates_and_reordering() {
        let mut tally = Tally::default();
        for seq in [1, 2, 2, 3, 1, 4] {
            tally.see(seq);
        }
        assert_eq!(tally.got, 4);
        assert_eq!(tally.duplicates, 1);
        assert_eq!(tally.out_of_order, 1);
    }

    #[test]
    fn delivery_ledger_fails_on_a_missing_or_repeated_message() {
        let mut good = DeliveryLedger::default();
        good.published(Stream::Room(1), 3);
        let mut complete = Tally::default();
        for seq in 1..=3 {
            complete.see(seq);
        }
        good.receiver(Stream::Room(1), &complete);
        good.receiver(Stream::Room(1), &complete);
        assert!(good.check().iter().all(|c| c.passed));

        let mut gappy = good.clone();
        let mut partial = Tally::default();
        partial.see(1);
        partial.see(3);
        gappy.receiver(Stream::Room(1), &partial);
        let checks = gappy.check();
        assert!(!checks[0].passed);
        assert!(checks[0].detail.contains("1 receiver(s) got 2 of 3"));
        assert!(
            checks[0].detail.contains("every receiver saw seq 3"),
            "{}",
            checks[0].detail
        );
        let mut short = good.clone();
        let mut stopped = Tally::default();
        stopped.see(1);
        short.receiver(Stream::Room(1), &stopped);
        let detail = &short.check()[0].detail;
        assert!(
            detail.contains("1 receiver(s) stopped before seq 3 (the earliest at 1)"),
            "{detail}"
        );

        // A message whose acknowledgement was lost may reach receivers, or not.
        let mut unsure = good.clone();
        unsure.unacknowledged(Stream::Room(1), 1);
        let mut more = complete;
        more.see(4);
        unsure.receiver(Stream::Room(1), &more);
        assert!(unsure.check()[0].passed, "{:?}", unsure.check());
        unsure.receiver(Stream::Room(1), &partial);
        assert!(!unsure.check()[0].passed);

        // Receivers but no acknowledged message: the run proved nothing.
        let mut silent = DeliveryLedger::default();
        silent.receiver(Stream::Room(1), &Tally::after(5));
        let checks = silent.check();
        assert!(!checks[0].passed);
        assert!(checks[0].detail.contains("no message was published"));

        let mut repeated = DeliveryLedger::default();
        repeated.merge(&good);
        let mut twice = complete;
        twice.see(3);
        repeated.receiver(Stream::Room(1), &twice);
        let checks = repeated.check();
        assert!(checks[0].passed);
        assert!(!checks[1].passed);
    }
}

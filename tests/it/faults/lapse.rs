//! The claims check for a crowd whose holds lapse during the run (short holds and a fault
//! longer than a hold). A hold that lapses is released and its slot goes to another client,
//! so "the held rows are exactly the clients told `held`" cannot hold at the end: most told
//! `held` have lapsed by then. What must hold instead, from the clients' evidence and the
//! rows ([`check_claims`]):
//! - every client told `held` has its row, still held or lapsed (expired, and only once its
//!   `expires_at` had passed), and every row still held is one a client was told;
//! - a client answered `{status: "expired"}` (its hold committed while it was answered
//!   `unavailable`, and lapsed before a retry got through) has a lapsed row: it was never told
//!   `held`, and its slot was not kept from others;
//! - no slot had two owners at once: two clients told `held` on one item own it from their
//!   answer to their hold's `expires_at`, and these spans never overlap (a slot is released
//!   only once its row expired, and given again only after that, so the next owner's answer
//!   comes after the last owner's `expires_at`, on the one clock the host gives all);
//! - once every hold has lapsed, every slot is back in stock and can be claimed again
//!   ([`every_slot_claimable_again`]): no lapsed hold stays taken in Redis.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;
use sqlx::{AnyPool, Row};

use super::cluster::{Cluster, NODES};
use crate::claims::{Event, Outcome};
use crate::support::{WsClient, check, wait_until};

/// A client's final answer when its hold lapsed before its retry got through.
pub const EXPIRED: &str = "status \"expired\"";

/// What the check counted.
pub struct Lapsed {
    /// Clients answered `{status: "expired"}`.
    pub told_expired: usize,
    /// Rows of holds that lapsed.
    pub lapsed: usize,
}

/// One claim row, as far as lapsing goes.
struct Claim {
    status: String,
    expires_at: i64,
    updated_at: i64,
    item: i64,
}

impl Claim {
    /// Expired, and only after its deadline: nothing else moves a hold to `expired`.
    fn lapsed(&self) -> bool {
        self.status == "expired" && self.updated_at >= self.expires_at
    }
}

/// Checks a crowd with lapsing holds against the rows of `activity` (see the module docs).
pub async fn check_claims(pool: &AnyPool, activity: i64, history: &[Event]) -> Lapsed {
    let rows = sqlx::query(
        "SELECT id, user_id, claim_key, status, expires_at, updated_at, item_id \
         FROM claims WHERE activity_id = $1",
    )
    .bind(activity)
    .fetch_all(pool)
    .await
    .expect("claims");
    let mut by_id = HashMap::new();
    let mut by_key = HashMap::new();
    for row in &rows {
        let (id, user, key): (i64, i64, String) = (row.get(0), row.get(1), row.get(2));
        let claim = Claim {
            status: row.get(3),
            expires_at: row.get(4),
            updated_at: row.get(5),
            item: row.get(6),
        };
        by_key.insert((user, key), id);
        by_id.insert(id, claim);
    }
    let mut told = HashSet::new();
    let mut owners: HashMap<i64, Vec<(i64, i64, i64)>> = HashMap::new();
    let mut told_expired = 0;
    for event in history {
        match &event.outcome {
            Outcome::Held { claim_id, .. } => {
                let row = &by_id[claim_id];
                assert!(
                    row.status == "held" || row.lapsed(),
                    "claim {claim_id}, told held, is {} (expires {}, updated {})",
                    row.status,
                    row.expires_at,
                    row.updated_at
                );
                told.insert(*claim_id);
                owners.entry(row.item).or_default().push((
                    event.answered_at,
                    row.expires_at,
                    *claim_id,
                ));
            }
            Outcome::Refused(status) if status == EXPIRED => {
                let id = by_key
                    .get(&(event.user, event.key.clone()))
                    .unwrap_or_else(|| panic!("{} was answered expired without a row", event.key));
                assert!(by_id[id].lapsed(), "{}: answered expired", event.key);
                told_expired += 1;
            }
            _ => {}
        }
    }
    for (id, row) in &by_id {
        if row.status == "held" || row.status == "confirmed" {
            assert!(
                told.contains(id),
                "claim {id} is {} but nobody was told",
                row.status
            );
        }
    }
    // Each client's ownership as it was told: from its answer to its hold's end (empty when
    // a retry was answered `held` after the hold had run out: a repeat of a lapsed hold).
    for (item, held) in owners {
        for (i, &(from, to, first)) in held.iter().enumerate() {
            for &(other_from, other_to, second) in &held[i + 1..] {
                assert!(
                    !(from < other_to && other_from < to),
                    "item {item}: claim {first} told held for {from}..{to} and claim {second}                      for {other_from}..{other_to}"
                );
            }
        }
    }
    Lapsed {
        told_expired,
        lapsed: by_id.values().filter(|row| row.lapsed()).count(),
    }
}

/// Once every hold of `activity` has lapsed (waiting up to `within`), a subscriber is told
/// every slot is free, and as many fresh clients as there are slots (on every node at once)
/// are each held a different item: every slot came back, none stayed taken in Redis.
pub async fn every_slot_claimable_again(
    cluster: &Cluster,
    activity: i64,
    items: &[i64],
    within: Duration,
) {
    let slots = items.len() as i64;
    let ports = cluster.ports();
    let (_, watcher) = cluster.users(1).await.remove(0);
    let url = format!("ws://127.0.0.1:{}/ws", ports[0]);
    wait_until("every lapsed slot is back in stock", within, async || {
        let mut ws = WsClient::connect(&url, Some(&watcher))
            .await
            .map_err(|e| e.to_string())?;
        let sub = json!({"activity": activity});
        let left = match ws.try_request("activity.subscribe", sub, within).await {
            Some(Ok(ok)) => ok["stock_left"].as_i64(),
            other => return Err(format!("{other:?}")),
        };
        check(left == Some(slots), format!("{left:?} left of {slots}"))
    })
    .await;
    let users = cluster.users(items.len()).await;
    let claims = users.iter().enumerate().map(|(i, (user, token))| {
        let url = format!("ws://127.0.0.1:{}/ws", ports[i % NODES]);
        async move {
            let mut ws = WsClient::connect(&url, Some(token)).await.expect("ws");
            let claim = json!({"activity": activity, "key": format!("again-{user}")});
            let reply = ws.try_request("claim", claim, within).await;
            let ok = reply.expect("an answer").expect("held again");
            ok["item"].as_i64().expect("item")
        }
    });
    let got: HashSet<i64> = join_all(claims).await.into_iter().collect();
    let all: HashSet<i64> = items.iter().copied().collect();
    assert_eq!(got, all, "each slot claimed again, once");
}

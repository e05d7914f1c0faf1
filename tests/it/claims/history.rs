//! The history checker: what each client was told for each claim invocation ([`Event`]),
//! checked against the durable rows — no acknowledged hold missing (and each the claimant's),
//! no item with more active claims than slots, nobody above the limit, and conservation
//! (free + held + confirmed = slots).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use sqlx::{AnyPool, Row};

use crate::support::{TestApp, WAIT, WsClient, check, wait_until};

/// What one client saw for one claim invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Held {
        claim_id: i64,
        item: i64,
        /// A coupon promotion's code, as the reply gave it.
        coupon: Option<String>,
    },
    Refused(String),
    /// No answer (timeout, connection lost): the hold may or may not exist.
    Unknown,
}

/// One invocation and its outcome, as the history checker reads it.
#[derive(Debug, Clone)]
pub struct Event {
    pub user: i64,
    pub key: String,
    pub outcome: Outcome,
    /// From sending the claim to its reply (zero when unknown).
    pub latency: Duration,
    /// When the client had its answer (epoch ms on the host's clock, which the nodes share:
    /// a hold told after another lapsed can be checked against its `expires_at`); for an
    /// unknown outcome, when it was recorded.
    pub answered_at: i64,
}

pub(crate) fn outcome_of(reply: Result<Value, corral_protocol::ErrorBody>) -> Outcome {
    match reply {
        // A repeated key answers the claim's current status: only `held` holds a slot.
        Ok(ok) if ok["status"] != "held" => Outcome::Refused(format!("status {}", ok["status"])),
        Ok(ok) => Outcome::Held {
            claim_id: ok["claim_id"].as_i64().expect("claim_id"),
            item: ok["item"].as_i64().expect("item"),
            coupon: ok["coupon_code"].as_str().map(str::to_string),
        },
        Err(err) => Outcome::Refused(err.code.as_str().to_string()),
    }
}

/// One `claim` of `key` on `activity` over `ws`, as its [`Outcome`].
pub async fn claim_once(ws: &mut WsClient, activity: i64, key: &str) -> Outcome {
    let params = serde_json::json!({"activity": activity, "key": key});
    let reply = ws.try_request("claim", params, WAIT).await;
    outcome_of(reply.expect("an answer"))
}

/// `user`'s claim of `key`, retried 200 ms apart while answered `unavailable`, as the
/// [`Event`] of its final answer; a key still undecided after `within` fails the test.
pub async fn claim_until_decided(
    ws: &mut WsClient,
    activity: i64,
    (user, key): (i64, &str),
    within: Duration,
) -> Event {
    let until = std::time::Instant::now() + within;
    loop {
        match claim_once(ws, activity, key).await {
            Outcome::Refused(code) if code == "unavailable" => {
                assert!(std::time::Instant::now() < until, "key {key} never decided");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            outcome => {
                return Event {
                    user,
                    key: key.to_string(),
                    outcome,
                    latency: Duration::ZERO,
                    answered_at: super::now_ms(),
                };
            }
        }
    }
}

/// Checks a history against the durable rows: no acknowledged hold missing (and each is the
/// claimant's), no item with more active claims than slots, nobody above the limit, and
/// conservation (free + held + confirmed = slots, with `left` from the ledger when given).
pub async fn check_history(
    app: &TestApp,
    activity: i64,
    slots: &HashMap<i64, i64>,
    limit: i64,
    history: &[Event],
) {
    let stock = app
        .state
        .hub
        .claims
        .stock(activity)
        .await
        .expect("stock")
        .expect("activity");
    // The coalesced view catches up with the last change within a period.
    let total: i64 = slots.values().sum();
    let pool = &app.state.db.pool;
    let left = wait_until(
        "the ledger's stock agrees with the rows",
        WAIT,
        async || {
            let left = stock.borrow().left;
            let active = active_rows(pool, activity).await;
            check(
                left + active == total,
                format!("{left} left + {active} active rows of {total}"),
            )
            .map(|()| left)
        },
    )
    .await;
    check_rows(
        &app.state.db.pool,
        activity,
        slots,
        limit,
        history,
        Some(left),
    )
    .await;
}

/// Claims of `activity` holding a slot (held or confirmed).
async fn active_rows(pool: &AnyPool, activity: i64) -> i64 {
    sqlx::query(
        "SELECT COUNT(*) FROM claims WHERE activity_id = $1 AND status IN ('held', 'confirmed')",
    )
    .bind(activity)
    .fetch_one(pool)
    .await
    .expect("active claims")
    .get(0)
}

/// [`check_history`] against a pool, with the ledger's `left` when known.
pub async fn check_rows(
    pool: &AnyPool,
    activity: i64,
    slots: &HashMap<i64, i64>,
    limit: i64,
    history: &[Event],
    left: Option<i64>,
) {
    let rows = sqlx::query(
        "SELECT id, item_id, user_id, claim_key, status FROM claims WHERE activity_id = $1",
    )
    .bind(activity)
    .fetch_all(pool)
    .await
    .expect("claims");
    let mut by_id = HashMap::new();
    let mut per_item: HashMap<i64, i64> = HashMap::new();
    let mut per_user: HashMap<i64, i64> = HashMap::new();
    for row in &rows {
        let (id, item, user, key, status): (i64, i64, i64, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        if status == "held" || status == "confirmed" {
            *per_item.entry(item).or_default() += 1;
            *per_user.entry(user).or_default() += 1;
        }
        by_id.insert(id, (item, user, key, status));
    }
    for event in history {
        if let Outcome::Held { claim_id, item, .. } = &event.outcome {
            let row = by_id
                .get(claim_id)
                .unwrap_or_else(|| panic!("acknowledged hold {claim_id} is missing"));
            assert_eq!((row.0, row.1, &row.2), (*item, event.user, &event.key));
        }
    }
    for (item, n) in &per_item {
        let cap = slots.get(item).copied().unwrap_or(0);
        assert!(*n <= cap, "item {item} has {n} owners for {cap} slots");
    }
    for (user, n) in &per_user {
        assert!(
            *n <= limit,
            "user {user} has {n} active claims, limit {limit}"
        );
    }
    let total: i64 = slots.values().sum();
    let active: i64 = per_item.values().sum();
    assert!(active <= total);
    if let Some(left) = left {
        assert_eq!(
            left + active,
            total,
            "conservation: free {left} + active {active} != {total}"
        );
    }
}

/// The rows of `activity` in each status.
pub(super) async fn statuses(pool: &AnyPool, activity: i64) -> HashMap<String, i64> {
    sqlx::query("SELECT status, COUNT(*) FROM claims WHERE activity_id = $1 GROUP BY status")
        .bind(activity)
        .fetch_all(pool)
        .await
        .expect("claims by status")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

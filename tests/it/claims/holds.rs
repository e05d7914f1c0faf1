//! Holds on one node, on both SQL engines: the per-user limit across devices with idempotent
//! keys, the sale window decided by the server's clock, and expiry and cancel giving the slot
//! back (pushed to the claimant and the watchers, counted once in the merchant view).

use std::time::Duration;

use corral_protocol::Role;
use serde_json::json;

use super::fixtures::{Promo, bulk_users, now_ms, seed};
use super::history::{
    Event, Outcome, check_history, check_rows, claim_once, claim_until_decided, outcome_of,
};
use crate::support::{Engine, TestApp, WAIT};

crate::engine_tests!(
    limit_holds_across_devices_and_keys_repeat,
    expiry_and_cancel_return_stock,
    window_is_decided_by_the_server_clock,
    a_hold_that_commits_after_its_write_failed_is_not_sold_twice,
);

async fn limit_holds_across_devices_and_keys_repeat(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let promo = Promo {
        per_user_limit: 2,
        ..Promo::open(10)
    };
    let (activity, items, _) = seed(&app, &promo).await;
    let (user, token) = bulk_users(&app, 1, Role::User).await.remove(0);
    // Four devices of one user, three keys each, all at once.
    let mut devices = Vec::new();
    for _ in 0..4 {
        devices.push(app.client(Some(&token)).await);
    }
    // Replies on one socket may come in any order, so each round has one claim in flight
    // per device, the devices racing each other.
    let mut history = Vec::new();
    for k in 0..3 {
        let mut sent = Vec::new();
        for (d, ws) in devices.iter_mut().enumerate() {
            let key = format!("d{d}-k{k}");
            let id = ws
                .send_op("claim", json!({"activity": activity, "key": key}))
                .await;
            sent.push((d, id, key));
        }
        for (d, id, key) in sent {
            let outcome = outcome_of(devices[d].reply_to(Some(id)).await);
            history.push(Event {
                user,
                key,
                outcome,
                latency: Duration::ZERO,
                answered_at: now_ms(),
            });
        }
    }
    let held: Vec<_> = history
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Held { .. }))
        .collect();
    assert_eq!(held.len(), 2, "{history:?}");
    assert_eq!(
        history
            .iter()
            .filter(|e| e.outcome == Outcome::Refused("limit_reached".into()))
            .count(),
        10
    );
    // Every device of the claimant is told about each hold.
    for ws in &mut devices {
        let pushed = ws.next_event("claim.updated").await.expect("claim.updated");
        assert_eq!(pushed["status"], "held");
    }
    // The same key gives the same claim, also on a new connection; a refused key stays refused.
    let first = held[0].clone();
    let mut again = app.client(Some(&token)).await;
    let reply = again
        .request("claim", json!({"activity": activity, "key": first.key}))
        .await;
    assert_eq!(outcome_of(reply), first.outcome);
    let refused = history
        .iter()
        .find(|e| matches!(e.outcome, Outcome::Refused(_)))
        .expect("a refusal");
    let reply = again
        .request("claim", json!({"activity": activity, "key": refused.key}))
        .await;
    assert_eq!(outcome_of(reply), refused.outcome);
    // Another user with the same key is another claim.
    let (_, other) = bulk_users(&app, 1, Role::User).await.remove(0);
    let mut ws = app.client(Some(&other)).await;
    let reply = ws
        .request("claim", json!({"activity": activity, "key": first.key}))
        .await;
    assert!(matches!(outcome_of(reply), Outcome::Held { claim_id, .. }
        if Outcome::Held { claim_id, item: 0, coupon: None } != first.outcome));
    let slots = items.iter().map(|i| (*i, 1)).collect();
    check_history(&app, activity, &slots, 2, &history).await;
}

async fn window_is_decided_by_the_server_clock(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let later = Promo {
        starts_at: now_ms() + 60_000,
        ..Promo::open(1)
    };
    let (soon, _, _) = seed(&app, &later).await;
    let over = Promo {
        starts_at: now_ms() - 10_000,
        ends_at: now_ms() - 1,
        ..Promo::open(1)
    };
    let (past, _, _) = seed(&app, &over).await;
    let (_, token) = bulk_users(&app, 1, Role::User).await.remove(0);
    let mut ws = app.client(Some(&token)).await;
    let err = ws
        .request("claim", json!({"activity": soon, "key": "a"}))
        .await
        .expect_err("not started");
    assert_eq!(err.code.as_str(), "not_started");
    let err = ws
        .request("claim", json!({"activity": past, "key": "a"}))
        .await
        .expect_err("ended");
    assert_eq!(err.code.as_str(), "ended");
    let err = ws
        .request("claim", json!({"activity": 987_654_321, "key": "a"}))
        .await
        .expect_err("missing");
    assert_eq!(err.code.as_str(), "not_found");
}

async fn expiry_and_cancel_return_stock(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let promo = Promo {
        hold_seconds: 1,
        ..Promo::open(1)
    };
    let (activity, items, merchant) = seed(&app, &promo).await;
    let mut stock = app
        .state
        .hub
        .claims
        .stock(activity)
        .await
        .expect("stock")
        .expect("activity");
    assert_eq!(stock.borrow_and_update().left, 1);
    let (_, alice) = bulk_users(&app, 1, Role::User).await.remove(0);
    let (_, bob) = bulk_users(&app, 1, Role::User).await.remove(0);
    let mut a = app.client(Some(&alice)).await;
    let mut b = app.client(Some(&bob)).await;
    let mut watcher = app.client(Some(&bob)).await;
    let sub = watcher
        .request("activity.subscribe", json!({"activity": activity}))
        .await
        .expect("subscribe");
    assert_eq!(sub["stock_left"], 1);
    let held = a
        .request("claim", json!({"activity": activity, "key": "a1"}))
        .await
        .expect("held");
    assert_eq!(held["status"], "held");
    let err = b
        .request("claim", json!({"activity": activity, "key": "b1"}))
        .await
        .expect_err("sold out");
    assert_eq!(err.code.as_str(), "sold_out");
    // The hold lapses: the claimant is told, the stock comes back.
    let pushed = a.next_event("claim.updated").await.expect("held push");
    assert_eq!(pushed["status"], "held");
    let pushed = a.next_event("claim.updated").await.expect("expired push");
    assert_eq!(
        (pushed["status"].as_str(), pushed["claim_id"].as_i64()),
        (Some("expired"), held["claim_id"].as_i64())
    );
    tokio::time::timeout(WAIT, stock.wait_for(|s| s.left == 1))
        .await
        .expect("stock returns in time")
        .expect("stock");
    // Subscribers saw the slot go, then come back.
    let gone = watcher
        .next_event("activity.stock")
        .await
        .expect("stock push");
    assert_eq!(
        (gone["activity"].as_i64(), gone["left"].as_i64()),
        (Some(activity), Some(0))
    );
    let back = watcher
        .next_event("activity.stock")
        .await
        .expect("stock push");
    assert_eq!(back["left"], 1);
    // Bob takes it, then gives it back early.
    let bob_hold = b
        .request("claim", json!({"activity": activity, "key": "b2"}))
        .await
        .expect("held");
    assert_eq!(bob_hold["item"], items[0]);
    let err = a
        .request("claim.cancel", json!({"claim_id": bob_hold["claim_id"]}))
        .await
        .expect_err("not alice's");
    assert_eq!(err.code.as_str(), "not_found");
    let cancelled = b
        .request("claim.cancel", json!({"claim_id": bob_hold["claim_id"]}))
        .await
        .expect("cancelled");
    assert_eq!(cancelled["status"], "cancelled");
    let err = a
        .request("claim.cancel", json!({"claim_id": held["claim_id"]}))
        .await
        .expect_err("expired");
    assert_eq!(err.code.as_str(), "hold_expired");
    tokio::time::timeout(WAIT, stock.wait_for(|s| s.left == 1))
        .await
        .expect("stock returns in time")
        .expect("stock");
    // The merchant view counts each state once.
    let (status, view) = app
        .get(
            &format!("/api/v1/activities/{activity}/claims"),
            Some(&merchant),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        view["summary"],
        json!({"slots": 1, "held": 0, "confirmed": 0, "expired": 1, "cancelled": 1, "refund_due": 0})
    );
    assert_eq!(view["claims"].as_array().map(Vec::len), Some(2));
    // Cancelling a cancelled claim succeeds again and gives nothing back twice: the one slot
    // takes one new hold, then the promotion is sold out.
    let again = b
        .request("claim.cancel", json!({"claim_id": bob_hold["claim_id"]}))
        .await
        .expect("cancelling again");
    assert_eq!(again["status"], "cancelled");
    let retaken = a
        .request("claim", json!({"activity": activity, "key": "a2"}))
        .await
        .expect("held");
    assert_eq!(retaken["item"], items[0]);
    let err = b
        .request("claim", json!({"activity": activity, "key": "b3"}))
        .await
        .expect_err("sold out");
    assert_eq!(err.code.as_str(), "sold_out");
    let (status, _) = app
        .get(
            &format!("/api/v1/activities/{activity}/claims"),
            Some(&alice),
        )
        .await;
    assert_eq!(status, 403);
    let (_, other_merchant) = bulk_users(&app, 1, Role::Merchant).await.remove(0);
    let (status, _) = app
        .get(
            &format!("/api/v1/activities/{activity}/claims"),
            Some(&other_merchant),
        )
        .await;
    assert_eq!(status, 403);
}

/// A hold whose write failed but committed afterwards (a write cut mid-commit can, on
/// PostgreSQL; a fault hook answers the batch failed and commits it 3 s later) leaves the one
/// slot to one client: the node voids the decision in the rows before it gives the slot back,
/// so the late commit finds the void row instead of landing. (Giving the slot back as soon as
/// the rows read empty let a second client hold it too: two held rows for one slot.)
async fn a_hold_that_commits_after_its_write_failed_is_not_sold_twice(engine: Engine) {
    use corral::store::sql::claims::late_commit;
    let app = TestApp::spawn(engine).await;
    let (activity, items, _) = seed(&app, &Promo::open(1)).await;
    late_commit::commit_late_once(activity, Duration::from_secs(3));
    let mut clients = Vec::new();
    for (user, token) in bulk_users(&app, 2, Role::User).await {
        clients.push((user, format!("late-{user}"), app.client(Some(&token)).await));
    }
    let (_, key, ws) = &mut clients[0];
    let first = claim_once(ws, activity, key).await;
    assert_eq!(
        first,
        Outcome::Refused("unavailable".into()),
        "the write failed"
    );
    // Each retries its key until it has a final answer, the late commit landing meanwhile.
    let mut history = Vec::new();
    for (user, key, ws) in &mut clients {
        let decided = claim_until_decided(ws, activity, (*user, key), 4 * WAIT).await;
        history.push(decided);
    }
    // After the late commit has had its chance: one of the two holds the one slot.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held = history
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Held { .. }))
        .count();
    assert_eq!(held, 1, "exactly one holds the one slot: {history:?}");
    let slots = items.iter().map(|i| (*i, 1)).collect();
    check_rows(&app.state.db.pool, activity, &slots, 1, &history, None).await;
}

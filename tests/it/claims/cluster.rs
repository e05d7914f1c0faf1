//! Claims in cluster mode (PostgreSQL rows, the ledger in Redis): reconciliation gives back a
//! slot taken in Redis by a node that died before its row committed, and a claim taken on one
//! node reaches the claimant's device and the activity's watchers on another.

use std::sync::Arc;

use corral_protocol::Role;
use serde_json::json;

use super::fixtures::{Promo, bulk_users, hold, redis_mode, seed};
use crate::support::{Engine, TestApp, WsClient, unique};

/// A slot taken in Redis by a node that died before its hold row committed (here: the claim
/// script run directly, no row) is given back by reconciliation on the second pass that sees
/// it, while claims committing during the passes keep theirs and the counters match the rows.
#[actix_web::test]
async fn reconciliation_returns_orphan_slots_in_redis() {
    use corral::store::ledger::SlotArbiter;
    use corral::store::reconcile::{Reconciled, Reconciler};
    use corral::store::redis::ledger::RedisArbiter;
    use corral::store::sql::ActivityRepo;
    use corral::store::sql::claims::{ClaimRows, SqlCatalog};
    use corral_actors::ActivityCatalog;
    use corral_actors::claims::Decision;

    const SLOTS: i64 = 12;
    let prefix = unique("corral_test") + ":";
    let app = TestApp::spawn_with(Engine::Postgres, |s| {
        redis_mode(&prefix)(s);
        s.redis.claims_reconcile_ms = 0;
    })
    .await;
    let promo = Promo {
        slots: vec![SLOTS],
        per_user_limit: 100,
        ..Promo::open(0)
    };
    let (activity, items, _) = seed(&app, &promo).await;
    let users = bulk_users(&app, 2, Role::User).await;
    let (user, token) = users[0].clone();
    let mut ws = WsClient::connect(&app.ws_url(), Some(&token))
        .await
        .expect("ws");
    for i in 0..4 {
        hold(&mut ws, activity, format!("before-{i}")).await;
    }

    let db = Arc::new(ActivityRepo::new(&app.state.db));
    let catalog = Arc::new(SqlCatalog::new(db.clone()));
    let spec = catalog.activity(activity).await.unwrap().expect("spec");
    let arbiter = RedisArbiter::new(app.state.redis.clone().expect("redis"))
        .await
        .unwrap();
    let orphan_user = users[1].0;
    let took = arbiter.decide(&spec, orphan_user, "orphan", None).await;
    let took = took.unwrap().expect("counters stand");
    assert_eq!(took.decision, Decision::Take(items[0]));
    assert_eq!(left(&arbiter, &spec).await, SLOTS - 5);

    let reconciler = Reconciler::new(
        arbiter.clone(),
        ClaimRows::start(app.state.db.clone(), 1),
        catalog,
    );
    let first = reconciler.pass().await.unwrap();
    assert_eq!((first.orphans, first.suspects), (0, 1), "{first:?}");
    assert_eq!(left(&arbiter, &spec).await, SLOTS - 5);

    // Claims committing while the second pass runs: the pass may see their slots without
    // rows, but only as first-time suspects.
    let mut other = WsClient::connect(&app.ws_url(), Some(&token))
        .await
        .expect("ws");
    let during = async {
        for i in 0..4 {
            hold(&mut other, activity, format!("during-{i}")).await;
        }
    };
    let (second, ()) = tokio::join!(reconciler.pass(), during);
    assert_eq!(second.unwrap().orphans, 1);
    let third = reconciler.pass().await.unwrap();
    assert_eq!(
        third,
        Reconciled::default(),
        "the passes left nothing to fix"
    );

    // The orphan's slot is back: 8 committed holds, and the key is voided for good.
    let rows = app
        .state
        .repos
        .claims
        .claims_of_activity(activity)
        .await
        .expect("rows");
    let held: Vec<_> = rows
        .iter()
        .filter(|c| c.status.as_str() == "held")
        .collect();
    assert_eq!(held.len(), 8);
    assert!(held.iter().all(|c| c.user == user));
    let voided = rows.iter().find(|c| c.key == "orphan").expect("void row");
    assert_eq!(
        (voided.user, voided.status.as_str()),
        (orphan_user, "cancelled")
    );
    assert_eq!(left(&arbiter, &spec).await, SLOTS - 8);
    let mut in_redis: Vec<String> = arbiter
        .held(&spec)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.key)
        .collect();
    in_redis.sort();
    let mut committed: Vec<String> = held.iter().map(|c| c.key.clone()).collect();
    committed.sort();
    assert_eq!(in_redis, committed);
    // Every remaining slot can still be claimed, and no more.
    for i in 0..SLOTS - 8 {
        hold(&mut ws, activity, format!("after-{i}")).await;
    }
    let sold_out = ws
        .request(
            "claim",
            json!({"activity": activity, "key": "one-too-many"}),
        )
        .await
        .expect_err("sold out");
    assert_eq!(sold_out.code.as_str(), "sold_out");
}

/// Two nodes of a cluster: a claim taken on one node is pushed to the claimant's device on the
/// other, and that node's watchers of the activity see the stock move both ways.
#[actix_web::test]
async fn claim_updates_and_stock_reach_the_other_node() {
    let nodes = TestApp::cluster(2, |_| {}).await;
    let (activity, _, _) = seed(&nodes[0], &Promo::open(2)).await;
    let (_, user) = bulk_users(&nodes[0], 1, Role::User).await.remove(0);
    let (_, other) = bulk_users(&nodes[0], 1, Role::User).await.remove(0);
    let mut desk = nodes[0].client(Some(&user)).await;
    let mut phone = nodes[1].client(Some(&user)).await;
    let mut watcher = nodes[1].client(Some(&other)).await;
    let sub = watcher
        .request("activity.subscribe", json!({"activity": activity}))
        .await
        .expect("subscribe");
    assert_eq!(sub["stock_left"], 2);

    let held = desk
        .request("claim", json!({"activity": activity, "key": "k1"}))
        .await
        .expect("held");
    let pushed = phone.next_event("claim.updated").await.expect("held push");
    assert_eq!(
        (pushed["claim_id"].as_i64(), pushed["status"].as_str()),
        (held["claim_id"].as_i64(), Some("held"))
    );
    let stock = watcher.next_event("activity.stock").await.expect("stock");
    assert_eq!(stock["left"], 1);

    desk.request("claim.cancel", json!({"claim_id": held["claim_id"]}))
        .await
        .expect("cancel");
    let pushed = phone
        .next_event("claim.updated")
        .await
        .expect("cancel push");
    assert_eq!(pushed["status"], "cancelled");
    let stock = watcher.next_event("activity.stock").await.expect("stock");
    assert_eq!(stock["left"], 2);
    phone.assert_silent("claim.updated").await;
}

/// Slots left in the Redis counters of `spec` (which must stand).
async fn left(
    arbiter: &corral::store::redis::ledger::RedisArbiter,
    spec: &corral_actors::ActivityRecord,
) -> i64 {
    use corral::store::ledger::SlotArbiter;
    let stock = arbiter.stock(spec).await.expect("stock read");
    stock.expect("counters stand").left
}

//! Claims across a crash or restart of the real binary ([`NodeProcess`]): a SIGKILL in the
//! middle of a flash crowd loses no acknowledged hold (embedded on SQLite, and PostgreSQL with
//! the ledger in Redis), and the claim ledger is rebuilt from the rows at start-up.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use corral::auth::JwtKeys;
use corral_protocol::Role;
use serde_json::{Value, json};
use sqlx::AnyPool;

use super::crowd::{crowd, tally};
use super::fixtures::{Promo, bulk_users_in, now_ms, seed_in};
use super::history::{Event, Outcome, check_rows, outcome_of, statuses};
use crate::support::{Engine, NodeProcess, WAIT, WsClient, check, redis_url, unique, wait_until};

crate::engine_tests!(ledger_is_rebuilt_from_the_rows_at_start_up);

/// Where a node process keeps its claims.
#[derive(Debug, Clone, Copy)]
enum Storage {
    /// The embedded ledger over this SQL engine.
    Embedded(Engine),
    /// PostgreSQL rows with the ledger in Redis (cluster mode).
    Redis,
}

/// A node process (the real binary) in `dir` on `storage`, with a pool on its database and
/// its token keys, so a test can seed rows and issue tokens the node accepts.
async fn node_process(storage: Storage, dir: &std::path::Path) -> (NodeProcess, AnyPool, JwtKeys) {
    let secret = unique("node-process-secret");
    let mut env = vec![
        ("CORRAL_SERVER__WORKERS", "1".to_string()),
        ("CORRAL_AUTH__JWT_SECRET", secret.clone()),
        ("CORRAL_DATABASE__SQLITE_SYNCHRONOUS", "normal".to_string()),
        ("CORRAL_WS__MAX_PER_IP", "100000".to_string()),
    ];
    sqlx::any::install_default_drivers();
    let db_url = match storage {
        Storage::Embedded(Engine::Sqlite) => {
            format!("sqlite://{}", dir.join("corral.db").display())
        }
        Storage::Embedded(Engine::Postgres) => {
            let url = crate::support::fresh_postgres_database().await;
            env.push(("CORRAL_DATABASE__URL", url.clone()));
            url
        }
        Storage::Redis => {
            let url = crate::support::fresh_postgres_database().await;
            env.extend([
                ("CORRAL_DATABASE__URL", url.clone()),
                ("CORRAL_REDIS__URL", redis_url()),
                ("CORRAL_REDIS__KEY_PREFIX", unique("corral_node") + ":"),
                // Slots a dead node took in Redis without a row come back within two passes.
                ("CORRAL_REDIS__CLAIMS_RECONCILE_MS", "500".to_string()),
            ]);
            url
        }
    };
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let node = NodeProcess::start(dir, &env).await;
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(&db_url)
        .await
        .expect("open the node's database");
    let keys = JwtKeys::new(
        &corral::config::Secret::from(secret.as_str()),
        "corral",
        3600,
    );
    (node, pool, keys)
}

/// The activity's `stock_left` as the node reports it (its ledger's count).
async fn stock_left(node: &NodeProcess, token: &str, activity: i64) -> Result<i64, String> {
    let body: Value = reqwest::Client::new()
        .get(node.url(&format!("/api/v1/activities/{activity}")))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    body["stock_left"].as_i64().ok_or_else(|| body.to_string())
}

/// A crash in the middle of a flash crowd: the node (the real binary; embedded on SQLite, or
/// on PostgreSQL with its claim ledger in Redis) is SIGKILLed once it has acknowledged 30
/// holds, while claims are still arriving. After a restart every acknowledged hold exists,
/// nothing is oversold, the ledger rebuilt from the rows sells exactly the slots left (a
/// claimant's key gives back the same claim, a new key hits the per-user limit), and every
/// hold expires on time.
async fn sigkill_mid_crowd(storage: Storage) {
    const CLIENTS: usize = 800;
    const SLOTS: usize = 300;
    // Long enough that no hold lapses before the checks after the restart are done, on a
    // loaded host too.
    const HOLD_SECONDS: i64 = 45;
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut node, pool, keys) = node_process(storage, dir.path()).await;
    let users = bulk_users_in(&pool, &keys, CLIENTS, Role::User).await;
    let start = now_ms() + 3000;
    let promo = Promo {
        starts_at: start,
        hold_seconds: HOLD_SECONDS,
        ..Promo::open(SLOTS)
    };
    let (activity, items, _) = seed_in(&pool, &keys, &promo).await;
    let answered = Arc::new(AtomicUsize::new(0));
    // The claims arrive over ten seconds, so the node is still taking slots when it dies (all
    // at once, one commit could take every slot before the kill lands; on a loaded host the
    // acknowledgements lag the decisions by seconds).
    let crowd = crowd(
        vec![node.port],
        users,
        activity,
        (start, 10_000),
        2,
        answered.clone(),
    );
    // Kill the node once it has acknowledged 30 holds, while the crowd is being answered.
    wait_until("the node acknowledges 30 holds", 6 * WAIT, async || {
        let n = answered.load(Ordering::Relaxed);
        check(n >= 30, n)
    })
    .await;
    node.crash();
    wait_until("every client of the crowd is done", 6 * WAIT, async || {
        check(crowd.is_finished(), "clients still running")
    })
    .await;
    let history = crowd.join().expect("crowd");
    let acked: Vec<&Event> = history
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Held { .. }))
        .collect();
    let unanswered = history
        .iter()
        .filter(|e| e.outcome == Outcome::Unknown)
        .count();
    // The kill landed mid-crowd: some holds were acknowledged, the slots were not all gone,
    // and some claims were cut off unanswered.
    assert!(
        acked.len() >= 30 && acked.len() < SLOTS && unanswered > 0,
        "not a mid-crowd kill: {} held, {unanswered} unanswered of {CLIENTS}",
        acked.len()
    );
    node.restart().await;
    let slots: HashMap<i64, i64> = items.iter().map(|i| (*i, 1)).collect();
    // Every hold a client was told about survived; nothing is oversold.
    check_rows(&pool, activity, &slots, 1, &history, None).await;
    let rows = statuses(&pool, activity).await;
    let held_rows = rows.get("held").copied().unwrap_or(0);
    assert!(
        held_rows < SLOTS as i64,
        "every slot was held before the kill: nothing left to sell after it"
    );
    assert!(
        held_rows as usize >= acked.len(),
        "{rows:?} for {} acknowledged holds",
        acked.len()
    );

    // The restarted node's ledger is the rows': it has exactly the rest to sell.
    let (_, token) = bulk_users_in(&pool, &keys, 1, Role::User).await.remove(0);
    wait_until(
        "the restarted ledger agrees with the rows",
        3 * WAIT,
        async || {
            let left = stock_left(&node, &token, activity).await?;
            check(left == SLOTS as i64 - held_rows, format!("{left} left"))
        },
    )
    .await;
    let claimant = acked[0];
    let claimant_token = keys.issue(claimant.user, Role::User).expect("token");
    let mut ws = WsClient::connect(&node.ws_url(), Some(&claimant_token))
        .await
        .expect("reconnect");
    let again = ws
        .request("claim", json!({"activity": activity, "key": claimant.key}))
        .await;
    assert_eq!(
        outcome_of(again),
        claimant.outcome,
        "the same key, the same claim"
    );
    let more = ws
        .request(
            "claim",
            json!({"activity": activity, "key": "after-the-crash"}),
        )
        .await
        .expect_err("over the per-user limit");
    assert_eq!(more.code.as_str(), "limit_reached");
    let late = bulk_users_in(&pool, &keys, SLOTS - held_rows as usize + 1, Role::User).await;
    let ws_url = node.ws_url();
    let after = futures_util::future::join_all(late.into_iter().map(|(user, token)| {
        let ws_url = ws_url.clone();
        async move {
            let mut ws = WsClient::connect(&ws_url, Some(&token))
                .await
                .expect("connect");
            let key = format!("late-{user}");
            let reply = ws
                .request("claim", json!({"activity": activity, "key": key}))
                .await;
            Event {
                user,
                key,
                outcome: outcome_of(reply),
                latency: Duration::ZERO,
                answered_at: now_ms(),
            }
        }
    }))
    .await;
    let held_after = after
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Held { .. }))
        .count();
    assert_eq!(
        tally(&after),
        (SLOTS - held_rows as usize, 1, 0),
        "after the restart: {held_after} held; refusals: {:?}",
        after
            .iter()
            .filter(|e| !matches!(e.outcome, Outcome::Held { .. }))
            .collect::<Vec<_>>()
    );
    let everything: Vec<Event> = history.iter().cloned().chain(after).collect();
    check_rows(&pool, activity, &slots, 1, &everything, Some(0)).await;

    // The restarted node re-armed the expiries: every hold lapses on time.
    wait_until(
        "every hold expires",
        Duration::from_secs(HOLD_SECONDS as u64) + 3 * WAIT,
        async || {
            let rows = statuses(&pool, activity).await;
            check(!rows.contains_key("held"), rows)
        },
    )
    .await;
    // Every hold expired; the only other rows are keys voided as orphans (cluster mode).
    let rows = statuses(&pool, activity).await;
    assert_eq!(
        rows.get("expired").copied(),
        Some(held_rows + held_after as i64),
        "{rows:?}"
    );
    assert!(
        rows.keys().all(|s| s == "expired" || s == "cancelled"),
        "{rows:?}"
    );
}

#[actix_web::test]
async fn sigkill_mid_crowd_loses_no_acknowledged_hold_embedded() {
    sigkill_mid_crowd(Storage::Embedded(Engine::Sqlite)).await;
}

#[actix_web::test]
async fn sigkill_mid_crowd_loses_no_acknowledged_hold_redis() {
    sigkill_mid_crowd(Storage::Redis).await;
}

/// The claim ledger is rebuilt from the rows when a node starts: after a restart the node
/// sells exactly the slots no row holds, a claimant's key gives back the same claim, a new key
/// of a user at the limit is `limit_reached`, and a slot given back is sold again, once.
async fn ledger_is_rebuilt_from_the_rows_at_start_up(engine: Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut node, pool, keys) = node_process(Storage::Embedded(engine), dir.path()).await;
    let promo = Promo {
        per_user_limit: 2,
        ..Promo::open(4)
    };
    let (activity, items, _) = seed_in(&pool, &keys, &promo).await;
    let users = bulk_users_in(&pool, &keys, 4, Role::User).await;
    let ws_url = node.ws_url();
    let claim = async |token: &str, key: &str| {
        let mut ws = WsClient::connect(&ws_url, Some(token))
            .await
            .expect("connect");
        ws.request("claim", json!({"activity": activity, "key": key}))
            .await
    };
    // Alice takes her two, bob one: one slot left.
    let mut history = Vec::new();
    for (who, key) in [(0, "a1"), (0, "a2"), (1, "b1")] {
        let (user, token) = &users[who];
        let outcome = outcome_of(claim(token, key).await);
        assert!(
            matches!(outcome, Outcome::Held { .. }),
            "{key}: {outcome:?}"
        );
        history.push(Event {
            user: *user,
            key: key.to_string(),
            outcome,
            latency: Duration::ZERO,
            answered_at: now_ms(),
        });
    }
    node.restart().await;

    let (carol, carol_token) = &users[2];
    assert_eq!(stock_left(&node, carol_token, activity).await, Ok(1));
    let again = claim(&users[0].1, "a1").await;
    assert_eq!(
        outcome_of(again),
        history[0].outcome,
        "the same key, the same claim"
    );
    let over = claim(&users[0].1, "a3")
        .await
        .expect_err("alice is at her limit");
    assert_eq!(over.code.as_str(), "limit_reached");
    let last = outcome_of(claim(carol_token, "c1").await);
    assert!(matches!(last, Outcome::Held { .. }), "{last:?}");
    history.push(Event {
        user: *carol,
        key: "c1".into(),
        outcome: last,
        latency: Duration::ZERO,
        answered_at: now_ms(),
    });
    let (_, dave_token) = &users[3];
    let none = claim(dave_token, "d1").await.expect_err("sold out");
    assert_eq!(none.code.as_str(), "sold_out");

    // Bob gives his back after another restart; the slot is sold again, once.
    node.restart().await;
    let Outcome::Held { claim_id, .. } = history[2].outcome else {
        unreachable!("checked above")
    };
    let mut bob = WsClient::connect(&node.ws_url(), Some(&users[1].1))
        .await
        .expect("connect");
    let cancelled = bob
        .request("claim.cancel", json!({"claim_id": claim_id}))
        .await
        .expect("cancel");
    assert_eq!(cancelled["status"], "cancelled");
    let resold = outcome_of(claim(dave_token, "d2").await);
    assert!(matches!(resold, Outcome::Held { .. }), "{resold:?}");
    let none = claim(carol_token, "c2").await.expect_err("sold out again");
    assert_eq!(none.code.as_str(), "sold_out");
    let slots = items.iter().map(|i| (*i, 1)).collect();
    check_rows(&pool, activity, &slots, 2, &history, None).await;
    let rows = statuses(&pool, activity).await;
    assert_eq!(rows.get("held"), Some(&4), "{rows:?}");
    assert_eq!(rows.get("cancelled"), Some(&1), "{rows:?}");
}

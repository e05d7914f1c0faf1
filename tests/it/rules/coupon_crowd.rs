//! A coupon pool under a flash crowd across two real node processes (PostgreSQL rows, the
//! claim ledger in Redis), one of them SIGKILLed mid-crowd: 2,000 clients for 100 codes,
//! retrying `unavailable` with their key and failing over to the other node with the same key
//! when their connection goes. At the end: exactly 100 winners holding 100 distinct codes,
//! every acknowledged winner's code is the one bound to their claim in the database, no code
//! is bound twice and no held claim is without one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use corral::auth::JwtKeys;
use corral_protocol::Role;
use sqlx::{AnyPool, Row};

use super::fixtures::load_codes;
use crate::claims::{
    Counts, Outcome, Promo, bulk_users_in, check_rows, crowd_failover, now_ms, seed_in,
};
use crate::support::{NodeProcess, WAIT, check, redis_url, unique, wait_until};

const CLIENTS: usize = 2_000;
const CODES: usize = 100;
/// The crowd's claims arrive over this long, so the kill lands while codes remain.
const SPREAD_MS: i64 = 10_000;
/// A client with no final answer this long after its first claim is a failure.
const GIVE_UP_MS: u64 = 60_000;

/// Two node processes on one fresh PostgreSQL database and one Redis key prefix, a pool on
/// the database and the nodes' token keys.
async fn two_nodes(dirs: &[tempfile::TempDir; 2]) -> (Vec<NodeProcess>, AnyPool, JwtKeys) {
    sqlx::any::install_default_drivers();
    let secret = unique("coupon-crowd-secret");
    let db = crate::support::fresh_postgres_database().await;
    let env = [
        ("CORRAL_SERVER__WORKERS", "1".to_string()),
        ("CORRAL_AUTH__JWT_SECRET", secret.clone()),
        ("CORRAL_WS__MAX_PER_IP", "100000".to_string()),
        ("CORRAL_DATABASE__URL", db.clone()),
        ("CORRAL_REDIS__URL", redis_url()),
        ("CORRAL_REDIS__KEY_PREFIX", unique("corral_coupons") + ":"),
        // Slots the dead node took in Redis without a row come back within two passes.
        ("CORRAL_REDIS__CLAIMS_RECONCILE_MS", "500".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut nodes = Vec::new();
    for dir in dirs {
        nodes.push(NodeProcess::start(dir.path(), &env).await);
    }
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(&db)
        .await
        .expect("the nodes' database");
    let keys = JwtKeys::new(
        &corral::config::Secret::from(secret.as_str()),
        "corral",
        3600,
    );
    (nodes, pool, keys)
}

/// `(claim id, code)` of every code of `activity` bound to a claim.
async fn bound_codes(pool: &AnyPool, activity: i64) -> Vec<(i64, String)> {
    sqlx::query(
        "SELECT claim_id, code FROM coupon_codes WHERE activity_id = $1 AND claim_id IS NOT NULL",
    )
    .bind(activity)
    .fetch_all(pool)
    .await
    .expect("codes")
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Ids of the held or confirmed claims of `activity`.
async fn winners(pool: &AnyPool, activity: i64) -> HashSet<i64> {
    sqlx::query("SELECT id FROM claims WHERE activity_id = $1 AND status IN ('held', 'confirmed')")
        .bind(activity)
        .fetch_all(pool)
        .await
        .expect("claims")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[actix_web::test]
async fn a_coupon_pool_survives_a_sigkill_mid_crowd_across_two_nodes() {
    let dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    let (mut nodes, pool, keys) = two_nodes(&dirs).await;
    let users = bulk_users_in(&pool, &keys, CLIENTS, Role::User).await;
    let start = now_ms() + 3_000;
    let promo = Promo {
        starts_at: start,
        ends_at: start + 600_000,
        slots: vec![CODES as i64],
        per_user_limit: 1,
        hold_seconds: 600,
    };
    let (activity, items, _) = seed_in(&pool, &keys, &promo).await;
    sqlx::query("UPDATE activities SET rules = $1 WHERE id = $2")
        .bind(r#"{"reward":{"kind":"coupon"}}"#)
        .bind(activity)
        .execute(&pool)
        .await
        .expect("rules");
    let codes: Vec<String> = (0..CODES).map(|i| format!("CROWD-{i:03}")).collect();
    let code_refs: Vec<&str> = codes.iter().map(String::as_str).collect();
    load_codes(&pool, activity, &code_refs).await;

    let counts = Arc::new(Counts::default());
    let ports = nodes.iter().map(|n| n.port).collect();
    let crowd = crowd_failover(
        ports,
        users,
        activity,
        (start, SPREAD_MS),
        GIVE_UP_MS,
        counts.clone(),
    );
    // SIGKILL the first node once the crowd has 20 winners, codes still to give.
    wait_until("20 winners", 6 * WAIT, async || {
        let n = counts.held.load(Ordering::Relaxed);
        check(n >= 20, n)
    })
    .await;
    nodes[0].crash();
    let killed_at = counts.held.load(Ordering::Relaxed);
    wait_until("every client of the crowd is done", 12 * WAIT, async || {
        check(crowd.is_finished(), "clients still claiming")
    })
    .await;
    let history = crowd.join().expect("crowd");
    assert!(
        killed_at < CODES,
        "the kill landed after every code was given"
    );

    // No acknowledged hold lost, no slot with two owners.
    let slots: HashMap<i64, i64> = items.iter().map(|i| (*i, CODES as i64)).collect();
    check_rows(&pool, activity, &slots, 1, &history, None).await;
    let told: HashMap<i64, Option<String>> = history
        .iter()
        .filter_map(|e| match &e.outcome {
            Outcome::Held {
                claim_id, coupon, ..
            } => Some((*claim_id, coupon.clone())),
            _ => None,
        })
        .collect();
    let won = winners(&pool, activity).await;
    assert_eq!(won.len(), CODES, "exactly {CODES} winners");
    let told_ids: HashSet<i64> = told.keys().copied().collect();
    assert_eq!(
        told_ids, won,
        "the clients told `held` are exactly the winners"
    );
    let bound = bound_codes(&pool, activity).await;
    let by_claim: HashMap<i64, String> = bound.iter().cloned().collect();
    let distinct: HashSet<&String> = bound.iter().map(|(_, code)| code).collect();
    assert_eq!(
        (bound.len(), by_claim.len(), distinct.len()),
        (CODES, CODES, CODES),
        "{CODES} codes, each bound to one claim: {bound:?}"
    );
    assert_eq!(
        by_claim.keys().copied().collect::<HashSet<_>>(),
        won,
        "every winner has a code, and only winners"
    );
    for (claim, code) in &told {
        assert_eq!(
            code.as_ref(),
            by_claim.get(claim),
            "claim {claim}: the code its client was told is the one in the database"
        );
    }
    let others = history
        .iter()
        .filter(|e| !matches!(e.outcome, Outcome::Held { .. }))
        .filter(|e| e.outcome != Outcome::Refused("sold_out".into()))
        .count();
    println!(
        "coupon crowd: {CLIENTS} clients, {CODES} codes, node killed at {killed_at} winners: \
         {} winners, {} distinct codes, {others} other answers, {} unavailable answers, {} failovers",
        won.len(),
        distinct.len(),
        counts.unavailable.load(Ordering::Relaxed),
        counts.failovers.load(Ordering::Relaxed),
    );
}

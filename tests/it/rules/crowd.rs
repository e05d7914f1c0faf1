//! A follower-only flash crowd: 2,000 clients subscribe during the countdown (their facts are
//! read then), half of them follow the merchant; at the start instant all claim 100 slots.
//! Exactly the slots go to followers, every other client is refused `not_eligible`, the
//! history checks against the rows, and the node reads no fact during the crowd: its count of
//! fact reads (one SQL statement each) is the same after the crowd as before the start.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use corral_protocol::Role;
use serde_json::json;

use super::fixtures::{fact_loads, follow, promo_with_rules};
use crate::claims::{
    Event, Outcome, Promo, bulk_users, check_history, now_ms, outcome_of, spawn_crowd,
};
use crate::support::{Engine, TestApp, WAIT, WsClient, check, wait_until};

const CLIENTS: usize = 2000;
const SLOTS: usize = 100;

/// One client: connects, subscribes (expecting `eligible` as `follows` says), then claims at
/// `at`.
async fn client(
    port: u16,
    token: String,
    user: i64,
    activity: i64,
    at: i64,
    follows: bool,
    ready: Arc<AtomicUsize>,
) -> Event {
    let key = format!("k-{user}");
    let unknown = |latency| Event {
        user,
        key: key.clone(),
        outcome: Outcome::Unknown,
        latency,
        answered_at: now_ms(),
    };
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut ws = None;
    for _ in 0..20 {
        if let Ok(c) = WsClient::connect(&url, Some(&token)).await {
            ws = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(mut ws) = ws else {
        return unknown(Duration::ZERO);
    };
    match ws
        .request("activity.subscribe", json!({"activity": activity}))
        .await
    {
        Ok(sub) if sub["eligible"] == follows => {
            ready.fetch_add(1, Ordering::Relaxed);
        }
        other => {
            eprintln!("client {user} (follows: {follows}) subscribed: {other:?}");
            return unknown(Duration::ZERO);
        }
    }
    let wait = at - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
    let sent = std::time::Instant::now();
    for _ in 0..20 {
        let id = ws
            .send_op("claim", json!({"activity": activity, "key": key}))
            .await;
        let Ok(reply) = tokio::time::timeout(Duration::from_secs(30), ws.reply_to(Some(id))).await
        else {
            return unknown(sent.elapsed());
        };
        let outcome = outcome_of(reply);
        if outcome == Outcome::Refused("unavailable".into()) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        return Event {
            user,
            key,
            outcome,
            latency: sent.elapsed(),
            answered_at: now_ms(),
        };
    }
    unknown(sent.elapsed())
}

async fn half_ineligible_crowd(app: &TestApp, nodes: &[&TestApp]) {
    let users = bulk_users(app, CLIENTS, Role::User).await;
    let start = now_ms() + 15_000;
    let promo = Promo {
        starts_at: start,
        ..Promo::open(SLOTS)
    };
    let rules = json!({"audience": {"followers_only": true}});
    let (activity, merchant, _) = promo_with_rules(app, &promo, &rules).await;
    let followers: std::collections::HashSet<i64> = users.iter().step_by(2).map(|u| u.0).collect();
    for user in &followers {
        follow(&app.state.db.pool, *user, merchant).await;
    }
    let ports: Arc<Vec<u16>> = Arc::new(nodes.iter().map(|n| n.port).collect());
    let ready = Arc::new(AtomicUsize::new(0));
    let follows = Arc::new(followers.clone());
    let crowd = {
        let ready = ready.clone();
        spawn_crowd(users, (start, 0), 4, move |i, user, token, at| {
            client(
                ports[i % ports.len()],
                token,
                user,
                activity,
                at,
                follows.contains(&user),
                ready.clone(),
            )
        })
    };
    wait_until(
        "every client subscribed before the start",
        WAIT * 2,
        async || {
            let n = ready.load(Ordering::Relaxed);
            check(n == CLIENTS, format!("{n} subscribed"))
        },
    )
    .await;
    assert!(
        now_ms() < start,
        "the crowd subscribed too late for the test to mean anything"
    );
    let reads = || nodes.iter().map(|node| fact_loads(node)).sum::<u64>();
    let before = reads();
    assert!(
        before >= CLIENTS as u64,
        "facts were read at subscribe: {before}"
    );
    wait_until(
        "every client of the crowd is answered",
        6 * WAIT,
        async || check(crowd.is_finished(), "clients still waiting"),
    )
    .await;
    let history = crowd.join().expect("crowd");
    let after = reads();
    assert_eq!(after, before, "facts were read during the crowd");

    let count = |f: &dyn Fn(&Event) -> bool| history.iter().filter(|e| f(e)).count();
    let held_by_followers =
        count(&|e| matches!(e.outcome, Outcome::Held { .. }) && followers.contains(&e.user));
    let held = count(&|e| matches!(e.outcome, Outcome::Held { .. }));
    let refused_outsiders = count(&|e| {
        e.outcome == Outcome::Refused("not_eligible".into()) && !followers.contains(&e.user)
    });
    let sold_out_followers =
        count(&|e| e.outcome == Outcome::Refused("sold_out".into()) && followers.contains(&e.user));
    assert_eq!(
        (
            held,
            held_by_followers,
            refused_outsiders,
            sold_out_followers
        ),
        (SLOTS, SLOTS, CLIENTS / 2, CLIENTS / 2 - SLOTS),
        "slots to followers only, every outsider not_eligible"
    );
    let items: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM activity_items WHERE activity_id = $1")
            .bind(activity)
            .fetch_all(&app.state.db.pool)
            .await
            .expect("items");
    let slots = items.iter().map(|i| (*i, 1)).collect();
    check_history(app, activity, &slots, 1, &history).await;
    let mut latencies: Vec<Duration> = history.iter().map(|e| e.latency).collect();
    latencies.sort();
    eprintln!(
        "rules crowd of {CLIENTS} on {} node(s): claim reply p50 {:?}, p99 {:?}; facts read: {before} before, {after} after",
        nodes.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
    );
}

#[actix_web::test]
async fn a_half_ineligible_crowd_gets_exactly_the_slots_without_reading_facts_embedded() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    half_ineligible_crowd(&app, &[&app]).await;
}

#[actix_web::test]
async fn a_half_ineligible_crowd_gets_exactly_the_slots_without_reading_facts_on_two_nodes() {
    let nodes = TestApp::cluster(2, |_| {}).await;
    half_ineligible_crowd(&nodes[0], &[&nodes[0], &nodes[1]]).await;
}

//! `activity.stock` under the node's frame budget: counts coalesce into as few frames as the
//! budget allows, the newest count last; a waiting count survives a supervised restart of the
//! activity actor, a count arriving during the restart still goes out, and the last count goes
//! out before `activity.ended`.

use std::time::Duration;

use corral_protocol::Role;
use serde_json::json;

use super::fixtures::{Promo, bulk_users, hold, now_ms, seed};
use super::payments::{SECRET, pay};
use crate::support::{Engine, QUIET, TestApp, WAIT, WsClient, unique};

/// A node allowing one `activity.stock` frame a second per activity (and taking payments), an
/// open activity with `slots` one-slot items (no per-user limit in the way), a claimant, and
/// `watchers` sockets subscribed to it (so stock frames are at least `watchers` seconds apart).
async fn watchers_on_a_budget(watchers: usize, slots: usize) -> Budgeted {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| {
        s.promotions.stock_frames_per_sec = 1;
        s.payments.webhook_secret = corral::config::Secret::from(SECRET);
    })
    .await;
    let promo = Promo {
        per_user_limit: slots as i64,
        ..Promo::open(slots)
    };
    let (activity, _, _) = seed(&app, &promo).await;
    let (_, alice) = bulk_users(&app, 1, Role::User).await.remove(0);
    let claimant = app.client(Some(&alice)).await;
    let mut subscribed = Vec::new();
    for _ in 0..watchers {
        let mut watcher = app.client(Some(&alice)).await;
        let sub = watcher
            .request("activity.subscribe", json!({"activity": activity}))
            .await
            .expect("subscribe");
        assert_eq!(sub["stock_left"], slots);
        subscribed.push(watcher);
    }
    let desk = app
        .state
        .hub
        .claims
        .stock(activity)
        .await
        .expect("stock")
        .expect("activity");
    Budgeted {
        slots: slots as i64,
        gap: Duration::from_secs(watchers as u64),
        app,
        activity,
        claimant,
        watchers: subscribed,
        desk,
    }
}

/// The set-up of the stock-budget tests.
struct Budgeted {
    app: TestApp,
    activity: i64,
    claimant: WsClient,
    watchers: Vec<WsClient>,
    /// The claim desk's coalesced stock: a count shown here has been handed to the actor.
    desk: tokio::sync::watch::Receiver<corral_actors::ports::claims::StockLevel>,
    /// Slots of the activity.
    slots: i64,
    /// The least time between two stock frames.
    gap: Duration,
}

impl Budgeted {
    /// Takes one more slot and waits until the desk handed the new count to the actor;
    /// returns the count and the claim.
    async fn take(&mut self, key: &str) -> (i64, i64) {
        let held = self
            .claimant
            .request("claim", json!({"activity": self.activity, "key": key}))
            .await
            .expect("held");
        let claim = held["claim_id"].as_i64().expect("claim_id");
        let rows = self
            .app
            .state
            .repos
            .claims
            .claims_of_activity(self.activity)
            .await
            .expect("rows")
            .len() as i64;
        let left = self.slots - rows;
        let desk = &mut self.desk;
        tokio::time::timeout(WAIT, desk.wait_for(|s| s.left == left))
            .await
            .unwrap_or_else(|_| panic!("the desk never published {left} left"))
            .expect("desk");
        (left, claim)
    }
}

/// The `left` of every `activity.stock` frame up to and including the one carrying `last`.
async fn stock_frames_until(ws: &mut WsClient, last: i64, within: Duration) -> Vec<i64> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    while seen.last() != Some(&last) {
        let frame = ws
            .next_event_until("activity.stock", deadline)
            .await
            .unwrap_or_else(|| panic!("no stock frame with {last} left; saw {seen:?}"));
        seen.push(frame["left"].as_i64().expect("left"));
    }
    seen
}

/// `activity.stock` stays within the node's frame budget: with a budget of one frame a second
/// and two watchers (a frame every 2 s), five counts handed to the actor one after the other
/// give the first count at once and fold the rest into as few frames as the time they took
/// allows, the newest count last (without the budget each would have its own frame).
#[actix_web::test]
async fn stock_frames_stay_within_the_budget() {
    let mut b = watchers_on_a_budget(2, 10).await;
    assert_eq!(b.take("k0").await.0, 9);
    let first_change = std::time::Instant::now();
    for i in 1..5 {
        b.take(&format!("k{i}")).await;
    }
    let spread = first_change.elapsed();
    let most = 2 + (spread.as_secs_f64() / b.gap.as_secs_f64()).floor() as usize;
    let gap = b.gap;
    for watcher in &mut b.watchers {
        let seen = stock_frames_until(watcher, 5, gap + WAIT).await;
        assert_eq!(seen.first(), Some(&9), "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");
        assert!(
            seen.len() <= most && seen.len() < 5,
            "{seen:?}: more frames than the budget allows over {spread:?}"
        );
        watcher
            .assert_silent_for("activity.stock", gap + QUIET)
            .await;
    }
}

/// A stock count waiting for its turn survives a supervised restart of the activity actor:
/// the restarted actor re-arms its timer and the newest count still goes out.
#[actix_web::test]
async fn a_waiting_stock_count_survives_an_actor_restart() {
    let mut b = watchers_on_a_budget(2, 10).await;
    b.take("k0").await;
    let first = b.watchers[0]
        .next_event("activity.stock")
        .await
        .expect("stock");
    assert_eq!(first["left"], 9);
    // The next count waits (a frame every 2 s for two watchers); the actor restarts meanwhile.
    b.take("k1").await;
    assert!(b.app.state.hub.activities.inject_panic(b.activity));
    let gap = b.gap;
    assert_eq!(
        stock_frames_until(&mut b.watchers[0], 8, gap + WAIT).await,
        [8]
    );
}

/// A count that reaches the activity actor while it restarts is not lost to the reload (the
/// reload reads the ledger's new count; the change that follows must still go out).
#[actix_web::test]
async fn a_stock_change_during_an_actor_restart_goes_out() {
    let mut b = watchers_on_a_budget(1, 10).await;
    let activity = b.activity;
    for i in 0..3 {
        // The panic is queued right behind the hold's reply: the desk's count usually reaches
        // the actor while it reloads.
        hold(&mut b.claimant, activity, format!("k{i}")).await;
        assert!(b.app.state.hub.activities.inject_panic(activity));
        let left = 9 - i;
        let gap = b.gap;
        let seen = stock_frames_until(&mut b.watchers[0], left, gap + WAIT).await;
        assert_eq!(seen.last(), Some(&left), "{seen:?}");
    }
}

/// The newest count goes out before `activity.ended`, even while it waits for the budget:
/// both slots held back to back (the second count waiting for its turn) and paid for, the
/// promotion ends sold out after the count that says so.
#[actix_web::test]
async fn the_last_stock_count_goes_out_before_the_end() {
    // Five watchers: a frame every 5 s, so the second count is still waiting at the end.
    let mut b = watchers_on_a_budget(5, 2).await;
    let (_, first) = b.take("k0").await;
    let (_, second) = b.take("k1").await;
    for (i, claim) in [first, second].into_iter().enumerate() {
        let event = json!({"event_id": format!("e{i}"), "claim_id": claim, "amount_cents": 100});
        let (status, body) = pay(&b.app, SECRET, now_ms(), &unique("n"), &event).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("confirmed")),
            "{body}"
        );
    }
    for watcher in &mut b.watchers {
        let mut frames = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        while let Some(push) = watcher.next_push_until(deadline).await {
            let ev = push["ev"].as_str().unwrap_or_default().to_string();
            if ev.starts_with("activity.") {
                frames.push(push);
            }
            if ev == "activity.ended" {
                break;
            }
        }
        let evs: Vec<(&str, Option<i64>)> = frames
            .iter()
            .map(|f| (f["ev"].as_str().unwrap_or_default(), f["left"].as_i64()))
            .collect();
        assert_eq!(
            evs,
            [
                ("activity.stock", Some(1)),
                ("activity.stock", Some(0)),
                ("activity.ended", None)
            ],
            "{frames:?}"
        );
        assert_eq!(frames[2]["reason"], "sold_out");
        watcher.assert_silent("activity.stock").await;
    }
}

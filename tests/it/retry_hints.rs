//! Overload that never amplifies itself: every shed request, load close and refused upgrade
//! tells the client how long to wait, a jittered delay within the documented bounds
//! (`corral_actors::retry_hint`), so a crowd told to wait comes back spread out.

use corral_actors::retry_hint;
use corral_protocol::limits::close;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

use crate::chat::{create_room, flood, join, unthrottled};
use crate::support::{Engine, TestApp, WsClient};

const E: Engine = Engine::Sqlite;

fn within_bounds(ms: u64) -> bool {
    (retry_hint::MIN.as_millis()..retry_hint::MAX.as_millis()).contains(&u128::from(ms))
}

#[actix_web::test]
async fn a_shed_request_says_how_long_to_wait_growing_with_the_level() {
    let app = TestApp::spawn_with(E, |s| s.overload.enabled = false).await;
    let (_, token) = app.user("shed").await;
    let mut ws = app.client(Some(&token)).await;
    let feed = json!({"limit": 10});
    // Not shedding: a served request, and an ordinary error without the field.
    assert!(ws.request("feed.timeline", feed.clone()).await.is_ok());
    for (level, floor) in [(1u8, 1_000u64), (3, 4_000)] {
        app.state.hub.overload.set_level(level);
        let mut hints = Vec::new();
        for _ in 0..20 {
            let err = ws
                .request("feed.timeline", feed.clone())
                .await
                .expect_err("shed");
            assert_eq!(err.code.as_str(), "unavailable");
            let ms = err.retry_after_ms.expect("retry_after_ms on a shed reply");
            assert!(
                within_bounds(ms) && (floor..2 * floor).contains(&ms),
                "{ms}"
            );
            hints.push(ms);
        }
        hints.sort_unstable();
        hints.dedup();
        assert!(hints.len() > 1, "jittered: {hints:?}");
    }
}

#[actix_web::test]
async fn an_ordinary_error_has_no_retry_hint() {
    let app = TestApp::spawn(E).await;
    let (_, token) = app.user("plain").await;
    let mut ws = app.client(Some(&token)).await;
    let err = ws
        .request("no.such.op", json!({}))
        .await
        .expect_err("an unknown op");
    assert_eq!(err.code.as_str(), "unknown_op");
    assert_eq!(err.retry_after_ms, None);
}

/// The 4008 close's reason is `{"retry_after_ms":N}`, N within the bounds.
#[actix_web::test]
async fn a_slow_consumer_close_carries_the_delay() {
    let app = unthrottled(16).await;
    let (_, a) = app.user("alice").await;
    let room = create_room(&app, &a, false).await;
    let (_, s) = app.user("sleepy").await;
    let mut sleepy = app.client(Some(&s)).await;
    join(&mut sleepy, room, None).await;
    flood(&app, &a, room, 8, 300).await;

    assert_eq!(sleepy.close_code().await, Some(close::SLOW_CONSUMER));
    let reason = sleepy.close_reason().await.unwrap_or_default();
    assert!(reason.len() < 123, "{reason}");
    let parsed: Value = serde_json::from_str(&reason).expect("a JSON close reason");
    let ms = parsed["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!(within_bounds(ms), "{ms}");
}

/// A member that stops reading while pushes flow is closed 4008 once it is `ws.max_lag_ms`
/// behind (its unanswered probe), long before its queue or its kernel buffers fill; then the
/// node takes new room members in at a measured rate (a crowd of newcomers is mostly refused
/// `unavailable` with a hint, never all at once), its members keep being served, and every
/// newcomer that waits its hints gets in.
#[actix_web::test]
async fn a_member_too_far_behind_is_closed_and_new_members_are_paced_after_it() {
    let app = TestApp::spawn_with(E, |s| {
        s.ws.max_lag_ms = 300;
        s.ws.lag_probe_ms = 100;
        s.overload.member_calm_ms = 1_500;
        s.ws.rate_per_sec = 100_000.0;
        s.ws.rate_burst = 100_000.0;
    })
    .await;
    let (_, a) = app.user("alice").await;
    let room = create_room(&app, &a, false).await;
    let mut newcomers = Vec::new();
    for i in 0..10 {
        let (_, token) = app.user(&format!("newcomer{i}")).await;
        newcomers.push(app.client(Some(&token)).await);
    }
    let (_, s) = app.user("sleepy").await;
    let mut sleepy = app.client(Some(&s)).await;
    let mut alice = app.client(Some(&a)).await;
    join(&mut alice, room, None).await;
    join(&mut sleepy, room, None).await;
    // Small messages, a few a second: nothing near the queue (1,024 frames) or a socket's
    // buffers; only the unanswered probe can tell that sleepy stopped reading.
    let started = std::time::Instant::now();
    let mut sent = 0;
    while sent < 60 {
        sent += 1;
        let key = format!("m{sent}");
        alice
            .request(
                "room.send",
                json!({"room": room, "text": "hi", "client_msg_id": key}),
            )
            .await
            .expect("send");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if app.state.hub.connections.len() == 11 {
            break;
        }
    }
    assert_eq!(
        app.state.hub.connections.len(),
        11,
        "sleepy closed after {sent} messages"
    );
    let closed_after = started.elapsed();
    assert!(sent < 60, "closed within 3 s, after {closed_after:?}");
    assert_eq!(sleepy.close_code().await, Some(close::SLOW_CONSUMER));

    // The crowd of newcomers at once: the budget (at least one a second, one second's worth
    // at a time) takes a few, refuses the rest with a hint.
    let due = |hint: u64| std::time::Instant::now() + std::time::Duration::from_millis(hint);
    // A newcomer that gets in leaves again at once: this test's clients only read when they
    // ask something, and a member that does not read is closed as lagging.
    async fn join_and_leave(newcomer: &mut WsClient, room: i64) -> Result<(), u64> {
        match newcomer.request("room.join", json!({"room": room})).await {
            Ok(_) => {
                newcomer
                    .request("room.leave", json!({"room": room}))
                    .await
                    .expect("leave");
                Ok(())
            }
            Err(refused) => {
                assert_eq!(refused.code.as_str(), "unavailable");
                let hint = refused.retry_after_ms.expect("a hint");
                assert!(within_bounds(hint), "{hint}");
                Err(hint)
            }
        }
    }
    let mut waiting = Vec::new();
    for (i, newcomer) in newcomers.iter_mut().enumerate() {
        if let Err(hint) = join_and_leave(newcomer, room).await {
            waiting.push((due(hint), i));
        }
    }
    assert!(
        waiting.len() >= 5,
        "most of a crowd is refused at once: {} of 10",
        waiting.len()
    );
    alice
        .request(
            "room.send",
            json!({"room": room, "text": "still", "client_msg_id": "s"}),
        )
        .await
        .expect("a member is served");
    // Each refused newcomer waits its hint and asks again until it is in.
    let deadline = due(30_000);
    while let Some(&(at, i)) = waiting.iter().min() {
        assert!(
            at < deadline,
            "{} newcomers still out after 30 s",
            waiting.len()
        );
        waiting.retain(|w| w.1 != i);
        // Meanwhile the members keep being served (alice answers pings as she reads).
        while std::time::Instant::now() < at {
            alice
                .request("time.sync", json!({"client_time": 1}))
                .await
                .expect("alice stays");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if let Err(hint) = join_and_leave(&mut newcomers[i], room).await {
            waiting.push((due(hint), i));
        }
    }
}

/// An upgrade refused for arrival rate says when to come back, from the same hint.
#[actix_web::test]
async fn an_upgrade_refused_for_rate_carries_retry_after() {
    let app = TestApp::spawn_with(E, |s| {
        s.ws.new_per_sec = 0.01;
        s.ws.new_burst = 2.0;
    })
    .await;
    let _a = WsClient::connect(&app.ws_url(), None).await.expect("first");
    let _b = WsClient::connect(&app.ws_url(), None)
        .await
        .expect("second");
    let refused = WsClient::connect(&app.ws_url(), None).await;
    let Err(tungstenite::Error::Http(resp)) = refused else {
        panic!("not refused by status: {refused:?}");
    };
    assert_eq!(resp.status(), 429);
    let secs: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(
        (1..=retry_hint::MAX.as_secs()).contains(&secs),
        "Retry-After {secs}"
    );
}

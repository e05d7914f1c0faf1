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
/// behind (its unanswered probe), long before its queue or its kernel buffers fill; then, for
/// `overload.member_pause_ms`, the node takes no new room members (`unavailable` with a hint)
/// while its members keep being served, and after the pause a join is served again.
#[actix_web::test]
async fn a_member_too_far_behind_is_closed_and_new_members_wait_while_it_lasts() {
    let app = TestApp::spawn_with(E, |s| {
        s.ws.max_lag_ms = 300;
        s.ws.lag_probe_ms = 100;
        s.overload.member_pause_ms = 1_500;
        s.ws.rate_per_sec = 100_000.0;
        s.ws.rate_burst = 100_000.0;
    })
    .await;
    let (_, a) = app.user("alice").await;
    let room = create_room(&app, &a, false).await;
    let (_, s) = app.user("sleepy").await;
    let mut sleepy = app.client(Some(&s)).await;
    join(&mut sleepy, room, None).await;
    let mut alice = app.client(Some(&a)).await;
    join(&mut alice, room, None).await;
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
        if app.state.hub.connections.len() == 1 {
            break;
        }
    }
    assert_eq!(
        app.state.hub.connections.len(),
        1,
        "sleepy closed after {sent} messages"
    );
    let closed_after = started.elapsed();
    assert!(sent < 60, "closed within 3 s, after {closed_after:?}");
    assert_eq!(sleepy.close_code().await, Some(close::SLOW_CONSUMER));

    // A new member is refused while the pause lasts, with a hint; a member is still served.
    let (_, n) = app.user("newcomer").await;
    let mut newcomer = app.client(Some(&n)).await;
    let refused = newcomer
        .request("room.join", json!({"room": room}))
        .await
        .expect_err("refused while the node drops members");
    assert_eq!(refused.code.as_str(), "unavailable");
    assert!(within_bounds(refused.retry_after_ms.expect("a hint")));
    alice
        .request(
            "room.send",
            json!({"room": room, "text": "still", "client_msg_id": "s"}),
        )
        .await
        .expect("a member is served");
    // A member that keeps reading (its client answers pings as it reads) is never closed.
    let pause = std::time::Instant::now();
    while pause.elapsed() < std::time::Duration::from_millis(1_600) {
        alice
            .request("time.sync", json!({"client_time": 1}))
            .await
            .expect("alice stays");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    newcomer
        .request("room.join", json!({"room": room}))
        .await
        .expect("served after the pause");
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

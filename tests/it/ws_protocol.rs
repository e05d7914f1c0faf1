//! Protocol v1 over a real WebSocket: authentication, envelopes, bad input, limits, shutdown.

use corral_protocol::limits::close;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Engine, TestApp, WAIT, WsClient, check, upgrade_status, wait_until};

const E: Engine = Engine::Sqlite;

#[actix_web::test]
async fn auth_by_first_frame_and_by_bearer_header() {
    let app = TestApp::spawn(E).await;
    let (user_id, token) = app.user("a").await;

    let mut ws = WsClient::connect(&app.ws_url(), None)
        .await
        .expect("connect");
    let ok = ws
        .request("auth", json!({"token": token}))
        .await
        .expect("auth");
    assert_eq!(ok["user_id"], user_id);
    assert_eq!(ok["role"], "user");
    let now = corral_actors::clock::now_ms();
    assert!((ok["server_time"].as_i64().unwrap_or(0) - now).abs() < 5_000);

    let mut ws = WsClient::connect(&app.ws_url(), Some(&token))
        .await
        .expect("connect");
    assert!(ws.is_open().await);
    // Already authenticated: ops are served without an `auth` frame.
    let err = ws.request("room.join", json!({"room": 1})).await.err();
    assert_ne!(err.map(|e| e.code.as_str()), Some("unauthenticated"));

    // A bad bearer token is refused before the upgrade, with 401.
    let refused = WsClient::connect(&app.ws_url(), Some("not-a-token")).await;
    assert_eq!(upgrade_status(&refused), Some(401), "{refused:?}");
}

/// A token signed with the node's key whose `exp` is `exp_offset_secs` from now.
fn token_expiring_in(secret: &str, user_id: i64, exp_offset_secs: i64) -> String {
    let now = corral_actors::clock::now_ms() / 1000;
    let claims = json!({
        "sub": user_id.to_string(),
        "role": "user",
        "iss": "corral",
        "iat": now - 7200,
        "exp": now + exp_offset_secs,
    });
    // HS256 by hand: the node's own issuer cannot backdate a token.
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{KeyInit, Mac};
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// An expired token is `unauthenticated` over every door (the WebSocket `auth`, the bearer
/// upgrade, the HTTP API), while the same token unexpired is accepted.
#[actix_web::test]
async fn expired_tokens_are_unauthenticated() {
    const SECRET: &str = "expired-token-test-secret-0123456789";
    let app = TestApp::spawn_with(E, |s| {
        s.auth.jwt_secret = corral::config::Secret::from(SECRET);
    })
    .await;
    let (user_id, _) = app.user("x").await;
    let expired = token_expiring_in(SECRET, user_id, -3600);
    let valid = token_expiring_in(SECRET, user_id, 3600);

    let mut ws = WsClient::connect(&app.ws_url(), None)
        .await
        .expect("connect");
    let err = ws
        .request("auth", json!({"token": expired}))
        .await
        .expect_err("expired");
    assert_eq!(err.code.as_str(), "unauthenticated");
    let ok = ws
        .request("auth", json!({"token": valid}))
        .await
        .expect("the same token unexpired");
    assert_eq!(ok["user_id"], user_id);

    let refused = WsClient::connect(&app.ws_url(), Some(&expired)).await;
    assert_eq!(upgrade_status(&refused), Some(401), "{refused:?}");
    let (status, body) = app.get("/api/v1/timeline", Some(&expired)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated")),
        "{body}"
    );
}

/// A draining node refuses new sockets with 503 before the upgrade and reports not ready.
#[actix_web::test]
async fn a_draining_node_refuses_new_sockets_with_503() {
    let app = TestApp::spawn(E).await;
    assert!(WsClient::connect(&app.ws_url(), None).await.is_ok());
    app.state.start_draining();
    let refused = WsClient::connect(&app.ws_url(), None).await;
    assert_eq!(upgrade_status(&refused), Some(503), "{refused:?}");
    let (status, body) = app.get("/readyz", None).await;
    assert_eq!((status, &body["draining"]), (503, &json!(true)), "{body}");
}

#[actix_web::test]
async fn ops_before_auth_and_bad_tokens_are_unauthenticated() {
    let app = TestApp::spawn(E).await;
    let mut ws = WsClient::connect(&app.ws_url(), None)
        .await
        .expect("connect");
    let err = ws
        .request("room.join", json!({"room": 1}))
        .await
        .expect_err("refused");
    assert_eq!(err.code.as_str(), "unauthenticated");
    let err = ws
        .request("auth", json!({"token": "garbage"}))
        .await
        .expect_err("refused");
    assert_eq!(err.code.as_str(), "unauthenticated");
    // time.sync is allowed before auth (clients sync clocks while logging in).
    assert!(ws.is_open().await);
    let (_, token) = app.user("b").await;
    assert!(ws.request("auth", json!({"token": token})).await.is_ok());
}

#[actix_web::test]
async fn unauthenticated_sockets_are_closed_after_the_timeout() {
    let app = TestApp::spawn_with(E, |s| s.ws.auth_timeout_ms = 300).await;
    let mut ws = WsClient::connect(&app.ws_url(), None)
        .await
        .expect("connect");
    assert_eq!(ws.close_code().await, Some(close::POLICY));
}

#[actix_web::test]
async fn malformed_frames_get_errors_and_the_socket_stays_open() {
    let app = TestApp::spawn(E).await;
    let (_, token) = app.user("c").await;
    let mut ws = app.client(Some(&token)).await;

    ws.send_text("{not json").await;
    let err = ws.reply_to(None).await.expect_err("bad");
    assert_eq!(err.code.as_str(), "bad_request");

    ws.send_text(r#"{"id": 41, "op": "fly.away"}"#).await;
    assert_eq!(
        ws.reply_to(Some(41))
            .await
            .expect_err("unknown")
            .code
            .as_str(),
        "unknown_op"
    );

    ws.send_text(r#"{"id": 42, "op": "time.sync", "client_time": "noon"}"#)
        .await;
    assert_eq!(
        ws.reply_to(Some(42)).await.expect_err("type").code.as_str(),
        "bad_request"
    );

    ws.send_text(r#"{"id": 43, "op": "time.sync"}"#).await;
    assert_eq!(
        ws.reply_to(Some(43))
            .await
            .expect_err("missing")
            .code
            .as_str(),
        "bad_request"
    );

    ws.send_text(r#"{"id": 44}"#).await;
    assert_eq!(
        ws.reply_to(Some(44))
            .await
            .expect_err("no op")
            .code
            .as_str(),
        "bad_request"
    );

    ws.send_text(r#"{"op": "time.sync", "client_time": 1}"#)
        .await;
    assert_eq!(
        ws.reply_to(None).await.expect_err("no id").code.as_str(),
        "bad_request"
    );

    ws.send_text("[1, 2, 3]").await;
    assert_eq!(
        ws.reply_to(None).await.expect_err("array").code.as_str(),
        "bad_request"
    );

    assert!(ws.is_open().await);
}

#[actix_web::test]
async fn time_sync_echoes_the_client_clock() {
    let app = TestApp::spawn(E).await;
    let mut ws = WsClient::connect(&app.ws_url(), None)
        .await
        .expect("connect");
    let before = corral_actors::clock::now_ms();
    let ok = ws
        .request("time.sync", json!({"client_time": 12345}))
        .await
        .expect("sync");
    assert_eq!(ok["client_time"], 12345);
    let server_time = ok["server_time"].as_i64().unwrap_or(0);
    assert!(server_time >= before && server_time <= corral_actors::clock::now_ms());
}

#[actix_web::test]
async fn oversize_frames_close_with_1009() {
    let app = TestApp::spawn_with(E, |s| s.ws.max_frame_bytes = 1024).await;
    let mut ws = WsClient::connect(&app.ws_url(), None)
        .await
        .expect("connect");
    let big = format!(
        r#"{{"id":1,"op":"time.sync","client_time":1,"pad":"{}"}}"#,
        "x".repeat(2000)
    );
    ws.send_text(big).await;
    assert_eq!(ws.close_code().await, Some(close::TOO_LARGE));
}

#[actix_web::test]
async fn binary_frames_close_with_1003() {
    let app = TestApp::spawn(E).await;
    let mut ws = WsClient::connect(&app.ws_url(), None)
        .await
        .expect("connect");
    ws.send_message(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("send");
    assert_eq!(ws.close_code().await, Some(close::UNSUPPORTED));
}

#[actix_web::test]
async fn floods_are_answered_rate_limited() {
    let app = TestApp::spawn_with(E, |s| {
        s.ws.rate_per_sec = 1.0;
        s.ws.rate_burst = 5.0;
    })
    .await;
    let mut ws = WsClient::connect(&app.ws_url(), None)
        .await
        .expect("connect");
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(ws.send_op("time.sync", json!({"client_time": 1})).await);
    }
    let mut limited = 0;
    for id in ids {
        match ws.reply_to(Some(id)).await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.code.as_str(), "rate_limited");
                limited += 1;
            }
        }
    }
    assert!(limited >= 14, "only {limited} of 20 were limited");
    // The bucket refills at 1/s: a request is served again within its refill time.
    wait_until("the bucket refills", WAIT, async || {
        let reply = ws.request("time.sync", json!({"client_time": 1})).await;
        reply.map(|_| ()).map_err(|e| e.code)
    })
    .await;
}

#[actix_web::test]
async fn connection_limits_refuse_before_the_upgrade() {
    let app = TestApp::spawn_with(E, |s| {
        s.ws.max_connections = 3;
        s.ws.max_per_user = 2;
    })
    .await;
    let (_, token) = app.user("d").await;
    let a = WsClient::connect(&app.ws_url(), Some(&token)).await;
    let b = WsClient::connect(&app.ws_url(), Some(&token)).await;
    assert!(a.is_ok() && b.is_ok());
    // Third device of the same user: refused at the upgrade (429).
    let c = WsClient::connect(&app.ws_url(), Some(&token)).await;
    assert!(
        matches!(c, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 429),
        "{c:?}"
    );
    // ... and via first-frame auth: limit_reached, then closed.
    let mut d = WsClient::connect(&app.ws_url(), None)
        .await
        .expect("connect");
    let err = d
        .request("auth", json!({"token": token}))
        .await
        .expect_err("limit");
    assert_eq!(err.code.as_str(), "limit_reached");
    assert_eq!(d.close_code().await, Some(close::POLICY));
    // A third socket fills the node; a fourth gets 503.
    let _x = WsClient::connect(&app.ws_url(), None).await.expect("third");
    let e = WsClient::connect(&app.ws_url(), None).await;
    assert!(
        matches!(e, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 503),
        "{e:?}"
    );
    let (_, body) = app.get("/metrics", None).await;
    let text = body.as_str().unwrap_or_default();
    assert!(text.contains("corral_connections_refused_total{reason=\"node_full\"}"));
    assert!(text.contains("corral_connections_refused_total{reason=\"per_user\"}"));
}

/// Opens two sockets, then expects the third to be refused with `status`.
async fn third_socket_refused(app: &TestApp, status: u16) {
    let _a = WsClient::connect(&app.ws_url(), None).await.expect("first");
    let _b = WsClient::connect(&app.ws_url(), None)
        .await
        .expect("second");
    let c = WsClient::connect(&app.ws_url(), None).await;
    assert!(
        matches!(c, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == status),
        "{c:?}"
    );
}

#[actix_web::test]
async fn per_ip_limit_refuses_with_503() {
    let app = TestApp::spawn_with(E, |s| s.ws.max_per_ip = 2).await;
    third_socket_refused(&app, 503).await;
}

#[actix_web::test]
async fn new_connection_rate_is_limited_with_429() {
    let app = TestApp::spawn_with(E, |s| {
        s.ws.new_per_sec = 0.01;
        s.ws.new_burst = 2.0;
    })
    .await;
    third_socket_refused(&app, 429).await;
}

#[actix_web::test]
async fn silent_clients_are_dropped_by_the_heartbeat() {
    let app = TestApp::spawn_with(E, |s| {
        s.ws.heartbeat_interval_ms = 100;
        s.ws.idle_timeout_ms = 400;
    })
    .await;
    let (_, token) = app.user("e").await;
    let mut ws = app.client(Some(&token)).await;
    // Not reading means not answering pings: the node closes the socket once idle.
    let node = &app.state.hub.connections;
    wait_until("the node drops the silent socket", WAIT, async || {
        check(node.is_empty(), node.len())
    })
    .await;
    assert_eq!(ws.close_code().await, Some(close::IDLE));
}

#[actix_web::test]
async fn shutdown_sends_going_away_then_closes() {
    let app = TestApp::spawn(E).await;
    let (_, token) = app.user("f").await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(app.client(Some(&token)).await);
    }
    let state = app.state.clone();
    let server = app.server.clone();
    actix_web::rt::spawn(corral::shutdown::drain(state, server));
    for ws in &mut clients {
        let push = ws
            .next_event("server.going_away")
            .await
            .expect("going_away");
        let delay = push["reconnect_after_ms"].as_u64().expect("delay");
        assert!(delay < 1000);
        assert_eq!(ws.close_code().await, Some(close::GOING_AWAY));
    }
}

#[actix_web::test]
async fn overload_sheds_feeds_first_then_chat_then_claims() {
    let app = TestApp::spawn_with(E, |s| s.overload.enabled = false).await;
    let (_, token) = app.user("g").await;
    let mut ws = app.client(Some(&token)).await;
    let feed = json!({"limit": 10});
    let chat = json!({"room": 1});
    let claim = json!({"activity": 1, "key": "k"});
    let shed = |r: Result<serde_json::Value, corral_protocol::ErrorBody>| {
        r.err()
            .is_some_and(|e| e.code.as_str() == "unavailable" && e.message.contains("overloaded"))
    };
    let probe = async |ws: &mut WsClient| {
        [
            shed(ws.request("feed.timeline", feed.clone()).await),
            shed(ws.request("room.leave", chat.clone()).await),
            shed(ws.request("claim", claim.clone()).await),
        ]
    };
    assert_eq!(probe(&mut ws).await, [false, false, false]);
    app.state.hub.overload.set_level(1);
    assert_eq!(probe(&mut ws).await, [true, false, false]);
    app.state.hub.overload.set_level(2);
    assert_eq!(probe(&mut ws).await, [true, true, false]);
    app.state.hub.overload.set_level(3);
    assert_eq!(probe(&mut ws).await, [true, true, true]);
    // Clock sync is never shed.
    assert!(ws.is_open().await);
}

//! Chat: rooms, DMs, presence, order and exactly-once delivery, reconnect catch-up, history,
//! idempotent sends, access control, limits, supervision, slow consumers, crash safety and
//! cross-node delivery — on real nodes over real WebSockets.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use corral_protocol::ErrorCode;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::engine_tests;
use crate::support::{
    Engine, NodeProcess, TestApp, WAIT, WsClient, check, metric_value, redis_url, unique,
    wait_until,
};

engine_tests!(
    concurrent_senders_are_delivered_in_order_exactly_once,
    every_device_gets_each_message,
    large_rooms_send_no_presence,
    rejoining_with_since_catches_up,
    long_absence_is_truncated_and_paged_with_history,
    client_msg_id_makes_sends_idempotent,
    private_rooms_and_dms_refuse_others,
    a_panicking_room_restarts_and_keeps_its_members,
    limits_are_enforced,
    private_rooms_reach_members_devices_that_did_not_join,
    a_public_rejoin_racing_sends_gets_each_message_once,
);

/// Creates a room as `token`'s user; returns its id.
pub(crate) async fn create_room(app: &TestApp, token: &str, private: bool) -> i64 {
    let (status, body) = app
        .post(
            "/api/v1/rooms",
            Some(token),
            json!({"name": unique("room"), "private": private}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["room_id"].as_i64().expect("room_id")
}

pub(crate) async fn join(ws: &mut WsClient, room: i64, since: Option<u64>) -> Value {
    let mut params = json!({ "room": room });
    if let Some(since) = since {
        params["since"] = json!(since);
    }
    ws.request("room.join", params).await.expect("join")
}

async fn send(ws: &mut WsClient, room: i64, text: &str, cmid: &str) -> u64 {
    let ok = ws
        .request(
            "room.send",
            json!({"room": room, "text": text, "client_msg_id": cmid}),
        )
        .await
        .unwrap_or_else(|e| panic!("send {cmid}: {e:?}"));
    ok["seq"].as_u64().expect("seq")
}

/// The next `n` `room.message` pushes of `room`.
async fn messages(ws: &mut WsClient, room: i64, n: usize) -> Vec<Value> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let msg = ws
            .next_event("room.message")
            .await
            .unwrap_or_else(|| panic!("only {} of {n} messages arrived", got.len()));
        if msg["room"] == room {
            got.push(msg);
        }
    }
    got
}

fn seqs(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect()
}

fn code(result: Result<Value, corral_protocol::ErrorBody>) -> ErrorCode {
    result.expect_err("an error reply").code
}

async fn concurrent_senders_are_delivered_in_order_exactly_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, owner) = app.user("owner").await;
    let room = create_room(&app, &owner, false).await;
    let mut receivers = Vec::new();
    for _ in 0..2 {
        let (_, token) = app.user("reader").await;
        let mut ws = app.client(Some(&token)).await;
        join(&mut ws, room, None).await;
        receivers.push(ws);
    }
    const SENDERS: usize = 4;
    const EACH: usize = 25;
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (id, token) = app.user("sender").await;
        senders.push((id, app.client(Some(&token)).await));
    }
    let acked: Vec<Vec<(i64, String, u64)>> = join_all(senders.iter_mut().enumerate().map(
        |(s, (id, ws))| async move {
            let mut acked = Vec::new();
            for i in 0..EACH {
                let cmid = format!("s{s}-{i}");
                let seq = send(ws, room, &format!("hello {s} {i}"), &cmid).await;
                acked.push((*id, cmid, seq));
            }
            acked
        },
    ))
    .await;
    let acked: BTreeMap<u64, (i64, String)> = acked
        .into_iter()
        .flatten()
        .map(|(id, cmid, seq)| (seq, (id, cmid)))
        .collect();
    let total = SENDERS * EACH;
    assert_eq!(acked.len(), total, "every ack has its own seq");
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (1..=total as u64).collect::<Vec<_>>()
    );
    for ws in &mut receivers {
        let got = messages(ws, room, total).await;
        assert_eq!(seqs(&got), (1..=total as u64).collect::<Vec<_>>());
        for m in &got {
            let (from, cmid) = &acked[&m["seq"].as_u64().unwrap()];
            assert_eq!(
                (
                    m["from"].as_i64().unwrap(),
                    m["client_msg_id"].as_str().unwrap()
                ),
                (*from, cmid.as_str())
            );
        }
        ws.assert_silent("room.message").await;
    }
}

async fn every_device_gets_each_message(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (a_id, a) = app.user("alice").await;
    let (b_id, b) = app.user("bob").await;
    let room = create_room(&app, &a, false).await;
    let mut phone = app.client(Some(&a)).await;
    let mut laptop = app.client(Some(&a)).await;
    let mut bob = app.client(Some(&b)).await;
    // Alice's third device never joins this public room: it gets none of its messages.
    let mut tablet = app.client(Some(&a)).await;
    let joined = join(&mut phone, room, None).await;
    assert_eq!(joined["online"], json!([a_id]));
    join(&mut laptop, room, None).await;
    let joined = join(&mut bob, room, None).await;
    let mut online: Vec<i64> = serde_json::from_value(joined["online"].clone()).unwrap();
    online.sort_unstable();
    assert_eq!(online, {
        let mut v = vec![a_id, b_id];
        v.sort_unstable();
        v
    });
    // Alice's devices were told Bob came.
    for ws in [&mut phone, &mut laptop] {
        let presence = ws.next_event("presence").await.expect("presence");
        assert_eq!(
            presence,
            json!({"ev": "presence", "room": room, "user": b_id, "state": "joined"})
        );
    }

    let seq = send(&mut phone, room, "from the phone", "p1").await;
    for ws in [&mut phone, &mut laptop, &mut bob] {
        let got = messages(ws, room, 1).await;
        assert_eq!(got[0]["seq"].as_u64(), Some(seq));
        assert_eq!(got[0]["text"], "from the phone");
        assert_eq!(got[0]["from"], a_id);
    }
    tablet.assert_silent("room.message").await;

    // Bob leaving is announced once his last session is gone.
    bob.request("room.leave", json!({"room": room}))
        .await
        .expect("leave");
    let presence = laptop.next_event("presence").await.expect("presence");
    assert_eq!(presence["state"], "left");
    assert_eq!(presence["user"], b_id);
    send(&mut laptop, room, "bob is gone", "l1").await;
    bob.assert_silent("room.message").await;
}

/// Above `chat.presence_max_online` users online, joins are not announced (each would cost a
/// frame per member) and the join reply lists only that many, the joiner first; messages flow
/// as before.
async fn large_rooms_send_no_presence(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| s.chat.presence_max_online = 2).await;
    let (_, a) = app.user("alice").await;
    let (b_id, b) = app.user("bob").await;
    let (c_id, c) = app.user("carol").await;
    let room = create_room(&app, &a, false).await;
    let mut alice = app.client(Some(&a)).await;
    let mut bob = app.client(Some(&b)).await;
    let mut carol = app.client(Some(&c)).await;
    join(&mut alice, room, None).await;
    let joined = join(&mut bob, room, None).await;
    assert_eq!(joined["online_count"], 2);
    let presence = alice.next_event("presence").await.expect("presence");
    assert_eq!(presence["user"], b_id);

    let joined = join(&mut carol, room, None).await;
    assert_eq!(joined["online_count"], 3);
    let online = joined["online"].as_array().expect("online");
    assert_eq!(online.len(), 2, "{joined}");
    assert_eq!(online[0], c_id);
    alice.assert_silent("presence").await;
    bob.assert_silent("presence").await;

    let seq = send(&mut carol, room, "hello all", "c1").await;
    for ws in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(messages(ws, room, 1).await[0]["seq"].as_u64(), Some(seq));
    }
}

async fn rejoining_with_since_catches_up(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, a) = app.user("alice").await;
    let (_, b) = app.user("bob").await;
    let room = create_room(&app, &a, false).await;
    let mut alice = app.client(Some(&a)).await;
    let mut bob = app.client(Some(&b)).await;
    join(&mut alice, room, None).await;
    join(&mut bob, room, None).await;
    send(&mut alice, room, "one", "c1").await;
    send(&mut alice, room, "two", "c2").await;
    let seen = seqs(&messages(&mut bob, room, 2).await);
    assert_eq!(seen, vec![1, 2]);
    drop(bob);

    for i in 3..=7 {
        send(&mut alice, room, &format!("msg {i}"), &format!("c{i}")).await;
    }
    let mut bob = app.client(Some(&b)).await;
    let joined = join(&mut bob, room, Some(2)).await;
    assert_eq!(joined["last_seq"], 7);
    assert_eq!(joined["truncated"], false);
    assert_eq!(joined["caught_up"], true);
    assert!(joined["epoch"].as_i64().is_some());
    let missed: Vec<Value> = serde_json::from_value(joined["missed"].clone()).unwrap();
    assert_eq!(seqs(&missed), vec![3, 4, 5, 6, 7]);
    assert_eq!(missed[0]["text"], "msg 3");

    // Live messages continue right after the catch-up, without duplicates.
    send(&mut alice, room, "eight", "c8").await;
    assert_eq!(seqs(&messages(&mut bob, room, 1).await), vec![8]);

    // Already caught up: nothing missed; ahead of the room (a reset history): not caught up.
    let again = join(&mut bob, room, Some(8)).await;
    assert_eq!(
        (again["missed"].clone(), again["caught_up"].clone()),
        (json!([]), json!(true))
    );
    let ahead = join(&mut bob, room, Some(50)).await;
    assert_eq!(ahead["caught_up"], false);
}

async fn long_absence_is_truncated_and_paged_with_history(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| {
        s.chat.catch_up_window = 5;
        s.chat.history_page_max = 4;
    })
    .await;
    let (_, a) = app.user("alice").await;
    let room = create_room(&app, &a, false).await;
    let mut alice = app.client(Some(&a)).await;
    for i in 1..=12 {
        send(&mut alice, room, &format!("m{i}"), &format!("k{i}")).await;
    }
    let (_, b) = app.user("bob").await;
    let mut bob = app.client(Some(&b)).await;
    let joined = join(&mut bob, room, Some(1)).await;
    assert_eq!(joined["truncated"], true);
    assert_eq!(joined["caught_up"], false);
    let missed: Vec<Value> = serde_json::from_value(joined["missed"].clone()).unwrap();
    assert_eq!(seqs(&missed), vec![8, 9, 10, 11, 12]);

    // Page back from the oldest missed message; pages are clamped to history_page_max.
    let page = bob
        .request(
            "room.history",
            json!({"room": room, "before_seq": 8, "limit": 100}),
        )
        .await
        .expect("history");
    let page: Vec<Value> = serde_json::from_value(page["messages"].clone()).unwrap();
    assert_eq!(seqs(&page), vec![4, 5, 6, 7]);
    assert_eq!(page[0]["text"], "m4");
    let page = bob
        .request(
            "room.history",
            json!({"room": room, "before_seq": 4, "limit": 4}),
        )
        .await
        .expect("history");
    assert_eq!(
        seqs(&serde_json::from_value::<Vec<Value>>(page["messages"].clone()).unwrap()),
        vec![1, 2, 3]
    );
    // The newest page (no before_seq) comes from the room's memory.
    let page = bob
        .request("room.history", json!({"room": room, "limit": 3}))
        .await
        .expect("history");
    assert_eq!(
        seqs(&serde_json::from_value::<Vec<Value>>(page["messages"].clone()).unwrap()),
        vec![10, 11, 12]
    );
}

async fn client_msg_id_makes_sends_idempotent(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, a) = app.user("alice").await;
    let (_, b) = app.user("bob").await;
    let room = create_room(&app, &a, false).await;
    let mut bob = app.client(Some(&b)).await;
    join(&mut bob, room, None).await;
    let mut alice = app.client(Some(&a)).await;
    let first = send(&mut alice, room, "once", "same-key").await;
    let again = send(&mut alice, room, "once", "same-key").await;
    assert_eq!(first, again);
    // A retry from another connection (after a lost reply) gets the original seq too...
    let mut retry = app.client(Some(&a)).await;
    assert_eq!(send(&mut retry, room, "once", "same-key").await, first);
    // ...while another user may use the same key, and the seq stays gap-free.
    let mut bob2 = app.client(Some(&b)).await;
    assert_eq!(send(&mut bob2, room, "mine", "same-key").await, first + 1);
    assert_eq!(send(&mut alice, room, "next", "other-key").await, first + 2);
    let got = messages(&mut bob, room, 3).await;
    assert_eq!(seqs(&got), vec![first, first + 1, first + 2]);
    bob.assert_silent("room.message").await;
}

async fn private_rooms_and_dms_refuse_others(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (a_id, a) = app.user("alice").await;
    let (b_id, b) = app.user("bob").await;
    let (_, c) = app.user("carol").await;
    let room = create_room(&app, &a, true).await;
    let mut alice = app.client(Some(&a)).await;
    let mut bob = app.client(Some(&b)).await;
    let mut carol = app.client(Some(&c)).await;
    join(&mut alice, room, None).await;
    assert_eq!(
        code(carol.request("room.join", json!({"room": room})).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(
            carol
                .request(
                    "room.send",
                    json!({"room": room, "text": "hi", "client_msg_id": "x"})
                )
                .await
        ),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(
            carol
                .request("room.history", json!({"room": room, "limit": 10}))
                .await
        ),
        ErrorCode::Forbidden
    );
    // Only the owner adds members.
    let (status, body) = app
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            Some(&c),
            json!({"user_id": b_id}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, body) = app
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            Some(&a),
            json!({"user_id": b_id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    join(&mut bob, room, None).await;
    send(&mut bob, room, "now a member", "b1").await;
    assert_eq!(messages(&mut alice, room, 1).await[0]["from"], b_id);
    assert_eq!(
        code(carol.request("room.join", json!({"room": 999_999})).await),
        ErrorCode::NotFound
    );

    // A DM reaches every device of the other user without a join, and only those two may
    // read its room.
    let mut bob_phone = app.client(Some(&b)).await;
    let dm = alice
        .request(
            "dm.send",
            json!({"to": b_id, "text": "psst", "client_msg_id": "d1"}),
        )
        .await
        .expect("dm");
    let dm_room = dm["room"].as_i64().expect("room");
    assert_eq!(dm["seq"], 1);
    for ws in [&mut bob, &mut bob_phone] {
        let got = messages(ws, dm_room, 1).await;
        assert_eq!(
            (got[0]["text"].as_str(), got[0]["from"].as_i64()),
            (Some("psst"), Some(a_id))
        );
    }
    let back = bob
        .request(
            "dm.send",
            json!({"to": a_id, "text": "hey", "client_msg_id": "d2"}),
        )
        .await
        .expect("dm back");
    assert_eq!(
        (back["room"].as_i64(), back["seq"].as_u64()),
        (Some(dm_room), Some(2))
    );
    assert_eq!(
        code(carol.request("room.join", json!({"room": dm_room})).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(
            carol
                .request("room.history", json!({"room": dm_room, "limit": 5}))
                .await
        ),
        ErrorCode::Forbidden
    );
    let (status, _) = app
        .post(
            &format!("/api/v1/rooms/{dm_room}/members"),
            Some(&a),
            json!({"user_id": 1}),
        )
        .await;
    assert_eq!(status, 403, "nobody joins a DM");
    let history = bob
        .request("room.history", json!({"room": dm_room, "limit": 5}))
        .await
        .expect("history");
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(2));
}

async fn a_panicking_room_restarts_and_keeps_its_members(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, a) = app.user("alice").await;
    let (_, b) = app.user("bob").await;
    let room = create_room(&app, &a, false).await;
    let mut alice = app.client(Some(&a)).await;
    let mut bob = app.client(Some(&b)).await;
    join(&mut alice, room, None).await;
    join(&mut bob, room, None).await;
    assert_eq!(send(&mut alice, room, "before", "k1").await, 1);
    assert_eq!(seqs(&messages(&mut bob, room, 1).await), vec![1]);
    assert!(app.state.hub.rooms.inject_panic(room), "the room runs here");
    // The members stay connected and joined; the next message gets the next seq.
    assert!(alice.is_open().await && bob.is_open().await);
    assert_eq!(send(&mut alice, room, "after", "k2").await, 2);
    let got = messages(&mut bob, room, 1).await;
    assert_eq!(
        (got[0]["seq"].as_u64(), got[0]["text"].as_str()),
        (Some(2), Some("after"))
    );
    assert_eq!(seqs(&messages(&mut alice, room, 2).await), vec![1, 2]);
    let (_, metrics) = app.get("/metrics", None).await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    let restarts = metric_value(&metrics, "corral_actor_restarts_total{kind=\"room\"}");
    assert!(restarts >= 1.0, "restart counted: {restarts}");
}

async fn limits_are_enforced(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| {
        s.chat.max_text_chars = 10;
        s.chat.rooms_per_connection = 2;
    })
    .await;
    let (_, a) = app.user("alice").await;
    let rooms = [
        create_room(&app, &a, false).await,
        create_room(&app, &a, false).await,
        create_room(&app, &a, false).await,
    ];
    let mut ws = app.client(Some(&a)).await;
    assert_eq!(
        code(
            ws.request(
                "room.send",
                json!({"room": rooms[0], "text": "x".repeat(11), "client_msg_id": "k"})
            )
            .await
        ),
        ErrorCode::TooLarge
    );
    assert_eq!(send(&mut ws, rooms[0], &"é".repeat(10), "k").await, 1);
    join(&mut ws, rooms[0], None).await;
    join(&mut ws, rooms[1], None).await;
    join(&mut ws, rooms[1], None).await; // re-joining is not another room
    assert_eq!(
        code(ws.request("room.join", json!({"room": rooms[2]})).await),
        ErrorCode::LimitReached
    );
    ws.request("room.leave", json!({"room": rooms[0]}))
        .await
        .expect("leave");
    join(&mut ws, rooms[2], None).await;
    assert_eq!(
        code(
            ws.request(
                "dm.send",
                json!({"to": 999_999, "text": "hi", "client_msg_id": "d"})
            )
            .await
        ),
        ErrorCode::NotFound
    );
}

/// A private room's messages reach every device of every stored member, joined or not, each
/// once; a device joining later is not sent them twice, and a new device catching up with
/// `since` gets what it missed in the join reply and the rest as pushes, once each.
async fn private_rooms_reach_members_devices_that_did_not_join(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, a) = app.user("alice").await;
    let (b_id, b) = app.user("bob").await;
    let room = create_room(&app, &a, true).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            Some(&a),
            json!({"user_id": b_id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut alice = app.client(Some(&a)).await;
    join(&mut alice, room, None).await;
    let mut phone = app.client(Some(&b)).await;
    join(&mut phone, room, None).await;
    // Bob's laptop never joins.
    let mut laptop = app.client(Some(&b)).await;

    assert_eq!(send(&mut alice, room, "one", "a1").await, 1);
    for ws in [&mut phone, &mut laptop] {
        assert_eq!(seqs(&messages(ws, room, 1).await), [1]);
    }
    // The laptop joins: still one push per message.
    let joined = join(&mut laptop, room, Some(1)).await;
    assert_eq!(joined["missed"], json!([]));
    assert_eq!(send(&mut alice, room, "two", "a2").await, 2);
    for ws in [&mut phone, &mut laptop] {
        assert_eq!(seqs(&messages(ws, room, 1).await), [2]);
    }
    futures_util::join!(
        phone.assert_silent("room.message"),
        laptop.assert_silent("room.message")
    );

    // A device that was away catches up: the missed ones in the reply, later ones pushed. As a
    // member's device it may also be pushed a message still being fanned out when it
    // connected (the protocol has it drop a missed seq it already holds): once, in order.
    drop(laptop);
    for i in 3..=4 {
        send(&mut alice, room, &format!("m{i}"), &format!("a{i}")).await;
    }
    let mut tablet = app.client(Some(&b)).await;
    let joined = join(&mut tablet, room, Some(2)).await;
    let missed: Vec<Value> = serde_json::from_value(joined["missed"].clone()).unwrap();
    assert_eq!(seqs(&missed), [3, 4]);
    assert_eq!(send(&mut alice, room, "five", "a5").await, 5);
    let mut pushed = Vec::new();
    while pushed.last() != Some(&5) {
        pushed.extend(seqs(&messages(&mut tablet, room, 1).await));
    }
    assert!(
        pushed.windows(2).all(|w| w[0] < w[1]) && pushed.iter().all(|s| (3..=5).contains(s)),
        "{pushed:?}"
    );
    tablet.assert_silent("room.message").await;
}

/// A device re-joining a public room while messages keep coming gets every message it missed
/// once, in the join reply, and every later one once as a push: none is both, none is lost.
async fn a_public_rejoin_racing_sends_gets_each_message_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, a) = app.user("alice").await;
    let (_, b) = app.user("bob").await;
    let room = create_room(&app, &a, false).await;
    let mut alice = app.client(Some(&a)).await;
    join(&mut alice, room, None).await;
    for i in 1..=5 {
        send(&mut alice, room, "before", &format!("b{i}")).await;
    }
    const LAST: u64 = 45;
    let mut bob = app.client(Some(&b)).await;
    let sending = async {
        for i in 6..=LAST {
            send(&mut alice, room, "during", &format!("d{i}")).await;
        }
    };
    let rejoining = async {
        // Bob last saw seq 2; he re-joins while alice is sending.
        let joined = join(&mut bob, room, Some(2)).await;
        let missed: Vec<Value> = serde_json::from_value(joined["missed"].clone()).unwrap();
        let last_seq = joined["last_seq"].as_u64().expect("last_seq");
        assert_eq!(seqs(&missed), (3..=last_seq).collect::<Vec<_>>());
        last_seq
    };
    let ((), last_seq) = futures_util::join!(sending, rejoining);
    // Every later message as a push (pushes read while waiting for the reply included).
    let pushed = messages(&mut bob, room, (LAST - last_seq) as usize).await;
    assert_eq!(seqs(&pushed), (last_seq + 1..=LAST).collect::<Vec<_>>());
    bob.assert_silent("room.message").await;
}

/// `presence: left` goes to the room when a user's last session disconnects (not when one of
/// several does), without a `room.leave`.
#[actix_web::test]
async fn presence_left_follows_the_last_disconnect() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (_, a) = app.user("alice").await;
    let (b_id, b) = app.user("bob").await;
    let room = create_room(&app, &a, false).await;
    let mut alice = app.client(Some(&a)).await;
    join(&mut alice, room, None).await;
    let mut phone = app.client(Some(&b)).await;
    let mut laptop = app.client(Some(&b)).await;
    join(&mut phone, room, None).await;
    join(&mut laptop, room, None).await;
    let joined = alice.next_event("presence").await.expect("joined");
    assert_eq!(
        (joined["user"].as_i64(), joined["state"].as_str()),
        (Some(b_id), Some("joined"))
    );

    drop(phone);
    alice.assert_silent("presence").await;
    drop(laptop);
    let left = alice.next_event("presence").await.expect("left");
    assert_eq!(
        left,
        json!({"ev": "presence", "room": room, "user": b_id, "state": "left"})
    );
}

/// A public room with `chat.members_per_room` users online answers another user's join
/// `limit_reached`; more devices of a user already in count once; a place freed is taken.
#[actix_web::test]
async fn a_full_public_room_answers_limit_reached() {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| s.chat.members_per_room = 2).await;
    let (_, a) = app.user("alice").await;
    let (_, b) = app.user("bob").await;
    let (_, c) = app.user("carol").await;
    let room = create_room(&app, &a, false).await;
    let mut alice = app.client(Some(&a)).await;
    let mut bob = app.client(Some(&b)).await;
    let mut carol = app.client(Some(&c)).await;
    join(&mut alice, room, None).await;
    join(&mut bob, room, None).await;
    assert_eq!(
        code(carol.request("room.join", json!({"room": room})).await),
        ErrorCode::LimitReached
    );
    let mut bob_laptop = app.client(Some(&b)).await;
    join(&mut bob_laptop, room, None).await;
    for ws in [&mut bob, &mut bob_laptop] {
        ws.request("room.leave", json!({"room": room}))
            .await
            .expect("leave");
    }
    join(&mut carol, room, None).await;
    let seq = send(&mut alice, room, "welcome", "w1").await;
    assert_eq!(seqs(&messages(&mut carol, room, 1).await), [seq]);
}

/// A SQLite node with `queue` outbound frames per connection and no request rate limit, so
/// tests can flood a room.
pub(crate) async fn unthrottled(queue: usize) -> TestApp {
    TestApp::spawn_with(Engine::Sqlite, |s| {
        s.ws.outbound_queue = queue;
        s.ws.rate_per_sec = 100_000.0;
        s.ws.rate_burst = 100_000.0;
        s.ws.user_rate_per_sec = 100_000.0;
        s.ws.user_rate_burst = 100_000.0;
    })
    .await
}

/// `senders` connections of `token` each send `each` messages of ~4 KB to `room`, concurrently
/// (so the group commit batches them).
pub(crate) async fn flood(app: &TestApp, token: &str, room: i64, senders: usize, each: usize) {
    let text = "x".repeat(3900);
    let mut clients = Vec::new();
    for _ in 0..senders {
        clients.push(app.client(Some(token)).await);
    }
    join_all(clients.iter_mut().enumerate().map(|(s, ws)| {
        let text = &text;
        async move {
            for i in 0..each {
                send(ws, room, text, &format!("{s}-{i}")).await;
            }
        }
    }))
    .await;
}

/// A client that stops reading is dropped with 4008 and counted; the others keep receiving.
#[actix_web::test]
async fn a_slow_consumer_is_dropped_while_others_keep_receiving() {
    let app = unthrottled(16).await;
    let (_, a) = app.user("alice").await;
    let room = create_room(&app, &a, false).await;
    let (_, s) = app.user("sleepy").await;
    let mut sleepy = app.client(Some(&s)).await;
    join(&mut sleepy, room, None).await;
    let (_, r) = app.user("reader").await;
    let mut reader = app.client(Some(&r)).await;
    join(&mut reader, room, None).await;

    const SENDERS: usize = 8;
    const EACH: usize = 300;
    let send_all = flood(&app, &a, room, SENDERS, EACH);
    let read_all = async {
        let got = messages(&mut reader, room, SENDERS * EACH).await;
        assert_eq!(
            seqs(&got),
            (1..=(SENDERS * EACH) as u64).collect::<Vec<_>>()
        );
    };
    futures_util::join!(send_all, read_all);

    assert_eq!(sleepy.close_code().await, Some(4008));
    let (_, metrics) = app.get("/metrics", None).await;
    let line = metrics
        .as_str()
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("corral_slow_consumer_drops_total"))
        .map(str::to_string)
        .unwrap_or_default();
    let drops: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(drops >= 1.0, "slow consumer drop counted: {line:?}");
}

/// A member that never reads again (a small receive window: the node's writes stall) is dropped
/// as a slow consumer without its help: its Session, queue and admission place are given back
/// while it still has not read a byte, so what it costs the node is bounded by its queue; when
/// it reads at last, the close it finds is 4008.
#[actix_web::test]
async fn a_reader_that_stops_is_released_before_it_reads_and_told_4008() {
    let app = unthrottled(16).await;
    let (_, a) = app.user("alice").await;
    let room = create_room(&app, &a, false).await;
    let (_, s) = app.user("stuck").await;
    let mut stuck = WsClient::connect_with_receive_buffer(&app.ws_url(), 16 * 1024)
        .await
        .expect("connect");
    stuck
        .request("auth", json!({ "token": s }))
        .await
        .expect("auth");
    join(&mut stuck, room, None).await;
    // ~7 MB: more than the stalled socket's kernel buffers (a few MB) and the 16-frame queue.
    flood(&app, &a, room, 6, 300).await;
    wait_until("the stalled connection is released", WAIT, async || {
        let hub = &app.state.hub;
        let (sessions, admitted) = (hub.connections.len(), hub.admission.open());
        check(sessions == 0 && admitted == 0, (sessions, admitted))
    })
    .await;
    assert_eq!(stuck.close_code().await, Some(4008));
}

/// A member that stops reading for a while (its socket full, hundreds of frames queued for
/// it) then reads again gets every message once and in order: frames are written from the
/// queue in batches, and none may fall between two batches.
#[actix_web::test]
async fn a_paused_reader_gets_every_queued_message() {
    const SENT: usize = 1500;
    let app = unthrottled(4 * SENT).await;
    let (_, a) = app.user("alice").await;
    let room = create_room(&app, &a, false).await;
    let (_, p) = app.user("paused").await;
    let mut paused = app.client(Some(&p)).await;
    join(&mut paused, room, None).await;
    // ~6 MB: far more than the paused socket's buffers hold, so most of it waits in the
    // node's outbound queue until the reader comes back.
    flood(&app, &a, room, 6, SENT / 6).await;
    let got = messages(&mut paused, room, SENT).await;
    assert_eq!(seqs(&got), (1..=SENT as u64).collect::<Vec<_>>());
    paused.assert_silent("room.message").await;
}

/// Two nodes sharing PostgreSQL and Redis: a room's members on both get every message once
/// and in order, whichever node it was sent on.
#[actix_web::test]
async fn a_room_spans_nodes_over_redis() {
    let nodes = TestApp::cluster(2, |_| {}).await;
    let (node1, node2) = (&nodes[0], &nodes[1]);
    let (_, a) = node1.user("alice").await;
    let (_, b) = node1.user("bob").await;
    let room = create_room(node1, &a, false).await;
    let mut alice1 = node1.client(Some(&a)).await;
    let mut alice2 = node2.client(Some(&a)).await;
    let mut bob2 = node2.client(Some(&b)).await;
    join(&mut alice1, room, None).await;
    join(&mut alice2, room, None).await;
    join(&mut bob2, room, None).await;

    const EACH: usize = 20;
    let mut s1 = node1.client(Some(&a)).await;
    let mut s2 = node2.client(Some(&b)).await;
    let (acks1, acks2) = futures_util::join!(
        async {
            let mut v = Vec::new();
            for i in 0..EACH {
                v.push(send(&mut s1, room, "from node 1", &format!("n1-{i}")).await);
            }
            v
        },
        async {
            let mut v = Vec::new();
            for i in 0..EACH {
                v.push(send(&mut s2, room, "from node 2", &format!("n2-{i}")).await);
            }
            v
        }
    );
    let all: HashSet<u64> = acks1.iter().chain(&acks2).copied().collect();
    assert_eq!(all, (1..=(2 * EACH) as u64).collect::<HashSet<_>>());
    for ws in [&mut alice1, &mut alice2, &mut bob2] {
        let got = messages(ws, room, 2 * EACH).await;
        assert_eq!(seqs(&got), (1..=(2 * EACH) as u64).collect::<Vec<_>>());
        ws.assert_silent("room.message").await;
    }
}

/// Kills the Redis subscriber connections of the cluster whose key prefix is `prefix`;
/// returns how many were killed.
async fn kill_subscribers(prefix: &str) -> usize {
    let client = redis::Client::open(redis_url()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .expect("client list");
    let wanted = format!(
        "name={}",
        corral::store::redis::broker::subscriber_name(prefix)
    );
    let mut killed = 0;
    for line in list.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.contains(&wanted.as_str())
            && let Some(id) = fields.iter().find_map(|f| f.strip_prefix("id="))
        {
            let n: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query_async(&mut conn)
                .await
                .expect("client kill");
            killed += n as usize;
        }
    }
    killed
}

/// The Redis subscriber connections of both nodes are killed: the nodes reconnect and
/// subscribe again by themselves, and a room spanning them carries messages as before.
#[actix_web::test]
async fn a_room_spans_nodes_again_after_the_redis_subscriptions_drop() {
    let nodes = TestApp::cluster(2, |_| {}).await;
    let (node1, node2) = (&nodes[0], &nodes[1]);
    let prefix = node1.state.settings.redis.key_prefix.clone();
    let (_, a) = node1.user("alice").await;
    let (_, b) = node1.user("bob").await;
    let room = create_room(node1, &a, false).await;
    let mut alice = node1.client(Some(&a)).await;
    let mut bob = node2.client(Some(&b)).await;
    join(&mut alice, room, None).await;
    join(&mut bob, room, None).await;
    send(&mut alice, room, "before", "m1").await;
    assert_eq!(seqs(&messages(&mut bob, room, 1).await), [1]);

    assert_eq!(
        kill_subscribers(&prefix).await,
        2,
        "one subscriber per node"
    );
    // Both directions work again once the nodes have resubscribed: alice sends until bob
    // hears from node 1 again; he must end up with every message, in order (the ones lost in
    // the outage are repaired from the store).
    let deadline = tokio::time::Instant::now() + 3 * WAIT;
    let mut sent = 1u64;
    let first = loop {
        sent += 1;
        send(&mut alice, room, "after", &format!("m{sent}")).await;
        let wait = tokio::time::Instant::now() + Duration::from_millis(300);
        if let Some(msg) = bob.next_event_until("room.message", wait).await {
            break msg;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node 2 never resubscribed"
        );
    };
    let mut got = vec![first];
    got.extend(messages(&mut bob, room, sent as usize - 2).await);
    assert_eq!(seqs(&got), (2..=sent).collect::<Vec<_>>());
    bob.assert_silent("room.message").await;
    // Alice's session hears her own messages too, and now bob's reply from node 2.
    let reply = send(&mut bob, room, "reply", "r1").await;
    let got = messages(&mut alice, room, reply as usize).await;
    assert_eq!(seqs(&got), (1..=reply).collect::<Vec<_>>());
}

/// Sends `room.send` requests one after another until the connection dies, recording every
/// acknowledged (client_msg_id, seq); an error reply fails the test.
async fn send_until_killed(
    port: u16,
    token: &str,
    room: i64,
    tag: &str,
    acked: &std::cell::RefCell<Vec<(String, u64)>>,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "corral.v1".parse().unwrap());
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    for id in 1u64.. {
        let cmid = format!("{tag}-{id}");
        let frame = json!({"id": id, "op": "room.send", "room": room, "text": "durable", "client_msg_id": cmid});
        if ws.send(Message::text(frame.to_string())).await.is_err() {
            return;
        }
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(&text).unwrap();
                    if v["re"] == id {
                        // A live server acknowledges every send: an error reply is a bug.
                        let seq = v["ok"]["seq"]
                            .as_u64()
                            .unwrap_or_else(|| panic!("send {cmid} refused: {v}"));
                        acked.borrow_mut().push((cmid, seq));
                        break;
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            }
        }
    }
}

/// Every message acknowledged before a SIGKILL is there, with its seq, after a restart.
#[actix_web::test]
async fn a_killed_server_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    // Four sockets of one user send as fast as acknowledgements come: no request limits.
    let unlimited = [
        ("CORRAL_WS__RATE_PER_SEC", "1000000"),
        ("CORRAL_WS__RATE_BURST", "1000000"),
        ("CORRAL_WS__USER_RATE_PER_SEC", "1000000"),
        ("CORRAL_WS__USER_RATE_BURST", "1000000"),
    ];
    let mut node = NodeProcess::start(dir.path(), &unlimited).await;
    let port = node.port;
    let base = node.url("/api/v1");
    let creds = json!({"username": unique("k").chars().take(32).collect::<String>(), "password": "correct-horse"});
    let resp = http
        .post(format!("{base}/auth/register"))
        .json(&creds)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let login: Value = http
        .post(format!("{base}/auth/login"))
        .json(&creds)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_string();
    let created: Value = http
        .post(format!("{base}/rooms"))
        .bearer_auth(&token)
        .json(&json!({"name": "durable", "private": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let room = created["room_id"].as_i64().unwrap();

    let acked = std::cell::RefCell::new(Vec::new());
    let tags: Vec<String> = (0..4).map(|t| format!("t{t}")).collect();
    let senders = join_all(
        tags.iter()
            .map(|tag| send_until_killed(port, &token, room, tag, &acked)),
    );
    let killer = async {
        wait_until("300 sends are acknowledged", 6 * WAIT, async || {
            let n = acked.borrow().len();
            check(n >= 300, n)
        })
        .await;
        node.crash();
    };
    futures_util::join!(senders, killer);
    let acked = acked.into_inner();
    assert!(acked.len() >= 300);

    node.restart().await;
    let mut ws = WsClient::connect(&node.ws_url(), Some(&token))
        .await
        .expect("reconnect");
    let joined = join(&mut ws, room, Some(0)).await;
    let last = joined["last_seq"].as_u64().unwrap();
    let mut stored: BTreeMap<u64, String> = BTreeMap::new();
    let mut before = last + 1;
    while before > 1 {
        let page = ws
            .request(
                "room.history",
                json!({"room": room, "before_seq": before, "limit": 200}),
            )
            .await
            .expect("history");
        let page: Vec<Value> = serde_json::from_value(page["messages"].clone()).unwrap();
        assert!(!page.is_empty());
        before = page[0]["seq"].as_u64().unwrap();
        for m in page {
            stored.insert(
                m["seq"].as_u64().unwrap(),
                m["client_msg_id"].as_str().unwrap().to_string(),
            );
        }
    }
    assert_eq!(
        stored.keys().copied().collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>(),
        "gap-free"
    );
    for (cmid, seq) in &acked {
        assert_eq!(
            stored.get(seq),
            Some(cmid),
            "acknowledged message {cmid} at seq {seq} survived"
        );
    }
}

/// A room nobody on the node uses stops its actor after `chat.room_idle_secs`; the next use
/// starts it again from the store, with nothing lost. A room with a joined member stays.
#[actix_web::test]
async fn idle_rooms_stop_and_come_back_from_the_store() {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| s.chat.room_idle_secs = 1).await;
    let (_, a) = app.user("alice").await;
    let (_, b) = app.user("bob").await;
    let quiet = create_room(&app, &a, false).await;
    let busy = create_room(&app, &a, false).await;
    let mut alice = app.client(Some(&a)).await;
    join(&mut alice, quiet, None).await;
    join(&mut alice, busy, None).await;
    for i in 1..=3 {
        send(&mut alice, quiet, "hello", &format!("q{i}")).await;
    }
    alice
        .request("room.leave", json!({ "room": quiet }))
        .await
        .expect("leave");
    assert_eq!(app.state.hub.rooms.running(), 2);

    wait_until("the idle room's actor stops", WAIT, async || {
        let running = app.state.hub.rooms.running();
        check(running == 1, format!("{running} room actors running"))
    })
    .await;
    // The joined room is the one still running: it still delivers.
    let mut bob = app.client(Some(&b)).await;
    join(&mut bob, busy, None).await;
    let seq = send(&mut bob, busy, "still here", "b1").await;
    let got = messages(&mut alice, busy, 1).await;
    assert_eq!(seqs(&got), [seq]);

    // The stopped room comes back with its history and its seq where they were.
    let ok = join(&mut bob, quiet, Some(0)).await;
    assert_eq!(ok["last_seq"], 3);
    assert_eq!(ok["caught_up"], true);
    let missed: Vec<u64> = ok["missed"]
        .as_array()
        .expect("missed")
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(missed, [1, 2, 3]);
    assert_eq!(send(&mut bob, quiet, "back", "b2").await, 4);
    assert_eq!(app.state.hub.rooms.running(), 2);
}

/// Two cluster nodes: a join reply's `online` and `online_count` name the members on both
/// nodes, and a member who left is gone from a later join's list.
#[actix_web::test]
async fn join_replies_list_members_on_every_node() {
    let nodes = TestApp::cluster(2, |_| {}).await;
    let (node1, node2) = (&nodes[0], &nodes[1]);
    let (x, xt) = node1.user("xavier").await;
    let (y, yt) = node1.user("yvonne").await;
    let (z, zt) = node1.user("zoe").await;
    let room = create_room(node1, &xt, false).await;
    let mut x1 = node1.client(Some(&xt)).await;
    join(&mut x1, room, None).await;

    let mut y2 = node2.client(Some(&yt)).await;
    let joined = join(&mut y2, room, None).await;
    let online: Vec<i64> = serde_json::from_value(joined["online"].clone()).expect("online");
    assert_eq!(online[0], y, "the joiner first: {joined}");
    assert!(
        online.contains(&x),
        "a member on the other node is listed: {joined}"
    );
    assert_eq!(joined["online_count"], 2, "{joined}");

    x1.request("room.leave", json!({"room": room}))
        .await
        .expect("leave");
    // A join reply may reuse what it read of the cluster for a second; new joins on node 2
    // stop naming the member who left once that has passed.
    wait_until(
        "a join no longer lists the member who left",
        WAIT,
        async || {
            let mut z2 = node2.client(Some(&zt)).await;
            let joined = join(&mut z2, room, None).await;
            let online: Vec<i64> =
                serde_json::from_value(joined["online"].clone()).expect("online");
            z2.request("room.leave", json!({"room": room}))
                .await
                .expect("leave");
            check(
                !online.contains(&x) && online.contains(&y) && online.contains(&z),
                joined,
            )
        },
    )
    .await;
}

/// `room.history` without `limit` answers the documented default page (50, the newest, oldest
/// first); `room.send` without `client_msg_id` is refused naming the field and why it has no
/// default.
#[actix_web::test]
async fn history_has_a_default_page_and_sends_need_their_key() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (_, token) = app.user("pager").await;
    let room = create_room(&app, &token, false).await;
    let mut ws = app.client(Some(&token)).await;
    join(&mut ws, room, None).await;
    for n in 0..60 {
        send(&mut ws, room, &format!("m{n}"), &format!("k{n}")).await;
    }
    let page = ws
        .request("room.history", json!({ "room": room }))
        .await
        .expect("history without limit");
    let seqs: Vec<u64> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        (11..=60).collect::<Vec<u64>>(),
        "the newest 50, oldest first"
    );
    let err = ws
        .request("room.send", json!({"room": room, "text": "no key"}))
        .await
        .expect_err("refused without client_msg_id");
    assert_eq!(err.code, ErrorCode::BadRequest);
    assert!(
        err.message.contains("client_msg_id") && err.message.contains("idempotency key"),
        "{}",
        err.message
    );
}

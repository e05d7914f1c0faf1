//! Winners first: a claim's `held` reply, and its `claim.updated`, overtake the pushes already
//! queued for the claimant's socket (a client that stopped reading while its room flooded it).

use corral_protocol::Role;
use serde_json::json;

use super::fixtures::{Promo, bulk_users, seed};
use crate::chat::{create_room, flood, join, unthrottled};
use crate::support::{WAIT, WsClient, check, metric_value, wait_until};

/// The claimant's socket is full and ~12 MB of room messages wait for it when it claims: the
/// claim is read and answered meanwhile, its frames leave ahead of the messages still in the
/// node's queue, and every message still arrives once and in order.
#[actix_web::test]
async fn a_held_reply_overtakes_pushes_already_queued() {
    const SENT: usize = 3000;
    let app = unthrottled(4 * SENT).await;
    let (activity, _, _) = seed(&app, &Promo::open(1)).await;
    let (_, owner) = app.user("alice").await;
    let room = create_room(&app, &owner, false).await;
    let (_, claimant) = bulk_users(&app, 1, Role::User).await.remove(0);
    // A small receive window: the flood waits in the node's queue, not in kernel buffers.
    let mut ws = WsClient::connect_with_receive_buffer(&app.ws_url(), 16 * 1024)
        .await
        .expect("connect");
    ws.request("auth", json!({ "token": claimant }))
        .await
        .expect("auth");
    join(&mut ws, room, None).await;
    // Far more than the paused socket's buffers hold: most of it waits in the node's queue.
    flood(&app, &owner, room, 6, SENT / 6).await;

    // The claim is sent, and the test does not read until the node has answered it: its
    // reply is then queued behind (or, with winners first, ahead of) the whole flood.
    let id = ws
        .send_op("claim", json!({"activity": activity, "key": "k1"}))
        .await;
    wait_until("the claim is answered", WAIT, async || {
        let (_, metrics) = app.get("/metrics", None).await;
        let text = metrics.as_str().unwrap_or_default().to_string();
        let held = metric_value(&text, r#"corral_replies_total{op="claim",outcome="ok"}"#);
        check(held >= 1.0, held)
    })
    .await;
    let held = ws.reply_to(Some(id)).await.expect("held");
    assert_eq!(held["status"], "held");

    // Every push in arrival order: the room's messages and the claim's own update.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut before_update = None;
    let mut room_seqs = Vec::with_capacity(SENT);
    while room_seqs.len() < SENT {
        let push = ws
            .next_push_until(deadline)
            .await
            .unwrap_or_else(|| panic!("only {} of {SENT} messages arrived", room_seqs.len()));
        match push["ev"].as_str() {
            Some("room.message") => room_seqs.push(push["seq"].as_u64().expect("seq")),
            Some("claim.updated") => before_update = Some(room_seqs.len()),
            other => panic!("unexpected push {other:?}"),
        }
    }
    // What arrived before the claim's frames had left the node's queue when it was answered
    // (into the kernel's send buffer: up to a few MB, about a thousand of these messages);
    // the rest was still queued, and the claim's frames went ahead of it.
    let before_update = before_update.expect("claim.updated arrived");
    println!("claim.updated after {before_update} of {SENT} queued room messages");
    assert!(
        before_update < SENT,
        "claim.updated came after {before_update} of {SENT} queued room messages"
    );
    // The reply lane took nothing from the room's order.
    assert_eq!(room_seqs, (1..=SENT as u64).collect::<Vec<_>>());
}

//! The payment webhook, on both SQL engines: a signed event confirms a held claim exactly
//! once (replays, stale timestamps, wrong signatures and late payments each answered as
//! SPEC.md says), and bad requests are refused with their status and code, changing nothing.
//! [`pay`] is the one signed call, shared with the other suites.

use std::time::Duration;

use corral_protocol::Role;
use serde_json::{Value, json};

use super::fixtures::{Promo, bulk_users, now_ms, seed};
use crate::support::{Engine, QUIET, TestApp, unique};

crate::engine_tests!(webhook_confirms_exactly_once, webhook_refuses_bad_requests);

pub(super) const SECRET: &str = "test-webhook-secret";

/// Posts a payment event signed with `secret` at `ts` with `nonce`.
pub async fn pay(app: &TestApp, secret: &str, ts: i64, nonce: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let ts = ts.to_string();
    let sig = corral::http::payments::sign(secret.as_bytes(), &ts, nonce, body.as_bytes());
    let headers = [
        ("X-Corral-Timestamp", ts),
        ("X-Corral-Nonce", nonce.to_string()),
        ("X-Corral-Signature", sig),
    ];
    webhook_post(app, &headers, body).await
}

/// Posts `body` to the payment webhook with exactly `headers` (besides the content type).
async fn webhook_post(app: &TestApp, headers: &[(&str, String)], body: String) -> (u16, Value) {
    let mut req = app
        .http
        .post(app.url("/api/v1/payments/webhook"))
        .header("Content-Type", "application/json");
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let resp = req.body(body).send().await.expect("webhook");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The webhook's refusals, each with its status and code and each changing nothing: missing
/// signature headers 401, a signed body that is not a payment event 400, an event id already
/// used for another claim 409; a node with no webhook secret answers 503.
async fn webhook_refuses_bad_requests(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| {
        s.payments.webhook_secret = corral::config::Secret::from(SECRET);
        s.payments.stale_window_secs = 60;
    })
    .await;
    let promo = Promo {
        per_user_limit: 2,
        ..Promo::open(2)
    };
    let (activity, _, merchant) = seed(&app, &promo).await;
    let (_, alice) = bulk_users(&app, 1, Role::User).await.remove(0);
    let mut a = app.client(Some(&alice)).await;
    let mut claims = Vec::new();
    for key in ["a1", "a2"] {
        let held = a
            .request("claim", json!({"activity": activity, "key": key}))
            .await
            .expect("held");
        claims.push(held["claim_id"].as_i64().expect("id"));
    }
    let event =
        |id: &str, claim: i64| json!({"event_id": id, "claim_id": claim, "amount_cents": 100});
    let code = |body: &Value| body["error"]["code"].as_str().map(str::to_string);
    let pay_now =
        async |app: &TestApp, event: &Value| pay(app, SECRET, now_ms(), &unique("n"), event).await;

    // Each signature header missing in turn: 401.
    let body = event("e1", claims[0]).to_string();
    let ts = now_ms().to_string();
    let nonce = unique("n");
    let sig = corral::http::payments::sign(SECRET.as_bytes(), &ts, &nonce, body.as_bytes());
    let all = [
        ("X-Corral-Timestamp", ts),
        ("X-Corral-Nonce", nonce),
        ("X-Corral-Signature", sig),
    ];
    for missing in 0..all.len() {
        let headers: Vec<(&str, String)> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != missing)
            .map(|(_, h)| h.clone())
            .collect();
        let (status, reply) = webhook_post(&app, &headers, body.clone()).await;
        assert_eq!(
            (status, code(&reply).as_deref()),
            (401, Some("unauthenticated")),
            "without {}: {reply}",
            all[missing].0
        );
    }
    // Signed, but not a payment event: 400.
    for bad in [
        json!("not an object"),
        json!({"claim_id": claims[0], "amount_cents": 500}),
        json!({"event_id": "", "claim_id": claims[0], "amount_cents": 500}),
        json!({"event_id": "e9", "claim_id": "one", "amount_cents": 500}),
    ] {
        let (status, reply) = pay_now(&app, &bad).await;
        assert_eq!(
            (status, code(&reply).as_deref()),
            (400, Some("bad_request")),
            "{bad}: {reply}"
        );
    }
    // An event id used for one claim cannot confirm another: 409.
    let (status, reply) = pay_now(&app, &event("e1", claims[0])).await;
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("confirmed")),
        "{reply}"
    );
    let (status, reply) = pay_now(&app, &event("e1", claims[1])).await;
    assert_eq!(
        (status, code(&reply).as_deref()),
        (409, Some("conflict")),
        "{reply}"
    );
    // Nothing else changed: one confirmed, one still held, one push each way.
    let (_, view) = app
        .get(
            &format!("/api/v1/activities/{activity}/claims"),
            Some(&merchant),
        )
        .await;
    assert_eq!(
        (&view["summary"]["confirmed"], &view["summary"]["held"]),
        (&json!(1), &json!(1)),
        "{view}"
    );
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let push = a.next_event("claim.updated").await.expect("claim.updated");
        statuses.push((
            push["claim_id"].as_i64(),
            push["status"].as_str().map(str::to_string),
        ));
    }
    assert_eq!(
        statuses,
        [
            (Some(claims[0]), Some("held".to_string())),
            (Some(claims[1]), Some("held".to_string())),
            (Some(claims[0]), Some("confirmed".to_string())),
        ]
    );
    a.assert_silent("claim.updated").await;

    // A node without a webhook secret refuses every call: 503.
    let bare = TestApp::spawn(app.engine).await;
    let (status, reply) = pay_now(&bare, &event("e1", 1)).await;
    assert_eq!(
        (status, code(&reply).as_deref()),
        (503, Some("unavailable")),
        "{reply}"
    );
}

async fn webhook_confirms_exactly_once(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| {
        s.payments.webhook_secret = corral::config::Secret::from(SECRET);
        s.payments.stale_window_secs = 60;
    })
    .await;
    let promo = Promo {
        hold_seconds: 1,
        ..Promo::open(1)
    };
    let (activity, _, merchant) = seed(&app, &promo).await;
    let (_, alice) = bulk_users(&app, 1, Role::User).await.remove(0);
    let (_, bob) = bulk_users(&app, 1, Role::User).await.remove(0);
    let mut a = app.client(Some(&alice)).await;
    let held = a
        .request("claim", json!({"activity": activity, "key": "a"}))
        .await
        .expect("held");
    let claim = held["claim_id"].as_i64().expect("id");
    let event =
        |id: &str, claim: i64| json!({"event_id": id, "claim_id": claim, "amount_cents": 100});
    let nonce = || unique("n");

    // Forged signature, stale timestamp, unknown claim: refused, nothing changes.
    let (status, body) = pay(&app, "wrong", now_ms(), &nonce(), &event("e1", claim)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (status, _) = pay(
        &app,
        SECRET,
        now_ms() - 120_000,
        &nonce(),
        &event("e1", claim),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = pay(&app, SECRET, now_ms(), &nonce(), &event("e0", claim + 1000)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    let mut watcher = app.client(Some(&bob)).await;
    watcher
        .request("activity.subscribe", json!({"activity": activity}))
        .await
        .expect("subscribe");
    // Valid: confirmed, pushed.
    let n = nonce();
    let (status, body) = pay(&app, SECRET, now_ms(), &n, &event("e1", claim)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("confirmed")),
        "{body}"
    );
    assert_eq!(body["changed"], true);
    let _held = a.next_event("claim.updated").await.expect("held push");
    let pushed = a.next_event("claim.updated").await.expect("confirmed push");
    assert_eq!(pushed["status"], "confirmed");
    // The adopter now follows the animal: the merchant's post tagged with it reaches her
    // timeline (and not a bystander's).
    let item = held["item"].as_i64().expect("item");
    let animal: i64 = sqlx::query_scalar("SELECT animal_id FROM activity_items WHERE id = $1")
        .bind(item)
        .fetch_one(&app.state.db.pool)
        .await
        .expect("animal of item");
    let mut m = app.client(Some(&merchant)).await;
    let post = m
        .request(
            "feed.post",
            json!({"text": "Your calf says hello", "animal": animal}),
        )
        .await
        .expect("tagged post")["post_id"]
        .as_i64();
    let timeline = a
        .request("feed.timeline", json!({"limit": 10}))
        .await
        .expect("timeline");
    assert_eq!(timeline["posts"][0]["post_id"].as_i64(), post, "{timeline}");
    let bystander = watcher
        .request("feed.timeline", json!({"limit": 10}))
        .await
        .expect("timeline");
    assert_eq!(bystander["posts"], json!([]));
    // Its only slot is paid for: the promotion is sold out for good.
    let ended = watcher.next_event("activity.ended").await.expect("ended");
    assert_eq!(ended["reason"], "sold_out");
    // Replayed nonce refused; same event again is a no-op; another event for it changes nothing.
    let (status, _) = pay(&app, SECRET, now_ms(), &n, &event("e1", claim)).await;
    assert_eq!(status, 409);
    let (status, body) = pay(&app, SECRET, now_ms(), &nonce(), &event("e1", claim)).await;
    assert_eq!(
        (status, body["duplicate"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let (status, body) = pay(&app, SECRET, now_ms(), &nonce(), &event("e2", claim)).await;
    assert_eq!(
        (status, body["status"].as_str(), body["changed"].as_bool()),
        (200, Some("confirmed"), Some(false))
    );
    // Exactly once: the duplicates pushed nothing, and the confirmed hold never expires
    // (nothing arrives past its `expires_at` and the desk's next sweep).
    let expires_at = held["expires_at"].as_i64().expect("expires_at");
    let past_expiry = Duration::from_millis((expires_at - now_ms()).max(0) as u64) + QUIET;
    a.assert_silent_for("claim.updated", past_expiry).await;
    let err = a
        .request("claim.cancel", json!({"claim_id": claim}))
        .await
        .expect_err("confirmed");
    assert_eq!(err.code.as_str(), "conflict");

    // Out of order / late: a second activity; bob's hold lapses; the payment comes after.
    let (activity2, _, merchant2) = seed(&app, &promo).await;
    let mut b = app.client(Some(&bob)).await;
    let late = b
        .request("claim", json!({"activity": activity2, "key": "b"}))
        .await
        .expect("held");
    let late_id = late["claim_id"].as_i64().expect("id");
    let _ = b.next_event("claim.updated").await;
    let pushed = b.next_event("claim.updated").await.expect("expired");
    assert_eq!(pushed["status"], "expired");
    // Slot free: the payment re-takes it.
    let (status, body) = pay(&app, SECRET, now_ms(), &nonce(), &event("e3", late_id)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("confirmed")),
        "{body}"
    );
    let pushed = b.next_event("claim.updated").await.expect("confirmed");
    assert_eq!(pushed["status"], "confirmed");
    // Sold out: the late payment is recorded as refund_due, pushed and reported.
    let (activity3, _, merchant3) = seed(&app, &promo).await;
    let c = b
        .request("claim", json!({"activity": activity3, "key": "c"}))
        .await
        .expect("held");
    let c_id = c["claim_id"].as_i64().expect("id");
    let cancelled = b
        .request("claim.cancel", json!({"claim_id": c_id}))
        .await
        .expect("cancel");
    assert_eq!(cancelled["status"], "cancelled");
    let mut a3 = app.client(Some(&alice)).await;
    a3.request("claim", json!({"activity": activity3, "key": "a"}))
        .await
        .expect("alice takes the freed slot");
    let (status, body) = pay(&app, SECRET, now_ms(), &nonce(), &event("e4", c_id)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("refund_due")),
        "{body}"
    );
    let refund = loop {
        let pushed = b.next_event("claim.updated").await.expect("push");
        if pushed["claim_id"] == c_id && pushed["status"] == "refund_due" {
            break pushed;
        }
    };
    assert_eq!(refund["activity"], activity3);
    let (_, view) = app
        .get(
            &format!("/api/v1/activities/{activity3}/claims"),
            Some(&merchant3),
        )
        .await;
    assert_eq!(view["summary"]["refund_due"], 1, "{view}");
    assert_eq!(view["summary"]["held"], 1, "{view}");
    let (_, view) = app
        .get(
            &format!("/api/v1/activities/{activity2}/claims"),
            Some(&merchant2),
        )
        .await;
    assert_eq!(view["summary"]["confirmed"], 1, "{view}");
    let (_, view) = app
        .get(
            &format!("/api/v1/activities/{activity}/claims"),
            Some(&merchant),
        )
        .await;
    assert_eq!(view["summary"]["confirmed"], 1, "{view}");
}

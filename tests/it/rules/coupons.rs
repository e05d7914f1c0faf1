//! Coupon rewards: the merchant's upload (merchant only, trimmed, duplicates reported, bounded,
//! frozen at the start, slots capped by the codes) and the claim flow on a real node, embedded
//! and PostgreSQL + Redis: the code in the claim reply, in `claim.updated` and in "my claims";
//! a retry with the same key gets the same code; an expired hold's code goes back to the pool
//! and is given to the next winner; a cancelled hold's too; a paid claim keeps its code, and a
//! payment for a lapsed hold takes a free one again.

use corral_protocol::Role;
use serde_json::{Value, json};

use super::fixtures::{load_codes, promo_with_rules};
use crate::claims::{Promo, bulk_users, now_ms, pay};
use crate::support::{Engine, TestApp, WAIT, check, wait_until};

/// A merchant (id, token) with one animal of `slots` slots.
async fn merchant_with_animal(app: &TestApp, name: &str, slots: i64) -> (String, i64) {
    let (_, token) = app.user(name).await;
    let (status, body) = app
        .post("/api/v1/merchants", Some(&token), json!({"name": name}))
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().expect("token").to_string();
    let (status, body) = app
        .post(
            "/api/v1/animals",
            Some(&token),
            json!({"name": "Daisy", "species": "cow", "price_cents": 100, "slots": slots}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (token, body["animal_id"].as_i64().expect("animal"))
}

async fn create(app: &TestApp, token: &str, animal: i64, starts_at: i64, reward: &str) -> i64 {
    let (status, reply) = app
        .post(
            "/api/v1/activities",
            Some(token),
            json!({
                "title": "Spring coupons",
                "starts_at": starts_at,
                "ends_at": starts_at + 60_000,
                "items": [{"animal_id": animal, "slots": 3}],
                "per_user_limit": 1,
                "hold_seconds": 60,
                "rules": {"reward": {"kind": reward}},
            }),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    reply["activity_id"].as_i64().expect("id")
}

async fn upload(app: &TestApp, id: i64, token: &str, codes: Value) -> (u16, Value) {
    app.post(
        &format!("/api/v1/activities/{id}/coupons"),
        Some(token),
        json!({ "codes": codes }),
    )
    .await
}

async fn uploads_are_checked_counted_and_frozen(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (token, animal) = merchant_with_animal(&app, "farmer", 3).await;
    let (other, _) = merchant_with_animal(&app, "rival", 1).await;
    let (_, user) = app.user("visitor").await;
    let starts_at = now_ms() + 4_000;
    let id = create(&app, &token, animal, starts_at, "coupon").await;
    let slot_promo = create(&app, &token, animal, starts_at, "slot").await;

    // Before any code, a coupon promotion offers nothing.
    let (_, got) = app
        .get(&format!("/api/v1/activities/{id}"), Some(&token))
        .await;
    assert_eq!(
        (&got["slots"], &got["coupons"]),
        (&json!(0), &json!({"loaded": 0, "given": 0})),
        "{got}"
    );

    for (who, status, code) in [(&other, 403, "forbidden"), (&user, 403, "forbidden")] {
        let (got, reply) = upload(&app, id, who, json!(["A"])).await;
        assert_eq!((got, reply["error"]["code"].as_str()), (status, Some(code)));
    }
    let (status, reply) = upload(&app, slot_promo, &token, json!(["A"])).await;
    assert_eq!(status, 400, "{reply}");
    for (codes, message) in [
        (json!([]), "codes must hold 1-5000 codes"),
        (json!(["ok", "  "]), "codes[1] must be 1-64 characters"),
        (json!(["x".repeat(65)]), "codes[0] must be 1-64 characters"),
        (json!(["a\u{7}b"]), "codes[0] holds a control character"),
    ] {
        let (status, reply) = upload(&app, id, &token, codes).await;
        assert_eq!(status, 400, "{reply}");
        let got = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(got.starts_with(message), "{got}");
    }
    let (status, reply) = upload(&app, id, &token, json!((0..5_001).collect::<Vec<_>>())).await;
    assert_eq!(status, 400, "{reply}");

    // Trimmed, kept once, repeats reported; a refused upload loaded nothing.
    let (status, reply) = upload(&app, id, &token, json!([" SPRING-1 ", "SPRING-1"])).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (&reply["added"], &reply["duplicates"], &reply["pool"]),
        (
            &json!(1),
            &json!(["SPRING-1"]),
            &json!({"loaded": 1, "given": 0})
        )
    );
    // One code, one slot: the three slots are capped by the pool.
    let (_, got) = app
        .get(&format!("/api/v1/activities/{id}"), Some(&token))
        .await;
    assert_eq!(
        (&got["slots"], &got["stock_left"]),
        (&json!(1), &json!(1)),
        "{got}"
    );
    let (_, page) = app
        .get("/api/v1/activities?state=upcoming", Some(&token))
        .await;
    let listed = page["activities"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["activity_id"] == id))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        listed["slots"], 1,
        "the listing caps the slots too: {listed}"
    );
    let (status, reply) = upload(
        &app,
        id,
        &token,
        json!(["SPRING-1", "SPRING-2", "SPRING-3", "SPRING-4"]),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (&reply["added"], &reply["duplicates"], &reply["pool"]),
        (
            &json!(3),
            &json!(["SPRING-1"]),
            &json!({"loaded": 4, "given": 0})
        )
    );
    // Four codes, three slots: the item's slots stand.
    wait_until("the stock follows the pool", WAIT, async || {
        let (_, got) = app
            .get(&format!("/api/v1/activities/{id}"), Some(&token))
            .await;
        check(
            (&got["slots"], &got["stock_left"]) == (&json!(3), &json!(3)),
            format!("{got}"),
        )
    })
    .await;

    wait_until("the promotion starts", WAIT, async || {
        check(now_ms() > starts_at, "not yet")
    })
    .await;
    let (status, reply) = upload(&app, id, &token, json!(["LATE"])).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{reply}"
    );
    let (_, got) = app
        .get(&format!("/api/v1/activities/{id}"), Some(&token))
        .await;
    assert_eq!(got["coupons"], json!({"loaded": 4, "given": 0}), "{got}");
}

#[actix_web::test]
async fn coupon_uploads_are_checked_counted_and_frozen_at_the_start_sqlite() {
    uploads_are_checked_counted_and_frozen(Engine::Sqlite).await;
}

#[actix_web::test]
async fn coupon_uploads_are_checked_counted_and_frozen_at_the_start_postgres() {
    uploads_are_checked_counted_and_frozen(Engine::Postgres).await;
}

async fn my_claim(app: &TestApp, token: &str, claim: &Value) -> Value {
    let (status, page) = app.get("/api/v1/me/claims", Some(token)).await;
    assert_eq!(status, 200, "{page}");
    page["claims"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["claim_id"] == claim["claim_id"]))
        .cloned()
        .unwrap_or(Value::Null)
}

/// One slot, one code, holds of one second: the code follows the hold.
async fn the_code_follows_the_hold(app: &TestApp) {
    let promo = Promo {
        hold_seconds: 1,
        ..Promo::open(1)
    };
    let (activity, _, merchant) =
        promo_with_rules(app, &promo, &json!({"reward": {"kind": "coupon"}})).await;
    load_codes(&app.state.db.pool, activity, &["ONLY-ONE"]).await;
    let (_, alice) = bulk_users(app, 1, Role::User).await.remove(0);
    let (_, bob) = bulk_users(app, 1, Role::User).await.remove(0);
    let mut a = app.client(Some(&alice)).await;
    let mut b = app.client(Some(&bob)).await;

    let held = a
        .request("claim", json!({"activity": activity, "key": "a1"}))
        .await
        .expect("held");
    assert_eq!(
        (&held["status"], &held["coupon_code"]),
        (&json!("held"), &json!("ONLY-ONE")),
        "{held}"
    );
    let pushed = a.next_event("claim.updated").await.expect("held push");
    assert_eq!(pushed["coupon_code"], "ONLY-ONE", "{pushed}");
    let again = a
        .request("claim", json!({"activity": activity, "key": "a1"}))
        .await
        .expect("same claim");
    assert_eq!(
        (&again["claim_id"], &again["coupon_code"]),
        (&held["claim_id"], &held["coupon_code"])
    );
    assert_eq!(
        my_claim(app, &alice, &held).await["coupon_code"],
        "ONLY-ONE"
    );
    let err = b
        .request("claim", json!({"activity": activity, "key": "b1"}))
        .await
        .expect_err("sold out");
    assert_eq!(err.code.as_str(), "sold_out");

    // The hold lapses: its code goes back and the next winner gets it.
    let expired = a.next_event("claim.updated").await.expect("expired push");
    assert_eq!(expired["status"], "expired");
    assert!(expired["coupon_code"].is_null(), "{expired}");
    let bob_hold = wait_until("bob wins the returned slot", WAIT, async || {
        b.request("claim", json!({"activity": activity, "key": "b2"}))
            .await
            .map_err(|err| err.message)
    })
    .await;
    assert_eq!(bob_hold["coupon_code"], "ONLY-ONE", "{bob_hold}");
    let lapsed = my_claim(app, &alice, &held).await;
    assert_eq!(lapsed["status"], "expired");
    assert!(lapsed["coupon_code"].is_null(), "{lapsed}");
    assert_eq!(
        my_claim(app, &bob, &bob_hold).await["coupon_code"],
        "ONLY-ONE"
    );
    let (_, got) = app
        .get(&format!("/api/v1/activities/{activity}"), Some(&merchant))
        .await;
    assert_eq!(got["coupons"], json!({"loaded": 1, "given": 1}), "{got}");

    // Given back early, the code is free again.
    let cancelled = b
        .request("claim.cancel", json!({"claim_id": bob_hold["claim_id"]}))
        .await
        .expect("cancelled");
    assert_eq!(cancelled["status"], "cancelled");
    let (_, got) = app
        .get(&format!("/api/v1/activities/{activity}"), Some(&merchant))
        .await;
    assert_eq!(got["coupons"], json!({"loaded": 1, "given": 0}), "{got}");
    let codes: Vec<(i64, String)> = sqlx::query_as(
        "SELECT COUNT(*), MIN(code) FROM coupon_codes WHERE activity_id = $1 AND claim_id IS NULL",
    )
    .bind(activity)
    .fetch_all(&app.state.db.pool)
    .await
    .expect("pool");
    assert_eq!(codes, vec![(1, "ONLY-ONE".to_string())]);
}

#[actix_web::test]
async fn a_coupon_follows_its_hold_embedded() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    the_code_follows_the_hold(&app).await;
}

#[actix_web::test]
async fn a_coupon_follows_its_hold_on_postgres_and_redis() {
    let nodes = TestApp::cluster(1, |_| {}).await;
    the_code_follows_the_hold(&nodes[0]).await;
}

const SECRET: &str = "coupon-webhook-secret";

/// Two slots, two codes, holds of one second: a paid claim keeps its code; a payment for a
/// lapsed hold re-takes a slot and, with it, a free code.
async fn a_paid_claim_keeps_its_code(app: &TestApp) {
    let promo = Promo {
        hold_seconds: 1,
        slots: vec![2],
        ..Promo::open(1)
    };
    let (activity, _, merchant) =
        promo_with_rules(app, &promo, &json!({"reward": {"kind": "coupon"}})).await;
    load_codes(&app.state.db.pool, activity, &["PAID-1", "PAID-2"]).await;
    let (_, alice) = bulk_users(app, 1, Role::User).await.remove(0);
    let (_, bob) = bulk_users(app, 1, Role::User).await.remove(0);
    let mut a = app.client(Some(&alice)).await;
    let mut b = app.client(Some(&bob)).await;
    let pay = async |event: &str, claim: &Value| {
        let body = json!({"event_id": event, "claim_id": claim["claim_id"], "amount_cents": 100});
        let (status, reply) = pay(app, SECRET, now_ms(), &crate::support::unique("n"), &body).await;
        assert_eq!(status, 200, "{reply}");
    };

    let alice_hold = a
        .request("claim", json!({"activity": activity, "key": "a1"}))
        .await
        .expect("held");
    let alice_code = alice_hold["coupon_code"].clone();
    assert!(alice_code.is_string(), "{alice_hold}");
    pay("alice-paid", &alice_hold).await;
    let paid = my_claim(app, &alice, &alice_hold).await;
    assert_eq!(
        (&paid["status"], &paid["coupon_code"]),
        (&json!("confirmed"), &alice_code)
    );

    let bob_hold = b
        .request("claim", json!({"activity": activity, "key": "b1"}))
        .await
        .expect("held");
    assert!(bob_hold["coupon_code"].is_string(), "{bob_hold}");
    assert_ne!(bob_hold["coupon_code"], alice_code);
    wait_until("bob's hold lapses", WAIT, async || {
        let row = my_claim(app, &bob, &bob_hold).await;
        check(row["status"] == "expired", row)
    })
    .await;
    // Paid late, with a slot free: confirmed, and a code is taken again.
    pay("bob-paid-late", &bob_hold).await;
    let late = my_claim(app, &bob, &bob_hold).await;
    assert_eq!(late["status"], "confirmed", "{late}");
    assert!(late["coupon_code"].is_string(), "{late}");
    assert_ne!(late["coupon_code"], alice_code);
    let (_, got) = app
        .get(&format!("/api/v1/activities/{activity}"), Some(&merchant))
        .await;
    assert_eq!(got["coupons"], json!({"loaded": 2, "given": 2}), "{got}");
    assert_eq!(got["stock_left"], 0, "{got}");
}

#[actix_web::test]
async fn a_paid_coupon_claim_keeps_its_code_embedded() {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| {
        s.payments.webhook_secret = corral::config::Secret::from(SECRET);
    })
    .await;
    a_paid_claim_keeps_its_code(&app).await;
}

#[actix_web::test]
async fn a_paid_coupon_claim_keeps_its_code_on_postgres_and_redis() {
    let nodes = TestApp::cluster(1, |s| {
        s.payments.webhook_secret = corral::config::Secret::from(SECRET);
    })
    .await;
    a_paid_claim_keeps_its_code(&nodes[0]).await;
}

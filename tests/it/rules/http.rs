//! `rules` over HTTP and the countdown: rules are validated on create and update (a refusal
//! names the field), returned by `GET /activities/{id}` and the listing, frozen once the
//! promotion starts; a user who follows the merchant during the countdown is told they became
//! eligible and can claim at the start; the merchant's funnel counts them.

use corral_protocol::Role;
use serde_json::{Value, json};

use super::fixtures::promo_with_rules;
use crate::claims::{Promo, bulk_users, now_ms};
use crate::support::{Engine, TestApp, WAIT, check, wait_until};

async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    let resp = app
        .http
        .put(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("put");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A merchant (token) with one animal of two slots.
async fn merchant_with_animal(app: &TestApp) -> (String, i64) {
    let (_, token) = app.user("farmer").await;
    let (status, body) = app
        .post(
            "/api/v1/merchants",
            Some(&token),
            json!({"name": "Green farm"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().expect("token").to_string();
    let (status, body) = app
        .post(
            "/api/v1/animals",
            Some(&token),
            json!({"name": "Daisy", "species": "cow", "price_cents": 100, "slots": 2}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (token, body["animal_id"].as_i64().expect("animal"))
}

fn body(animal: i64, starts_at: i64, rules: Value) -> Value {
    json!({
        "title": "Followers' day",
        "starts_at": starts_at,
        "ends_at": starts_at + 60_000,
        "items": [{"animal_id": animal, "slots": 2}],
        "per_user_limit": 1,
        "hold_seconds": 60,
        "rules": rules,
    })
}

async fn rules_are_validated_returned_and_frozen(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (token, animal) = merchant_with_animal(&app).await;
    let starts_at = now_ms() + 1500;
    for (rules, field) in [
        (
            json!({"requires": [{"kind": "teleport"}]}),
            "rules.requires[0]",
        ),
        (
            json!({"requires": [{"kind": "posts", "min": 0, "since": 1_795_000_000_000_i64}]}),
            "rules.requires[0].min",
        ),
        (
            json!({"audience": {"registered_before": 1_795_000_000_000_i64, "new_users_since": 1_796_000_000_000_i64}}),
            "rules.audience.new_users_since",
        ),
        (json!({"bonus": true}), "rules.bonus"),
    ] {
        let (status, reply) = app
            .post(
                "/api/v1/activities",
                Some(&token),
                body(animal, starts_at, rules),
            )
            .await;
        assert_eq!(status, 400, "{reply}");
        assert_eq!(reply["error"]["code"], "bad_request");
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("{field}:")),
            "{field}: {message}"
        );
    }
    let followers =
        json!({"audience": {"followers_only": true}, "requires": [], "reward": {"kind": "slot"}});
    let (status, reply) = app
        .post(
            "/api/v1/activities",
            Some(&token),
            body(animal, starts_at, followers.clone()),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    let id = reply["activity_id"].as_i64().expect("id");
    let (_, got) = app
        .get(&format!("/api/v1/activities/{id}"), Some(&token))
        .await;
    assert_eq!(got["rules"]["audience"]["followers_only"], true, "{got}");
    let (_, page) = app
        .get("/api/v1/activities?state=upcoming", Some(&token))
        .await;
    let listed = page["activities"].as_array().expect("page");
    assert!(
        listed
            .iter()
            .any(|a| a["activity_id"] == id && a["rules"] == got["rules"]),
        "{page}"
    );

    // Before the start the rules can change; from the start they are frozen.
    let open = json!({"requires": [{"kind": "invited", "min": 1}]});
    let (status, reply) = put(
        &app,
        &format!("/api/v1/activities/{id}"),
        &token,
        body(animal, starts_at, open),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let (_, got) = app
        .get(&format!("/api/v1/activities/{id}"), Some(&token))
        .await;
    assert_eq!(got["rules"]["requires"][0]["kind"], "invited", "{got}");
    wait_until("the promotion starts", WAIT, async || {
        check(now_ms() > starts_at, "not yet")
    })
    .await;
    // (A new start in the future, so only the freeze can refuse it.)
    let (status, reply) = put(
        &app,
        &format!("/api/v1/activities/{id}"),
        &token,
        body(animal, now_ms() + 60_000, json!(null)),
    )
    .await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (409, json!("conflict")),
        "{reply}"
    );
    let (_, got) = app
        .get(&format!("/api/v1/activities/{id}"), Some(&token))
        .await;
    assert_eq!(got["rules"]["requires"][0]["kind"], "invited", "{got}");
}

#[actix_web::test]
async fn rules_are_validated_returned_and_frozen_at_the_start_sqlite() {
    rules_are_validated_returned_and_frozen(Engine::Sqlite).await;
}

#[actix_web::test]
async fn rules_are_validated_returned_and_frozen_at_the_start_postgres() {
    rules_are_validated_returned_and_frozen(Engine::Postgres).await;
}

/// A follower-only promotion starting soon: one user follows during the countdown (through
/// the protocol), is pushed `activity.eligibility` and holds at the start; one never follows
/// and is refused. The merchant's funnel then counts both.
async fn a_follow_during_the_countdown_makes_a_user_eligible(app: &TestApp) {
    let starts_at = now_ms() + 3000;
    let promo = Promo {
        starts_at,
        ..Promo::open(2)
    };
    let rules = json!({"audience": {"followers_only": true}});
    let (activity, merchant, merchant_token) = promo_with_rules(app, &promo, &rules).await;
    let users = bulk_users(app, 3, Role::User).await;
    let (late, stranger, viewer) = (&users[0], &users[1], &users[2]);

    let mut ws = app.client(Some(&late.1)).await;
    let sub = ws
        .request("activity.subscribe", json!({"activity": activity}))
        .await
        .expect("subscribe");
    assert_eq!(sub["eligible"], false, "{sub}");
    assert_eq!(sub["unmet"], json!([{"rule": "followers_only"}]));
    ws.request("follow", json!({"user": merchant}))
        .await
        .expect("follow");
    let pushed = ws
        .next_event("activity.eligibility")
        .await
        .expect("eligibility push");
    assert_eq!(
        (&pushed["activity"], &pushed["eligible"], &pushed["unmet"]),
        (&json!(activity), &json!(true), &json!([])),
        "{pushed}"
    );
    let mut other = app.client(Some(&stranger.1)).await;
    other
        .request("activity.subscribe", json!({"activity": activity}))
        .await
        .expect("subscribe");
    let (status, _) = app
        .get(&format!("/api/v1/activities/{activity}"), Some(&viewer.1))
        .await;
    assert_eq!(status, 200);

    ws.next_event("activity.started").await.expect("started");
    let held = ws
        .request("claim", json!({"activity": activity, "key": "a"}))
        .await;
    assert_eq!(
        held.map(|ok| ok["status"].clone()).ok(),
        Some(json!("held"))
    );
    let refused = other
        .request("claim", json!({"activity": activity, "key": "b"}))
        .await
        .expect_err("refused");
    assert_eq!(refused.code.as_str(), "not_eligible");
    assert!(
        refused.message.contains("followers of the merchant only"),
        "{}",
        refused.message
    );

    // Only the merchant (or an admin) reads the funnel.
    let (status, _) = app
        .get(
            &format!("/api/v1/activities/{activity}/funnel"),
            Some(&late.1),
        )
        .await;
    assert_eq!(status, 403);
    let path = format!("/api/v1/activities/{activity}/funnel");
    wait_until("the funnel counts the audience", WAIT, async || {
        let (status, funnel) = app.get(&path, Some(&merchant_token)).await;
        let seen = (
            status,
            &funnel["viewers"],
            &funnel["subscribers"],
            &funnel["eligible"],
            &funnel["claimed"],
            &funnel["stopped_by"],
        );
        let want = (
            200,
            &json!(3),
            &json!(2),
            &json!(1),
            &json!(1),
            &json!({"followers_only": 1}),
        );
        check(seen == want, format!("{funnel}"))
    })
    .await;
}

#[actix_web::test]
async fn a_follow_during_the_countdown_makes_a_user_eligible_embedded() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    a_follow_during_the_countdown_makes_a_user_eligible(&app).await;
}

#[actix_web::test]
async fn a_follow_during_the_countdown_makes_a_user_eligible_on_postgres_and_redis() {
    let nodes = TestApp::cluster(1, |_| {}).await;
    a_follow_during_the_countdown_makes_a_user_eligible(&nodes[0]).await;
}

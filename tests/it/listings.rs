//! The listings the user app and the merchant console browse, on both SQL engines: promotions
//! by state and merchant with paging, public rooms and a user's own rooms and DMs, a user's
//! claims, the caller's account, merchants (pending ones for admins only), a user found by
//! name, and the register reply's token.

use std::time::Duration;

use corral_protocol::Role;
use serde_json::{Value, json};

use crate::engine_tests;
use crate::support::{Engine, TestApp, unique};

engine_tests!(
    promotions_are_listed_by_state_and_merchant_and_paged,
    rooms_are_listed_public_and_per_member,
    claims_and_the_account_are_listed_for_their_owner_only,
    a_registered_user_is_signed_in_and_found_by_name,
    pending_merchants_are_listed_for_admins_only,
);

fn now_ms() -> i64 {
    corral_actors::clock::now_ms()
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// A user created straight in the store (no password hashing) with a token for `role`.
async fn member(app: &TestApp, role: Role) -> (i64, String) {
    let name = unique("l");
    let name = &name[..name.len().min(32)];
    let id = app
        .state
        .repos
        .accounts
        .create_user(name, "-", role, now_ms())
        .await
        .expect("create user");
    let token = app.state.keys.issue(id, role).expect("token");
    (id, token)
}

/// A merchant (applied and auto-approved) with its merchant token.
async fn merchant(app: &TestApp, shop: &str) -> (i64, String) {
    let (id, token) = member(app, Role::User).await;
    let (status, body) = app
        .post("/api/v1/merchants", Some(&token), json!({ "name": shop }))
        .await;
    assert_eq!(status, 201, "{body}");
    (
        id,
        body["token"].as_str().expect("merchant token").to_string(),
    )
}

async fn animal(app: &TestApp, token: &str, name: &str) -> i64 {
    let (status, body) = app
        .post(
            "/api/v1/animals",
            Some(token),
            json!({"name": name, "species": "sheep", "price_cents": 1250, "slots": 2}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["animal_id"].as_i64().expect("animal_id")
}

async fn promotion(app: &TestApp, token: &str, animal: i64, starts_at: i64, ends_at: i64) -> i64 {
    let (status, body) = app
        .post(
            "/api/v1/activities",
            Some(token),
            json!({
                "title": format!("promo {starts_at}"),
                "starts_at": starts_at,
                "ends_at": ends_at,
                "items": [{"animal_id": animal, "slots": 2}],
                "per_user_limit": 1,
                "hold_seconds": 600,
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["activity_id"].as_i64().expect("activity_id")
}

fn ids(page: &Value, list: &str, key: &str) -> Vec<i64> {
    page[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} in {page}"))
        .iter()
        .map(|x| x[key].as_i64().expect("id"))
        .collect()
}

async fn promotions_are_listed_by_state_and_merchant_and_paged(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (meadow_id, meadow) = merchant(&app, "Meadow farm").await;
    let (_, rival) = merchant(&app, "Rival farm").await;
    let (_, user) = member(&app, Role::User).await;
    let lamb = animal(&app, &meadow, "Lamb <b>1</b>").await;
    let goat = animal(&app, &rival, "Goat").await;
    let now = now_ms();
    let live = promotion(&app, &meadow, lamb, now + 400, now + 600_000).await;
    let upcoming = promotion(&app, &meadow, lamb, now + 300_000, now + 600_000).await;
    let cancelled = promotion(&app, &meadow, lamb, now + 300_000, now + 600_000).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/activities/{cancelled}/cancel"),
            Some(&meadow),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let rivals = promotion(&app, &rival, goat, now + 300_000, now + 600_000).await;
    // Past the start at +400 ms: listings and claims go by the server's clock, not by state.
    tokio::time::sleep(Duration::from_millis(700)).await;

    let list = |query: &'static str| {
        let app = &app;
        let user = user.clone();
        async move {
            let (status, body) = app
                .get(&format!("/api/v1/activities{query}"), Some(&user))
                .await;
            assert_eq!(status, 200, "{query}: {body}");
            body
        }
    };
    let all = list("").await;
    assert_eq!(
        ids(&all, "activities", "activity_id"),
        vec![rivals, cancelled, upcoming, live]
    );
    let upcoming_page = list("?state=upcoming").await;
    assert_eq!(
        ids(&upcoming_page, "activities", "activity_id"),
        vec![rivals, upcoming]
    );
    let live_page = list("?state=live").await;
    assert_eq!(ids(&live_page, "activities", "activity_id"), vec![live]);
    assert_eq!(live_page["activities"][0]["state"], "live");
    let ended = list("?state=ended").await;
    assert_eq!(ids(&ended, "activities", "activity_id"), vec![cancelled]);
    assert_eq!(ended["activities"][0]["state"], "cancelled");

    // One merchant's, with the animal and the shop name as stored (text, not markup).
    let mine = app
        .get(
            &format!("/api/v1/activities?merchant={meadow_id}&state=upcoming"),
            Some(&user),
        )
        .await
        .1;
    assert_eq!(ids(&mine, "activities", "activity_id"), vec![upcoming]);
    let first = &mine["activities"][0];
    assert_eq!(first["merchant_name"], "Meadow farm");
    assert_eq!(first["slots"], 2);
    assert_eq!(first["items"][0]["animal_name"], "Lamb <b>1</b>");
    assert_eq!(first["items"][0]["price_cents"], 1250);
    assert!(first["items"][0]["item_id"].as_i64().is_some());

    // Keyset pages: two then two, no overlap, the last page says so.
    let page1 = list("?limit=2").await;
    assert_eq!(
        ids(&page1, "activities", "activity_id"),
        vec![rivals, cancelled]
    );
    let next = page1["next_before"].as_i64().expect("next_before");
    let (_, page2) = app
        .get(
            &format!("/api/v1/activities?limit=2&before={next}"),
            Some(&user),
        )
        .await;
    assert_eq!(
        ids(&page2, "activities", "activity_id"),
        vec![upcoming, live]
    );
    let (_, page3) = app
        .get(
            &format!(
                "/api/v1/activities?limit=2&before={}",
                page2["next_before"].as_i64().expect("cursor")
            ),
            Some(&user),
        )
        .await;
    assert_eq!(ids(&page3, "activities", "activity_id"), Vec::<i64>::new());
    assert!(page3["next_before"].is_null());

    // Bad input is refused with the protocol's error shape; no token, no listing.
    for bad in [
        "?state=soon",
        "?limit=0",
        "?limit=101",
        "?merchant=x",
        "?page=2",
    ] {
        let (status, body) = app
            .get(&format!("/api/v1/activities{bad}"), Some(&user))
            .await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{bad}: {body}");
    }
    let (status, body) = app.get("/api/v1/activities", None).await;
    assert_eq!((status, code(&body)), (401, "unauthenticated"));
}

async fn rooms_are_listed_public_and_per_member(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (ann, ann_token) = member(&app, Role::User).await;
    let (bob, bob_token) = member(&app, Role::User).await;
    let (_, eve_token) = member(&app, Role::User).await;
    let create = |name: &'static str, private: bool| {
        let app = &app;
        let token = ann_token.clone();
        async move {
            let (status, body) = app
                .post(
                    "/api/v1/rooms",
                    Some(&token),
                    json!({"name": name, "private": private}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            body["room_id"].as_i64().expect("room_id")
        }
    };
    let barn = create("barn", false).await;
    let secret = create("secret", true).await;
    let field = create("field", false).await;
    let mut ws = app.client(Some(&bob_token)).await;
    let dm = ws
        .request(
            "dm.send",
            json!({"to": ann, "text": "hi", "client_msg_id": "dm-1"}),
        )
        .await
        .expect("dm")["room"]
        .as_i64()
        .expect("dm room");

    let (status, public) = app.get("/api/v1/rooms", Some(&eve_token)).await;
    assert_eq!(status, 200, "{public}");
    assert_eq!(ids(&public, "rooms", "room_id"), vec![field, barn]);
    assert_eq!(public["rooms"][1]["name"], "barn");
    assert!(public["rooms"][1].get("dm_with").is_none());

    let (_, anns) = app.get("/api/v1/rooms?scope=mine", Some(&ann_token)).await;
    assert_eq!(ids(&anns, "rooms", "room_id"), vec![dm, secret]);
    assert_eq!(anns["rooms"][0]["dm_with"], bob);
    assert_eq!(anns["rooms"][0]["last_seq"], 1);
    assert_eq!(anns["rooms"][1]["private"], true);
    let (_, bobs) = app.get("/api/v1/rooms?scope=mine", Some(&bob_token)).await;
    assert_eq!(ids(&bobs, "rooms", "room_id"), vec![dm]);
    assert_eq!(bobs["rooms"][0]["dm_with"], ann);
    let (_, eves) = app.get("/api/v1/rooms?scope=mine", Some(&eve_token)).await;
    assert_eq!(ids(&eves, "rooms", "room_id"), Vec::<i64>::new());

    let (_, page) = app
        .get("/api/v1/rooms?scope=public&limit=1", Some(&eve_token))
        .await;
    assert_eq!(ids(&page, "rooms", "room_id"), vec![field]);
    assert_eq!(page["next_before"], field);
    let (status, body) = app.get("/api/v1/rooms?scope=all", Some(&eve_token)).await;
    assert_eq!((status, code(&body)), (400, "bad_request"));
}

async fn claims_and_the_account_are_listed_for_their_owner_only(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (merchant_id, meadow) = merchant(&app, "Meadow").await;
    let (_, user) = member(&app, Role::User).await;
    let (_, other) = member(&app, Role::User).await;
    let lamb = animal(&app, &meadow, "Lamb").await;
    let now = now_ms();
    let activity = promotion(&app, &meadow, lamb, now + 400, now + 600_000).await;
    // Past the start at +400 ms: listings and claims go by the server's clock, not by state.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut ws = app.client(Some(&user)).await;
    let held = ws
        .request("claim", json!({"activity": activity, "key": "k-1"}))
        .await
        .expect("claim");
    assert_eq!(held["status"], "held");

    let (status, mine) = app.get("/api/v1/me/claims", Some(&user)).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(
        ids(&mine, "claims", "claim_id"),
        vec![held["claim_id"].as_i64().expect("id")]
    );
    let claim = &mine["claims"][0];
    assert_eq!(claim["status"], "held");
    assert_eq!(claim["animal_name"], "Lamb");
    assert_eq!(claim["activity_id"], activity);
    assert_eq!(claim["expires_at"], held["expires_at"]);
    let (_, theirs) = app.get("/api/v1/me/claims", Some(&other)).await;
    assert_eq!(ids(&theirs, "claims", "claim_id"), Vec::<i64>::new());

    // A cancelled hold shows its new status.
    ws.request("claim.cancel", json!({"claim_id": held["claim_id"]}))
        .await
        .expect("cancel");
    let (_, mine) = app.get("/api/v1/me/claims", Some(&user)).await;
    assert_eq!(mine["claims"][0]["status"], "cancelled");

    let (status, me) = app.get("/api/v1/me", Some(&meadow)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user_id"], merchant_id);
    assert_eq!(me["role"], "merchant");
    assert_eq!(me["merchant"]["name"], "Meadow");
    assert_eq!(me["merchant"]["approved"], true);
    let (_, me) = app.get("/api/v1/me", Some(&user)).await;
    assert!(me["merchant"].is_null());
    assert_eq!(me["role"], "user");
}

async fn a_registered_user_is_signed_in_and_found_by_name(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let name = unique("reg");
    let name = &name[..name.len().min(32)];
    let (status, body) = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": name, "password": "correct-horse"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["user_id"].as_i64().expect("user_id");
    assert_eq!(body["role"], "user");
    let token = body["token"].as_str().expect("token");
    let (status, me) = app.get("/api/v1/me", Some(token)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (me["user_id"].as_i64(), me["username"].as_str()),
        (Some(id), Some(name))
    );
    let mut ws = app.client(Some(token)).await;
    assert!(
        ws.request("time.sync", json!({"client_time": 1}))
            .await
            .is_ok()
    );

    let (status, found) = app
        .get(&format!("/api/v1/usernames/{name}"), Some(token))
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["user_id"], id);
    let (status, body) = app
        .get("/api/v1/usernames/nobody-by-this-name", Some(token))
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, _) = app.get(&format!("/api/v1/usernames/{name}"), None).await;
    assert_eq!(status, 401);
}

async fn pending_merchants_are_listed_for_admins_only(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| s.merchants.auto_approve = false).await;
    let (applicant, token) = member(&app, Role::User).await;
    let (_, admin) = member(&app, Role::Admin).await;
    let (status, body) = app
        .post(
            "/api/v1/merchants",
            Some(&token),
            json!({"name": "Hilltop"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let (status, body) = app
        .get("/api/v1/merchants?status=pending", Some(&token))
        .await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (_, pending) = app
        .get("/api/v1/merchants?status=pending", Some(&admin))
        .await;
    assert_eq!(ids(&pending, "merchants", "merchant_id"), vec![applicant]);
    assert_eq!(pending["merchants"][0]["name"], "Hilltop");
    let (_, approved) = app.get("/api/v1/merchants", Some(&token)).await;
    assert_eq!(
        ids(&approved, "merchants", "merchant_id"),
        Vec::<i64>::new()
    );

    let (status, _) = app
        .post(
            &format!("/api/v1/admin/merchants/{applicant}/approve"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, approved) = app.get("/api/v1/merchants", Some(&token)).await;
    assert_eq!(ids(&approved, "merchants", "merchant_id"), vec![applicant]);
    assert_eq!(approved["merchants"][0]["approved"], true);
    let (_, pending) = app
        .get("/api/v1/merchants?status=pending", Some(&admin))
        .await;
    assert_eq!(ids(&pending, "merchants", "merchant_id"), Vec::<i64>::new());
}

//! Live promotions: merchants, animals, activities over HTTP (validation, roles, audit), and
//! the Activity actor over WebSocket (countdown, exact start, end, cancel, broadcast, actor and
//! node restarts).

use std::time::Duration;

use corral_protocol::Role;
use serde_json::{Value, json};

use crate::engine_tests;
use crate::support::{Engine, NodeProcess, QUIET, TestApp, WAIT, WsClient, metric_value, unique};

engine_tests!(
    merchants_animals_and_activities_are_validated_and_audited,
    merchants_wait_for_an_admin_when_auto_approve_is_off,
    a_countdown_pushes_ticks_then_started_then_ended_to_every_subscriber,
    cancelling_before_the_start_ends_the_activity,
    broadcasts_reach_subscribers_and_nobody_else,
    an_edit_before_the_start_changes_the_claim_rules,
);

/// The server clock as tests read it (same machine, same clock).
fn now_ms() -> i64 {
    corral_actors::clock::now_ms()
}

/// A JSON HTTP client for a node (in-process or a child process).
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn of(app: &TestApp) -> Api {
        Api::at(&app.url(""))
    }

    fn at(base: &str) -> Api {
        Api {
            base: base.to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    async fn put(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(token), Some(body))
            .await
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, Some(token), None)
            .await
    }

    /// Registers and logs in a fresh user: (user_id, token).
    async fn user(&self, name: &str) -> (i64, String) {
        let username = unique(name);
        let creds =
            json!({"username": &username[..username.len().min(32)], "password": "correct-horse"});
        let (status, _) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/register",
                None,
                Some(creds.clone()),
            )
            .await;
        assert_eq!(status, 201);
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(creds),
            )
            .await;
        assert_eq!(status, 200);
        (
            body["user_id"].as_i64().unwrap(),
            body["token"].as_str().unwrap().to_string(),
        )
    }

    /// A fresh, approved merchant: (merchant_id, merchant token).
    async fn merchant(&self, name: &str) -> (i64, String) {
        let (id, token) = self.user(name).await;
        let (status, body) = self
            .post(
                "/api/v1/merchants",
                &token,
                json!({"name": format!("{name} farm")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["merchant_id"], id);
        (
            id,
            body["token"].as_str().expect("merchant token").to_string(),
        )
    }

    /// A valid animal of the merchant holding `token`.
    async fn animal(&self, token: &str, slots: i64) -> i64 {
        let (status, body) = self
            .post(
                "/api/v1/animals",
                token,
                json!({
                    "name": "Daisy",
                    "species": "cow",
                    "description": "Gentle.",
                    "image_urls": ["https://img.example.com/daisy.jpg", "http://example.org/d2.png"],
                    "price_cents": 12_500,
                    "slots": slots,
                }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["animal_id"].as_i64().unwrap()
    }

    /// An activity of one animal starting in `starts_in` ms and lasting `lasts` ms.
    async fn activity(
        &self,
        token: &str,
        animal: i64,
        starts_in: i64,
        lasts: i64,
    ) -> (i64, i64, i64) {
        let starts_at = now_ms() + starts_in;
        let ends_at = starts_at + lasts;
        let (status, body) = self
            .post(
                "/api/v1/activities",
                token,
                activity_body(animal, starts_at, ends_at),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (body["activity_id"].as_i64().unwrap(), starts_at, ends_at)
    }
}

fn activity_body(animal: i64, starts_at: i64, ends_at: i64) -> Value {
    json!({
        "title": "Spring adoption day",
        "starts_at": starts_at,
        "ends_at": ends_at,
        "items": [{"animal_id": animal, "slots": 1}],
        "per_user_limit": 1,
        "hold_seconds": 300,
    })
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// An admin's token (no HTTP route makes admins: operators set the role in the database).
async fn admin(app: &TestApp, api: &Api) -> String {
    let (id, _) = api.user("admin").await;
    app.state
        .repos
        .accounts
        .set_role(id, Role::Admin)
        .await
        .unwrap();
    app.state.keys.issue(id, Role::Admin).unwrap()
}

async fn audit_actions(app: &TestApp, subject: &str) -> Vec<String> {
    let mut rows = app
        .state
        .repos
        .audit
        .audit_log(Some(subject), 100)
        .await
        .unwrap();
    rows.reverse();
    rows.into_iter().map(|r| r.action).collect()
}

/// Opens a socket for `token` and subscribes it to `activity`; returns it with the reply.
async fn watcher(ws_url: &str, token: &str, activity: i64) -> (WsClient, Value) {
    let mut ws = WsClient::connect(ws_url, None).await.expect("connect");
    ws.request("auth", json!({"token": token}))
        .await
        .expect("auth");
    let ok = ws
        .request("activity.subscribe", json!({"activity": activity}))
        .await
        .expect("subscribe");
    (ws, ok)
}

/// The next `activity.broadcast` push, checked to be `text` about `activity`.
async fn expect_broadcast(ws: &mut WsClient, activity: i64, text: &str) -> Value {
    let push = ws
        .next_event("activity.broadcast")
        .await
        .expect("broadcast");
    assert_eq!(
        (&push["activity"], &push["text"]),
        (&json!(activity), &json!(text))
    );
    push
}

/// Every `activity.*` push until `activity.ended` (inclusive), each with the local clock
/// reading taken when it was read.
async fn pushes_until_ended(ws: &mut WsClient, limit: Duration) -> Vec<(Value, i64)> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut seen = Vec::new();
    while let Some(push) = ws.next_push_until(deadline).await {
        let at = now_ms();
        let ev = push["ev"].as_str().unwrap_or("").to_string();
        if ev.starts_with("activity.") {
            seen.push((push, at));
            if ev == "activity.ended" {
                break;
            }
        }
    }
    seen
}

async fn merchants_animals_and_activities_are_validated_and_audited(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let api = Api::of(&app);
    let (_, user) = api.user("plain").await;
    let (merchant_id, merchant) = api.merchant("meadow").await;
    let (_, other) = api.merchant("rival").await;

    // Roles: a plain user cannot run a catalogue; a merchant cannot apply twice.
    let (status, body) = api
        .post(
            "/api/v1/animals",
            &user,
            json!({"name": "x", "species": "cow", "price_cents": 1}),
        )
        .await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, body) = api
        .post("/api/v1/merchants", &merchant, json!({"name": "again"}))
        .await;
    assert_eq!((status, code(&body)), (409, "conflict"));

    // Animal validation.
    for bad in [
        json!({"name": "a", "species": "cow", "price_cents": 1, "image_urls": ["ftp://x.org/a.png"]}),
        json!({"name": "a", "species": "cow", "price_cents": 1, "image_urls": ["not a url"]}),
        json!({"name": "a", "species": "cow", "price_cents": 1, "image_urls": ["javascript:alert(1)"]}),
        json!({"name": "a", "species": "cow", "price_cents": 1, "slots": 0}),
        json!({"name": "", "species": "cow", "price_cents": 1}),
        json!({"name": "a", "species": "cow", "price_cents": -1}),
        json!({"name": "a", "species": "cow"}),
    ] {
        let (status, body) = api.post("/api/v1/animals", &merchant, bad.clone()).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{bad}");
    }
    let animal = api.animal(&merchant, 2).await;
    let (status, body) = api.get(&format!("/api/v1/animals/{animal}"), &user).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            &body["merchant_id"],
            &body["slots"],
            &body["image_urls"][0],
            &body["retired"]
        ),
        (
            &json!(merchant_id),
            &json!(2),
            &json!("https://img.example.com/daisy.jpg"),
            &json!(false)
        )
    );

    // Only the owner changes it.
    let change = json!({"name": "Daisy II", "species": "cow", "price_cents": 9_900, "slots": 2});
    let (status, body) = api
        .put(&format!("/api/v1/animals/{animal}"), &other, change.clone())
        .await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, body) = api
        .put(&format!("/api/v1/animals/{animal}"), &merchant, change)
        .await;
    assert_eq!(
        (status, &body["name"], &body["price_cents"]),
        (200, &json!("Daisy II"), &json!(9_900))
    );
    let (status, body) = api
        .delete(&format!("/api/v1/animals/{animal}"), &other)
        .await;
    assert_eq!((status, code(&body)), (403, "forbidden"));

    // Activity validation.
    let rivals_animal = api.animal(&other, 1).await;
    let retired = api.animal(&merchant, 1).await;
    let (status, _) = api
        .delete(&format!("/api/v1/animals/{retired}"), &merchant)
        .await;
    assert_eq!(status, 200);
    let (status, body) = api.get("/api/v1/animals", &merchant).await;
    assert_eq!(status, 200);
    let listed: Vec<i64> = body["animals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["animal_id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, vec![animal]);

    let now = now_ms();
    let soon = now + 60_000;
    let cases = [
        (activity_body(animal, now - 1_000, soon), 400, "bad_request"),
        (activity_body(animal, soon, soon - 1), 400, "bad_request"),
        (activity_body(animal, soon, soon), 400, "bad_request"),
        (
            activity_body(rivals_animal, soon, soon + 1_000),
            403,
            "forbidden",
        ),
        (
            activity_body(retired, soon, soon + 1_000),
            400,
            "bad_request",
        ),
        (
            activity_body(animal + 10_000, soon, soon + 1_000),
            400,
            "bad_request",
        ),
        (
            json!({"title": "t", "starts_at": soon, "ends_at": soon + 1_000, "items": [{"animal_id": animal, "slots": 3}], "per_user_limit": 1, "hold_seconds": 60}),
            400,
            "bad_request",
        ),
        (
            json!({"title": "t", "starts_at": soon, "ends_at": soon + 1_000, "items": [{"animal_id": animal, "slots": 1}], "per_user_limit": 0, "hold_seconds": 60}),
            400,
            "bad_request",
        ),
        (
            json!({"title": "t", "starts_at": soon, "ends_at": soon + 1_000, "items": [], "per_user_limit": 1, "hold_seconds": 60}),
            400,
            "bad_request",
        ),
    ];
    for (body, want_status, want_code) in cases {
        let (status, reply) = api
            .post("/api/v1/activities", &merchant, body.clone())
            .await;
        assert_eq!((status, code(&reply)), (want_status, want_code), "{body}");
    }
    let (status, body) = api
        .post(
            "/api/v1/activities",
            &user,
            activity_body(animal, soon, soon + 1_000),
        )
        .await;
    assert_eq!((status, code(&body)), (403, "forbidden"));

    let (activity, starts_at, ends_at) = api.activity(&merchant, animal, 60_000, 60_000).await;
    let (status, body) = api
        .get(&format!("/api/v1/activities/{activity}"), &user)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "scheduled");
    assert_eq!(
        (&body["starts_at"], &body["ends_at"]),
        (&json!(starts_at), &json!(ends_at))
    );
    assert_eq!(
        (&body["merchant_id"], &body["slots"], &body["stock_left"]),
        (&json!(merchant_id), &json!(1), &json!(1))
    );
    assert_eq!(body["items"][0]["animal_id"], animal);
    assert!(body["items"][0]["item_id"].as_i64().is_some());
    assert!(body["server_time"].as_i64().unwrap() >= now);
    let (status, body) = api.get("/api/v1/activities/999999", &user).await;
    assert_eq!((status, code(&body)), (404, "not_found"));

    // Edits: the owner only, before the start.
    let edit = json!({"title": "Summer adoption day", "starts_at": starts_at + 1_000, "ends_at": ends_at, "items": [{"animal_id": animal, "slots": 2}], "per_user_limit": 2, "hold_seconds": 120});
    let (status, body) = api
        .put(
            &format!("/api/v1/activities/{activity}"),
            &other,
            edit.clone(),
        )
        .await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, body) = api
        .put(&format!("/api/v1/activities/{activity}"), &merchant, edit)
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = api
        .get(&format!("/api/v1/activities/{activity}"), &merchant)
        .await;
    assert_eq!(
        (&body["title"], &body["slots"], &body["starts_at"]),
        (
            &json!("Summer adoption day"),
            &json!(2),
            &json!(starts_at + 1_000)
        )
    );

    // Every merchant action left an audit row.
    assert_eq!(
        audit_actions(&app, &format!("merchant:{merchant_id}")).await,
        ["merchant.apply"]
    );
    assert_eq!(
        audit_actions(&app, &format!("animal:{animal}")).await,
        ["animal.create", "animal.update"]
    );
    assert_eq!(
        audit_actions(&app, &format!("animal:{retired}")).await,
        ["animal.create", "animal.retire"]
    );
    assert_eq!(
        audit_actions(&app, &format!("activity:{activity}")).await,
        ["activity.create", "activity.update"]
    );
}

async fn merchants_wait_for_an_admin_when_auto_approve_is_off(engine: Engine) {
    let app = TestApp::spawn_with(engine, |s| s.merchants.auto_approve = false).await;
    let api = Api::of(&app);
    let (id, token) = api.user("pending").await;
    let (status, body) = api
        .post("/api/v1/merchants", &token, json!({"name": "Slow farm"}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (&body["approved"], &body["token"]),
        (&json!(false), &Value::Null)
    );
    let (status, _) = api
        .post(
            "/api/v1/animals",
            &token,
            json!({"name": "a", "species": "cow", "price_cents": 1}),
        )
        .await;
    assert_eq!(status, 403);

    let path = format!("/api/v1/admin/merchants/{id}/approve");
    let (status, body) = api.post(&path, &token, json!({})).await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let admin = admin(&app, &api).await;
    let (status, body) = api
        .post("/api/v1/admin/merchants/999999/approve", &admin, json!({}))
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = api.post(&path, &admin, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let user = app
        .state
        .repos
        .accounts
        .user_by_id(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.role, Role::Merchant);
    assert!(
        app.state
            .repos
            .merchants
            .merchant(id)
            .await
            .unwrap()
            .unwrap()
            .approved
    );

    let (status, body) = api
        .get(
            &format!("/api/v1/admin/audit?subject=merchant:{id}"),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let actions: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["merchant.approve", "merchant.apply"]);
    let (status, _) = api.get("/api/v1/admin/audit", &token).await;
    assert_eq!(status, 403);
}

async fn a_countdown_pushes_ticks_then_started_then_ended_to_every_subscriber(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let api = Api::of(&app);
    let (_, merchant) = api.merchant("clock").await;
    let animal = api.animal(&merchant, 1).await;
    // Sign-ups (password hashing) first, so the subscriptions are in place before the ticks.
    let mut tokens = Vec::new();
    for name in ["w1", "w2", "w3"] {
        tokens.push(api.user(name).await.1);
    }
    let (activity, starts_at, ends_at) = api.activity(&merchant, animal, 5_000, 1_000).await;

    let mut watchers = Vec::new();
    for token in &tokens {
        let (ws, ok) = watcher(&app.ws_url(), token, activity).await;
        assert_eq!(ok["state"], "scheduled");
        assert_eq!(
            (&ok["activity"], &ok["starts_at"], &ok["ends_at"]),
            (&json!(activity), &json!(starts_at), &json!(ends_at))
        );
        assert_eq!(ok["stock_left"], 1);
        assert!(ok["server_time"].as_i64().unwrap() < starts_at);
        watchers.push(ws);
    }
    let runs = futures_util::future::join_all(watchers.iter_mut().map(|ws| {
        let until_end = Duration::from_millis((ends_at - now_ms()).max(0) as u64);
        pushes_until_ended(ws, until_end + WAIT)
    }))
    .await;
    for seen in runs {
        let evs: Vec<&str> = seen
            .iter()
            .map(|(p, _)| p["ev"].as_str().unwrap())
            .collect();
        let ticks = evs
            .iter()
            .take_while(|e| **e == "activity.countdown")
            .count();
        assert!(ticks >= 1, "{evs:?}");
        assert_eq!(
            &evs[ticks..],
            ["activity.started", "activity.ended"],
            "{evs:?}"
        );
        let lefts: Vec<i64> = seen[..ticks]
            .iter()
            .map(|(p, _)| p["seconds_left"].as_i64().unwrap())
            .collect();
        assert!(
            lefts.windows(2).all(|w| w[0] > w[1]) && lefts.last() == Some(&1),
            "{lefts:?}"
        );
        for (tick, _) in &seen[..ticks] {
            let left = tick["seconds_left"].as_i64().unwrap();
            let at = tick["server_time"].as_i64().unwrap();
            // A tick for k seconds left is never sent before the clock reaches that instant
            // (how late it may be is a benchmark figure, not a test's).
            assert!(at >= starts_at - left * 1000, "{tick}");
        }
        // Never early, by the server's clock nor by a clock read when the frame arrived.
        let (started, read_at) = &seen[ticks];
        assert_eq!(started["activity"], activity);
        let server_time = started["server_time"].as_i64().unwrap();
        assert!(
            server_time >= starts_at,
            "started at {server_time} < {starts_at}"
        );
        assert!(*read_at >= starts_at);
        let (ended, _) = &seen[ticks + 1];
        assert_eq!(ended["reason"], "time");
        assert!(ended["server_time"].as_i64().unwrap() >= ends_at);
    }

    // Over: no edits, and a late subscriber is told so.
    let (status, body) = api
        .put(
            &format!("/api/v1/activities/{activity}"),
            &merchant,
            activity_body(animal, now_ms() + 60_000, now_ms() + 120_000),
        )
        .await;
    assert_eq!((status, code(&body)), (409, "conflict"));
    let (_, token) = api.user("late").await;
    let (_, ok) = watcher(&app.ws_url(), &token, activity).await;
    assert_eq!(ok["state"], "ended");
    let (_, body) = api
        .get(&format!("/api/v1/activities/{activity}"), &token)
        .await;
    assert_eq!(body["state"], "ended");
}

async fn cancelling_before_the_start_ends_the_activity(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let api = Api::of(&app);
    let (_, merchant) = api.merchant("cancel").await;
    let (_, other) = api.merchant("other").await;
    let animal = api.animal(&merchant, 1).await;
    let (activity, starts_at, _) = api.activity(&merchant, animal, 5_000, 5_000).await;
    let (_, token) = api.user("fan").await;
    let (mut ws, _) = watcher(&app.ws_url(), &token, activity).await;

    let path = format!("/api/v1/activities/{activity}/cancel");
    let (status, body) = api.post(&path, &other, json!({})).await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, body) = api.post(&path, &merchant, json!({})).await;
    assert_eq!(
        (status, &body["state"]),
        (200, &json!("cancelled")),
        "{body}"
    );

    let seen = pushes_until_ended(&mut ws, WAIT).await;
    let last = &seen.last().expect("ended").0;
    assert_eq!(
        (&last["ev"], &last["reason"]),
        (&json!("activity.ended"), &json!("cancelled"))
    );
    // Nothing starts after a cancel, even once the start time has passed.
    let wait_past_start = tokio::time::Instant::now()
        + Duration::from_millis((starts_at - now_ms()).max(0) as u64)
        + QUIET;
    while let Some(push) = ws.next_push_until(wait_past_start).await {
        assert_ne!(push["ev"], "activity.started", "{push}");
    }
    let (_, body) = api
        .get(&format!("/api/v1/activities/{activity}"), &token)
        .await;
    assert_eq!(body["state"], "cancelled");
    let (status, body) = api.post(&path, &merchant, json!({})).await;
    assert_eq!((status, code(&body)), (409, "conflict"));
    let (mut ws, ok) = watcher(&app.ws_url(), &token, activity).await;
    assert_eq!(ok["state"], "cancelled");
    // A claim on a cancelled promotion is told it is over, not that it never existed.
    let err = ws
        .request("claim", json!({"activity": activity, "key": "late"}))
        .await
        .expect_err("no claim on a cancelled promotion");
    assert_eq!(err.code.as_str(), "ended", "{}", err.message);
    let err = ws
        .request(
            "claim",
            json!({"activity": activity + 1_000_000, "key": "none"}),
        )
        .await
        .expect_err("no such promotion");
    assert_eq!(err.code.as_str(), "not_found");
    assert_eq!(
        audit_actions(&app, &format!("activity:{activity}")).await,
        ["activity.create", "activity.cancel"]
    );
}

async fn broadcasts_reach_subscribers_and_nobody_else(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let api = Api::of(&app);
    let (_, merchant) = api.merchant("loud").await;
    let (_, other) = api.merchant("quiet").await;
    let animal = api.animal(&merchant, 1).await;
    let (activity, _, _) = api.activity(&merchant, animal, 120_000, 60_000).await;
    let (_, a) = api.user("a").await;
    let (_, b) = api.user("b").await;
    let (_, c) = api.user("c").await;
    let (mut wa, _) = watcher(&app.ws_url(), &a, activity).await;
    let (mut wb, _) = watcher(&app.ws_url(), &b, activity).await;
    let (mut left, _) = watcher(&app.ws_url(), &c, activity).await;
    left.request("activity.unsubscribe", json!({"activity": activity}))
        .await
        .expect("unsubscribe");
    let mut bystander = app.client(Some(&c)).await;

    let path = format!("/api/v1/activities/{activity}/broadcast");
    for token in [&other, &a] {
        let (status, body) = api.post(&path, token, json!({"text": "hi"})).await;
        assert_eq!((status, code(&body)), (403, "forbidden"));
    }
    let (status, body) = api.post(&path, &merchant, json!({"text": ""})).await;
    assert_eq!((status, code(&body)), (400, "bad_request"));
    let before = now_ms();
    let (status, body) = api
        .post(&path, &merchant, json!({"text": "Piglets at noon!"}))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["delivered"], 2);
    for ws in [&mut wa, &mut wb] {
        let push = expect_broadcast(ws, activity, "Piglets at noon!").await;
        assert!(push["ts"].as_i64().unwrap() >= before);
    }
    for ws in [&mut left, &mut bystander] {
        ws.assert_silent("activity.broadcast").await;
    }
    assert_eq!(
        audit_actions(&app, &format!("activity:{activity}")).await,
        ["activity.create", "activity.broadcast"]
    );

    // Stock changes from the claim desk reach the actor's view and every subscriber.
    let activities = &app.state.hub.activities;
    activities.inject_stock(
        activity,
        corral_actors::ports::claims::StockLevel { left: 0, held: 1 },
    );
    let (_, body) = api.get(&format!("/api/v1/activities/{activity}"), &a).await;
    assert_eq!(
        (&body["slots"], &body["stock_left"]),
        (&json!(1), &json!(0))
    );
    for ws in [&mut wa, &mut wb] {
        let stock = ws.next_event("activity.stock").await.expect("stock");
        assert_eq!(
            (&stock["activity"], &stock["left"]),
            (&json!(activity), &json!(0))
        );
    }

    // Unknown activities: not found over both HTTP and WebSocket.
    let (status, body) = api
        .post(
            "/api/v1/activities/999999/broadcast",
            &merchant,
            json!({"text": "x"}),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let err = wa
        .request("activity.subscribe", json!({"activity": 999_999}))
        .await
        .unwrap_err();
    assert_eq!(err.code.as_str(), "not_found");
}

#[actix_web::test]
async fn a_supervised_restart_of_the_activity_actor_keeps_its_subscribers() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let api = Api::of(&app);
    let (_, merchant) = api.merchant("crashy").await;
    let animal = api.animal(&merchant, 1).await;
    let (activity, starts_at, _) = api.activity(&merchant, animal, 5_000, 1_000).await;
    let mut watchers = Vec::new();
    for name in ["s1", "s2"] {
        let (_, token) = api.user(name).await;
        watchers.push(watcher(&app.ws_url(), &token, activity).await.0);
    }
    let activities = &app.state.hub.activities;
    assert_eq!(activities.subscriber_count(activity), 2);

    assert!(activities.inject_panic(activity));
    // A snapshot queued behind the panic is answered by the restarted actor, once reloaded.
    let snapshot = activities.snapshot(activity).await.expect("reloaded");
    assert_eq!(snapshot.record.starts_at, starts_at);
    assert_eq!(activities.running(), 1);
    assert_eq!(activities.subscriber_count(activity), 2);
    // The restarted actor reloaded its schedule: the watchers still see the start, never early.
    for ws in &mut watchers {
        let started = ws.next_event("activity.started").await.expect("started");
        let at = started["server_time"].as_i64().unwrap();
        assert!(at >= starts_at, "{started}");
        let ended = ws.next_event("activity.ended").await.expect("ended");
        assert_eq!(ended["reason"], "time");
    }
    let restarts = app.state.metrics.render();
    let restarts = metric_value(&restarts, "corral_actor_restarts_total{kind=\"activity\"}");
    assert!(restarts >= 1.0, "restart counted: {restarts}");
}

#[actix_web::test]
async fn a_change_made_elsewhere_reaches_the_running_actor() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let api = Api::of(&app);
    let (merchant_id, merchant) = api.merchant("far").await;
    let animal = api.animal(&merchant, 1).await;
    let (activity, _, _) = api.activity(&merchant, animal, 60_000, 60_000).await;
    let (_, token) = api.user("near").await;
    let (mut ws, _) = watcher(&app.ws_url(), &token, activity).await;
    // As another node of a cluster would: the row changes, this node's actor is not told.
    app.state
        .repos
        .activities
        .cancel_activity(merchant_id, activity, now_ms())
        .await
        .unwrap();
    // The protocol's promise: within one refresh period (plus a loaded host's slack).
    let limit = corral_actors::activity::REFRESH + WAIT;
    let ended = ws
        .next_event_until("activity.ended", tokio::time::Instant::now() + limit)
        .await
        .expect("the actor noticed the cancel");
    assert_eq!(ended["reason"], "cancelled");
}

#[actix_web::test]
async fn a_node_restarted_during_a_countdown_still_starts_on_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = NodeProcess::start(dir.path(), &[]).await;
    let api = Api::at(&node.url(""));
    let (_, merchant) = api.merchant("phoenix").await;
    let animal = api.animal(&merchant, 1).await;
    // Room for a crash and a restart on a loaded host before the start.
    let (activity, starts_at, _) = api.activity(&merchant, animal, 15_000, 1_000).await;
    let (_, token) = api.user("loyal").await;
    let (mut ws, ok) = watcher(&node.ws_url(), &token, activity).await;
    assert_eq!(ok["state"], "scheduled");

    node.crash();
    assert_eq!(ws.close_code().await, None, "a crash sends no close frame");
    node.restart().await;
    // The timer was rebuilt from the database at boot, before anyone subscribed again.
    let text = reqwest::get(node.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("corral_activity_actors 1"), "{text}");

    let (mut ws, ok) = watcher(&node.ws_url(), &token, activity).await;
    assert_eq!(
        ok["state"], "scheduled",
        "the restart took too long for this test: {ok}"
    );
    let due = tokio::time::Instant::now()
        + Duration::from_millis((starts_at - now_ms()).max(0) as u64)
        + WAIT;
    let started = ws
        .next_event_until("activity.started", due)
        .await
        .expect("started");
    let at = started["server_time"].as_i64().unwrap();
    assert!(at >= starts_at, "started at {at}, due {starts_at}");
    assert!(now_ms() >= starts_at);
}

/// Two nodes of a cluster: a broadcast sent through one node reaches the subscribers and the
/// merchant's online followers on both (a follower who also watches gets it once), and a
/// cancel made through one node ends the activity for the other node's watchers at once,
/// without waiting for the periodic re-read.
#[actix_web::test]
async fn broadcasts_and_cancels_reach_every_node() {
    let nodes = TestApp::cluster(2, |_| {}).await;
    let (api0, api1) = (Api::of(&nodes[0]), Api::of(&nodes[1]));
    let (merchant_id, merchant) = api0.merchant("cluster").await;
    let animal = api0.animal(&merchant, 1).await;
    let (activity, _, _) = api0.activity(&merchant, animal, 120_000, 60_000).await;
    let (_, watcher_token) = api0.user("watch").await;
    let (_, fan_token) = api0.user("fan").await;
    let (_, both_token) = api0.user("both").await;
    let (_, stranger_token) = api0.user("stranger").await;
    let (mut viewer, _) = watcher(&nodes[1].ws_url(), &watcher_token, activity).await;
    let (mut both, _) = watcher(&nodes[1].ws_url(), &both_token, activity).await;
    let mut fan = nodes[1].client(Some(&fan_token)).await;
    let mut near_fan = nodes[0].client(Some(&fan_token)).await;
    let mut stranger = nodes[1].client(Some(&stranger_token)).await;
    for ws in [&mut fan, &mut both] {
        ws.request("follow", json!({"user": merchant_id}))
            .await
            .expect("follow");
    }

    let path = format!("/api/v1/activities/{activity}/broadcast");
    let (status, body) = api0
        .post(&path, &merchant, json!({"text": "Lambs at dawn"}))
        .await;
    assert_eq!(status, 202, "{body}");
    for ws in [&mut viewer, &mut both, &mut fan, &mut near_fan] {
        expect_broadcast(ws, activity, "Lambs at dawn").await;
    }
    for ws in [&mut both, &mut stranger] {
        ws.assert_silent("activity.broadcast").await;
    }

    let (status, body) = api1
        .post(
            &format!("/api/v1/activities/{activity}/cancel"),
            &merchant,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let soon = tokio::time::Instant::now() + corral_actors::activity::REFRESH / 2;
    for ws in [&mut viewer, &mut both] {
        let ended = ws
            .next_event_until("activity.ended", soon)
            .await
            .expect("the cancel reached this node");
        assert_eq!(ended["reason"], "cancelled");
    }
}

/// Claim rules are read once per activity and cached by the claim desk; an edit made before
/// the start replaces them: slots and a limit raised after a first (too early) claim apply.
async fn an_edit_before_the_start_changes_the_claim_rules(engine: Engine) {
    edit_changes_claim_rules(TestApp::spawn(engine).await).await;
}

/// The same in cluster mode, where the first claim built the stock counters in Redis.
#[actix_web::test]
async fn an_edit_before_the_start_changes_the_claim_rules_in_redis() {
    let prefix = unique("edit") + ":";
    let app = TestApp::spawn_with(Engine::Postgres, crate::claims::redis_mode(&prefix)).await;
    edit_changes_claim_rules(app).await;
}

async fn edit_changes_claim_rules(app: TestApp) {
    let api = Api::of(&app);
    let (_, merchant) = api.merchant("editor").await;
    let animal = api.animal(&merchant, 3).await;
    let (activity, starts_at, ends_at) = api.activity(&merchant, animal, 2_000, 60_000).await;
    let (_, token) = api.user("eager").await;
    let (mut ws, _) = watcher(&app.ws_url(), &token, activity).await;
    let err = ws
        .request("claim", json!({"activity": activity, "key": "early"}))
        .await
        .expect_err("before the start");
    assert_eq!(err.code.as_str(), "not_started");

    let mut body = activity_body(animal, starts_at, ends_at);
    body["items"] = json!([{"animal_id": animal, "slots": 3}]);
    body["per_user_limit"] = json!(2);
    let (status, body) = api
        .put(&format!("/api/v1/activities/{activity}"), &merchant, body)
        .await;
    assert_eq!(status, 200, "{body}");
    ws.next_event("activity.started").await.expect("started");
    for key in ["k1", "k2"] {
        let held = ws
            .request("claim", json!({"activity": activity, "key": key}))
            .await
            .expect("held under the new limit");
        assert_eq!(held["status"], "held");
    }
    let err = ws
        .request("claim", json!({"activity": activity, "key": "k3"}))
        .await
        .expect_err("above the new limit");
    assert_eq!(err.code.as_str(), "limit_reached");
}

/// Times are epoch milliseconds; a merchant who sends seconds is told so, naming the field,
/// instead of "must be in the future".
#[actix_web::test]
async fn times_given_in_seconds_are_refused_with_a_hint() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let api = Api::of(&app);
    let (_, merchant) = api.merchant("secs").await;
    let animal = api.animal(&merchant, 1).await;
    let soon = now_ms() + 60_000;
    for (body, field) in [
        (
            activity_body(animal, soon / 1000, soon / 1000 + 60),
            "starts_at",
        ),
        (activity_body(animal, soon, soon / 1000 + 60), "ends_at"),
    ] {
        let (status, reply) = api.post("/api/v1/activities", &merchant, body).await;
        assert_eq!((status, code(&reply)), (400, "bad_request"), "{reply}");
        let message = reply["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.starts_with(field)
                && message.contains("looks like seconds")
                && message.contains("milliseconds since the Unix epoch"),
            "{message}"
        );
    }
}

//! Invitations: every account has an invite code (shown by `GET /me`); registering with it
//! credits the inviter, whose `invited` promotion sees it at once (a push while they watch);
//! an unknown code is refused and nothing is created; and no one can be recorded as invited
//! by themselves or by someone they invited (the store refuses it, whatever writes it).

use corral_protocol::Role;
use serde_json::json;

use super::fixtures::promo_with_rules;
use crate::claims::{Promo, bulk_users};
use crate::support::{Engine, TestApp, unique};

async fn register(app: &TestApp, invite_code: Option<&str>) -> (u16, serde_json::Value) {
    let name = unique("inv");
    let mut body = json!({"username": &name[..name.len().min(32)], "password": "correct-horse"});
    if let Some(code) = invite_code {
        body["invite_code"] = json!(code);
    }
    app.post("/api/v1/auth/register", None, body).await
}

async fn invitations(app: &TestApp) {
    let (inviter, token) = app.user("host").await;
    let (status, me) = app.get("/api/v1/me", Some(&token)).await;
    assert_eq!(status, 200, "{me}");
    let code = me["invite_code"].as_str().expect("invite code").to_string();
    assert_eq!(code.len(), 10, "{me}");

    // The inviter watches a bring-a-friend promotion: not eligible until a friend registers.
    let rules = json!({"requires": [{"kind": "invited", "min": 1}]});
    let (activity, _, _) = promo_with_rules(app, &Promo::open(1), &rules).await;
    let mut ws = app.client(Some(&token)).await;
    let sub = ws
        .request("activity.subscribe", json!({"activity": activity}))
        .await
        .expect("subscribe");
    assert_eq!(
        sub["unmet"],
        json!([{"rule": "invited", "need": 1, "have": 0}]),
        "{sub}"
    );

    // An unknown code is refused and creates nobody.
    let users_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&app.state.db.pool)
        .await
        .expect("count");
    let (status, reply) = register(app, Some("nosuchcode")).await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("invite_code:"),
        "{reply}"
    );
    let users_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&app.state.db.pool)
        .await
        .expect("count");
    assert_eq!(users_after, users_before);

    // A code typed in capitals with spaces still counts.
    let (status, reply) = register(app, Some(&format!(" {} ", code.to_uppercase()))).await;
    assert_eq!(status, 201, "{reply}");
    let friend = reply["user_id"].as_i64().expect("friend");
    let pushed = ws.next_event("activity.eligibility").await.expect("push");
    assert_eq!(
        (&pushed["eligible"], &pushed["unmet"]),
        (&json!(true), &json!([])),
        "{pushed}"
    );
    let held = ws
        .request("claim", json!({"activity": activity, "key": "k"}))
        .await;
    assert_eq!(
        held.map(|ok| ok["status"].clone()).ok(),
        Some(json!("held"))
    );

    // Self-invites and loops cannot be written, whatever writes them.
    let pool = &app.state.db.pool;
    let me_myself = sqlx::query("UPDATE users SET invited_by = id WHERE id = $1")
        .bind(inviter)
        .execute(pool)
        .await;
    assert!(me_myself.is_err(), "a self-invite was stored");
    let lone = bulk_users(app, 1, Role::User).await[0].0;
    let looped = sqlx::query("UPDATE users SET invited_by = $1 WHERE id = $2")
        .bind(friend)
        .bind(inviter)
        .execute(pool)
        .await;
    assert!(looped.is_err(), "an invitation loop was stored");
    let later = sqlx::query("UPDATE users SET invited_by = $1 WHERE id = $2")
        .bind(lone)
        .bind(friend)
        .execute(pool)
        .await;
    assert!(
        later.is_err(),
        "an account was credited to one registered after it"
    );
    let (_, me_again) = app.get("/api/v1/me", Some(&token)).await;
    assert_eq!(me_again["invite_code"], json!(code), "the code is stable");
}

#[actix_web::test]
async fn invitations_credit_the_inviter_and_refuse_abuse_sqlite() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    invitations(&app).await;
}

#[actix_web::test]
async fn invitations_credit_the_inviter_and_refuse_abuse_postgres() {
    let app = TestApp::spawn(Engine::Postgres).await;
    invitations(&app).await;
}

//! What the rules tests set up: rules written onto a seeded promotion, users' facts seeded
//! straight into SQL (follows, posts, invitees, confirmed claims, registration time), and the
//! node's count of facts read.

use serde_json::Value;
use sqlx::AnyPool;

use crate::claims::{Promo, now_ms, seed_in};
use crate::support::TestApp;

/// Seeds a promotion with `rules`; returns (activity, merchant id, merchant token).
pub async fn promo_with_rules(app: &TestApp, promo: &Promo, rules: &Value) -> (i64, i64, String) {
    let pool = &app.state.db.pool;
    let (activity, _, token) = seed_in(pool, &app.state.keys, promo).await;
    sqlx::query("UPDATE activities SET rules = $1 WHERE id = $2")
        .bind(rules.to_string())
        .bind(activity)
        .execute(pool)
        .await
        .expect("rules");
    let merchant: i64 = sqlx::query_scalar("SELECT merchant_id FROM activities WHERE id = $1")
        .bind(activity)
        .fetch_one(pool)
        .await
        .expect("merchant");
    (activity, merchant, token)
}

/// `follower` follows `followee`.
pub async fn follow(pool: &AnyPool, follower: i64, followee: i64) {
    sqlx::query("INSERT INTO follows (follower_id, followee_id, created_at) VALUES ($1, $2, 0)")
        .bind(follower)
        .bind(followee)
        .execute(pool)
        .await
        .expect("follow");
}

/// A post by `author` at `at`.
pub async fn post(pool: &AnyPool, author: i64, at: i64) {
    sqlx::query("INSERT INTO posts (author_id, text, created_at) VALUES ($1, 'hello', $2)")
        .bind(author)
        .bind(at)
        .execute(pool)
        .await
        .expect("post");
}

/// `user` registered at `at`.
pub async fn registered_at(pool: &AnyPool, user: i64, at: i64) {
    sqlx::query("UPDATE users SET created_at = $1 WHERE id = $2")
        .bind(at)
        .bind(user)
        .execute(pool)
        .await
        .expect("registered_at");
}

/// `invitee` registered with `inviter`'s code.
pub async fn invited(pool: &AnyPool, inviter: i64, invitee: i64) {
    sqlx::query("UPDATE users SET invited_by = $1 WHERE id = $2")
        .bind(inviter)
        .bind(invitee)
        .execute(pool)
        .await
        .expect("invited");
}

/// A confirmed claim of `user` in another promotion of `merchant` (a fresh, ended one).
pub async fn confirmed_claim(app: &TestApp, user: i64, merchant_of: Option<i64>) {
    let pool = &app.state.db.pool;
    let promo = Promo {
        starts_at: now_ms() - 120_000,
        ends_at: now_ms() - 60_000,
        ..Promo::open(1)
    };
    let (activity, items, _) = seed_in(pool, &app.state.keys, &promo).await;
    if let Some(merchant) = merchant_of {
        sqlx::query("UPDATE activities SET merchant_id = $1 WHERE id = $2")
            .bind(merchant)
            .bind(activity)
            .execute(pool)
            .await
            .expect("merchant");
    }
    sqlx::query(
        "INSERT INTO claims (activity_id, item_id, user_id, claim_key, status, expires_at, \
         created_at, updated_at) VALUES ($1, $2, $3, 'paid', 'confirmed', 0, 0, 0)",
    )
    .bind(activity)
    .bind(items[0])
    .bind(user)
    .execute(pool)
    .await
    .expect("confirmed claim");
}

/// Facts read by `app`'s node so far (one SQL statement each; the `/metrics` counter is the
/// process's, shared by every in-process node and test).
pub fn fact_loads(app: &TestApp) -> u64 {
    app.state.hub.claims.facts_read()
}

/// Loads `codes` into `activity`'s coupon pool straight in SQL (a seeded promotion has
/// already started, when the API refuses uploads).
pub async fn load_codes(pool: &AnyPool, activity: i64, codes: &[&str]) {
    for chunk in codes.chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|c| format!("({activity}, '{c}', 0)"))
            .collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO coupon_codes (activity_id, code, created_at) VALUES {}",
            values.join(", ")
        )))
        .execute(pool)
        .await
        .expect("coupon codes");
    }
}

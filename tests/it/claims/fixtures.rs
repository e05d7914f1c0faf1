//! What the claims tests set up, shared with the other suites that need a promotion: rows
//! seeded straight into a node's database (a merchant, one-slot animals, an activity), users
//! in bulk with tokens from the node's keys, the settings of a node in Redis mode, and a claim
//! that must be held.

use corral::auth::JwtKeys;
use corral::config::Settings;
use corral_protocol::Role;
use serde_json::json;
use sqlx::{AnyPool, Row};

use crate::support::{TestApp, WsClient, redis_url, unique};

/// Ids for seeded rows, unique across the nodes of one test process.
fn next_id() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static NEXT: AtomicI64 = AtomicI64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed) + (std::process::id() as i64 % 1000) * 1_000_000
}

pub fn now_ms() -> i64 {
    corral_actors::clock::now_ms()
}

/// One promotion to seed.
pub struct Promo {
    pub starts_at: i64,
    pub ends_at: i64,
    pub slots: Vec<i64>,
    pub per_user_limit: i64,
    pub hold_seconds: i64,
}

impl Promo {
    /// `items` one-slot animals, open now for a minute.
    pub fn open(items: usize) -> Promo {
        Promo {
            starts_at: now_ms() - 1,
            ends_at: now_ms() + 60_000,
            slots: vec![1; items],
            per_user_limit: 1,
            hold_seconds: 60,
        }
    }
}

/// Seeds a merchant, animals and an activity; returns (activity id, item ids, merchant token).
pub async fn seed(app: &TestApp, promo: &Promo) -> (i64, Vec<i64>, String) {
    seed_in(&app.state.db.pool, &app.state.keys, promo).await
}

/// [`seed`] through a pool and token keys.
pub async fn seed_in(pool: &AnyPool, keys: &JwtKeys, promo: &Promo) -> (i64, Vec<i64>, String) {
    let merchant = bulk_users_in(pool, keys, 1, Role::Merchant).await.remove(0);
    let activity = next_id();
    sqlx::query(
        "INSERT INTO activities (id, merchant_id, title, starts_at, ends_at, per_user_limit, \
         hold_seconds, status, created_at, updated_at) VALUES ($1, $2, 'promo', $3, $4, $5, $6, 'scheduled', 0, 0)",
    )
    .bind(activity)
    .bind(merchant.0)
    .bind(promo.starts_at)
    .bind(promo.ends_at)
    .bind(promo.per_user_limit)
    .bind(promo.hold_seconds)
    .execute(pool)
    .await
    .expect("activity");
    let mut items = Vec::new();
    for slots in &promo.slots {
        let animal = next_id();
        sqlx::query(
            "INSERT INTO animals (id, merchant_id, name, species, description, image_urls, price_cents, \
             slots, created_at, updated_at) VALUES ($1, $2, 'a', 'sheep', '', '[]', 100, $3, 0, 0)",
        )
        .bind(animal)
        .bind(merchant.0)
        .bind(*slots)
        .execute(pool)
        .await
        .expect("animal");
        let item = next_id();
        sqlx::query("INSERT INTO activity_items (id, activity_id, animal_id, slots) VALUES ($1, $2, $3, $4)")
            .bind(item)
            .bind(activity)
            .bind(animal)
            .bind(*slots)
            .execute(pool)
            .await
            .expect("item");
        items.push(item);
    }
    (activity, items, merchant.1)
}

/// `n` users inserted in bulk with tokens issued by the node's keys (register + argon2 would
/// dominate a 2,000-client test; the WebSocket only checks the token).
pub async fn bulk_users(app: &TestApp, n: usize, role: Role) -> Vec<(i64, String)> {
    bulk_users_in(&app.state.db.pool, &app.state.keys, n, role).await
}

/// [`bulk_users`] through a pool and token keys.
pub async fn bulk_users_in(
    pool: &AnyPool,
    keys: &JwtKeys,
    n: usize,
    role: Role,
) -> Vec<(i64, String)> {
    let mut out = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let values: Vec<String> = chunk
            .iter()
            .map(|_| format!("('{}', 'x', '{}', 0)", unique("b"), role.as_str()))
            .collect();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO users (username, password_hash, role, created_at) VALUES {} RETURNING id",
            values.join(", ")
        )))
        .fetch_all(pool)
        .await
        .expect("bulk users");
        for row in rows {
            let id: i64 = row.get(0);
            out.push((id, keys.issue(id, role).expect("token")));
        }
    }
    out
}

pub(crate) fn redis_mode(prefix: &str) -> impl FnOnce(&mut Settings) + '_ {
    move |s: &mut Settings| {
        s.redis.url = corral::config::Secret::from(redis_url());
        s.redis.key_prefix = prefix.to_string();
        // Nodes of one cluster share the token key.
        s.auth.jwt_secret = corral::config::Secret::from(format!("{prefix}-jwt"));
        s.ws.max_per_ip = 100_000;
    }
}

/// Claims `activity` with `key`, expecting a hold.
pub(super) async fn hold(ws: &mut WsClient, activity: i64, key: String) {
    let reply = ws
        .request("claim", json!({"activity": activity, "key": key}))
        .await;
    assert_eq!(reply.expect("held")["status"], "held");
}

//! Operator commands run from the CLI, never served over HTTP: `corral admin seed-users` bulk
//! creates load-test accounts and issues their tokens (here); [`accounts`] changes one account
//! (role, disabled, password); [`backup`] copies and restores the database. Being a CLI that
//! needs the node's data directory (or database URL) and signing key, it is unreachable from
//! the network by construction, so it cannot be left on in production by a config mistake.

pub mod accounts;
pub mod backup;

use std::collections::HashMap;

use corral_protocol::{Role, UserId};
use serde::Serialize;
use sqlx::Row;

use crate::auth::JwtKeys;
use crate::auth::password::{HashError, Hasher};
use crate::store::{Db, StoreError};

/// Accounts written per `INSERT` statement: 4 binds a row stays far below both engines'
/// parameter limits, and one statement per batch keeps 50,000 accounts to a few round trips.
const ROWS_PER_INSERT: usize = 1000;

/// One seeded account, as written to the tokens file.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SeededUser {
    /// The account id.
    pub id: UserId,
    /// Its name (`<prefix><n>`).
    pub username: String,
    /// A signed token for it, valid for the configured token lifetime.
    pub token: String,
}

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// SQL trouble.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing the shared password failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// Signing a token failed.
    #[error(transparent)]
    Token(#[from] crate::auth::jwt::TokenError),
}

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedRequest {
    /// How many accounts.
    pub count: usize,
    /// Their name prefix: accounts are `<prefix>0` .. `<prefix><count-1>`.
    pub prefix: String,
    /// The role of the accounts created (existing ones keep theirs).
    pub role: Role,
    /// The password every seeded account shares (so they can also log in over HTTP).
    pub password: String,
}

/// Creates (or reuses, when the names exist) `count` accounts and issues a token for each.
/// One argon2 hash is computed and shared by every account: hashing 50,000 distinct
/// passwords would take minutes, and these accounts exist only to be driven by load tests.
pub async fn seed_users(
    db: &Db,
    keys: &JwtKeys,
    hasher: &Hasher,
    req: &SeedRequest,
) -> Result<Vec<SeededUser>, SeedError> {
    let hash = hasher.hash(req.password.clone()).await?;
    let now = corral_actors::clock::now_ms();
    let names: Vec<String> = (0..req.count)
        .map(|n| format!("{}{n}", req.prefix))
        .collect();
    let mut ids: HashMap<String, (UserId, Role)> = HashMap::with_capacity(names.len());
    let mut tx = db.pool.begin().await.map_err(StoreError::from)?;
    for chunk in names.chunks(ROWS_PER_INSERT) {
        let mut sql =
            String::from("INSERT INTO users (username, password_hash, role, created_at) VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            let b = i * 4;
            sql.push_str(&format!("(${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4));
        }
        // The no-op update makes `RETURNING` yield existing rows too, on both engines, so a
        // re-run reuses the accounts (keeping their passwords and roles) instead of failing.
        sql.push_str(
            " ON CONFLICT (username) DO UPDATE SET username = excluded.username \
             RETURNING id, username, role",
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for name in chunk {
            query = query
                .bind(name.as_str())
                .bind(hash.as_str())
                .bind(req.role.as_str())
                .bind(now);
        }
        for row in query.fetch_all(&mut *tx).await.map_err(StoreError::from)? {
            let id: i64 = row.try_get(0).map_err(StoreError::from)?;
            let name: String = row.try_get(1).map_err(StoreError::from)?;
            let role: String = row.try_get(2).map_err(StoreError::from)?;
            ids.insert(name, (id, Role::parse(&role).unwrap_or(Role::User)));
        }
    }
    tx.commit().await.map_err(StoreError::from)?;
    let mut out = Vec::with_capacity(names.len());
    for username in names {
        let Some(&(id, role)) = ids.get(&username) else {
            return Err(StoreError::NotFound.into());
        };
        // A reused account keeps its stored role: the token says what the account is.
        let token = keys.issue(id, role)?;
        out.push(SeededUser {
            id,
            username,
            token,
        });
    }
    Ok(out)
}

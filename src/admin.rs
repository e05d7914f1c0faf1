//! Operator commands run from the CLI, never served over HTTP: `corral admin seed-users` bulk
//! creates load-test accounts and issues their tokens (here); [`accounts`] changes one account
//! (role, disabled, password); [`backup`] copies and restores the database. Being a CLI that
//! needs the node's data directory (or database URL) and signing key, it is unreachable from
//! the network by construction, so it cannot be left on in production by a config mistake.

pub mod accounts;
pub mod backup;

use corral_protocol::{Role, UserId};
use serde::Serialize;

use crate::auth::JwtKeys;
use crate::auth::password::{HashError, Hasher};
use crate::store::sql::AccountRepo;
use crate::store::{Db, StoreError};

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
    let ids = AccountRepo::new(db)
        .seed(&names, &hash, req.role, now)
        .await?;
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

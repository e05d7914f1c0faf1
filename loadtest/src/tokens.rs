//! The tokens file written by `corral admin seed-users`: `[{id, username, token}, ...]`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::LoadError;

/// One load-test account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Its user id.
    pub id: i64,
    /// Its name.
    pub username: String,
    /// A bearer token for it.
    pub token: String,
}

/// Reads a tokens file, requiring at least `needed` accounts (one per client: Corral limits
/// connections per user).
pub fn load(path: &Path, needed: usize) -> Result<Vec<Account>, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LoadError::Scenario(format!("tokens {}: {e}", path.display())))?;
    let accounts: Vec<Account> = serde_json::from_str(&text)
        .map_err(|e| LoadError::Scenario(format!("tokens {}: {e}", path.display())))?;
    if accounts.len() < needed {
        return Err(LoadError::Scenario(format!(
            "tokens {}: {} accounts for {needed} clients (seed more with `corral admin \
             seed-users --count {needed}`)",
            path.display(),
            accounts.len()
        )));
    }
    Ok(accounts)
}

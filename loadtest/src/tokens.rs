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
/// connections per user). `role` names the accounts' role in the hint for making more.
pub fn load(path: &Path, needed: usize, role: &str) -> Result<Vec<Account>, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LoadError::Scenario(format!("tokens {}: {e}", path.display())))?;
    let accounts: Vec<Account> = serde_json::from_str(&text)
        .map_err(|e| LoadError::Scenario(format!("tokens {}: {e}", path.display())))?;
    if accounts.len() < needed {
        let role = match role {
            "user" => String::new(),
            other => format!(" --role {other}"),
        };
        return Err(LoadError::TooFewTokens {
            path: path.display().to_string(),
            have: accounts.len(),
            need: needed,
            seed: format!(
                "corral admin seed-users --count {needed}{role} --out {}",
                path.display()
            ),
        });
    }
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_accounts_say_how_many_and_how_to_make_more() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.json");
        let accounts: Vec<Account> = (0..3)
            .map(|id| Account {
                id,
                username: format!("u{id}"),
                token: "t".into(),
            })
            .collect();
        std::fs::write(&path, serde_json::to_vec(&accounts).expect("json")).expect("write");
        assert_eq!(load(&path, 3, "user").map(|a| a.len()).ok(), Some(3));
        let err = load(&path, 200, "user").expect_err("too few").to_string();
        assert!(err.contains("3 accounts for 200 clients"), "{err}");
        assert!(
            err.contains("corral admin seed-users --count 200 --out"),
            "{err}"
        );
        let err = load(&path, 5, "merchant").expect_err("too few").to_string();
        assert!(err.contains("--role merchant"), "{err}");
    }
}

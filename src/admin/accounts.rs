//! `corral admin set-role | disable | enable | reset-password`: an operator changes one account
//! straight in the node's database, naming it by username (or id).
//!
//! Each change raises the account's token version, so every token issued before stops
//! working. Running nodes — one, or a cluster sharing the database — learn of it when they
//! re-read the accounts' standings, every `auth.standing_refresh_ms` (5 s by default), and then
//! refuse the old tokens and close the account's open sockets. With Redis configured (a
//! cluster), the change is also [`announce`]d on the cluster bus, which every node applies at
//! once; the re-read stays the backstop for a node that missed it. Every change is written to
//! the audit log with [`OPERATOR`] as its actor.

use std::io::{BufRead, IsTerminal};

use corral_protocol::{Role, UserId};
use rand::Rng;

use corral_actors::ports::cluster::ClusterEvent;

use crate::auth::password::{HashError, Hasher, PASSWORD_CHARS};
use crate::store::redis::broker;
use crate::store::redis::{RedisError, RedisStore};
use crate::store::sql::users::UserRecord;
use crate::store::{Repos, StoreError};

/// The audit log's actor for changes made with `corral admin` (no account has id 0).
pub const OPERATOR: UserId = 0;

/// Characters in a generated password: about 119 bits from 62 symbols.
const GENERATED_CHARS: usize = 20;

/// Why an account command failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Nobody has that name or id.
    #[error(
        "no user named `{0}` (nor with that id): check the spelling, and that --data-dir or the database URL is the node's"
    )]
    UnknownUser(String),
    /// A merchant account needs a merchant profile, which only an application creates.
    #[error(
        "`{0}` has no merchant profile: a user becomes a merchant by applying (POST /api/v1/merchants) and being approved"
    )]
    NoMerchantProfile(String),
    /// The new password breaks the registration rule.
    #[error("the new password must be {min} to {max} characters", min = PASSWORD_CHARS.start(), max = PASSWORD_CHARS.end())]
    BadPassword,
    /// The two prompted passwords differ.
    #[error("the passwords differ: nothing changed")]
    Mismatch,
    /// Standard input held no password.
    #[error(
        "no password on standard input: pipe one line, run in a terminal to be prompted, or use --generate"
    )]
    NoPassword,
    /// Reading the password failed.
    #[error("reading the new password")]
    Read(#[source] std::io::Error),
    /// SQL trouble.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing the new password failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// The change could not be told over the cluster bus.
    #[error("telling the cluster over Redis")]
    Announce(#[source] RedisError),
    /// The cluster event did not encode.
    #[error("encoding the cluster event")]
    Encode(#[source] serde_json::Error),
}

/// What to change about an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Give it this role.
    Role(Role),
    /// Disable it (`true`) or enable it again.
    Disabled(bool),
}

/// An account before and after a change (`after` is `None` when it already was as asked).
#[derive(Debug)]
pub struct Changed {
    /// As it was.
    pub before: UserRecord,
    /// As it is now, when something changed.
    pub after: Option<UserRecord>,
}

/// The account `who` names: a username (whatever its case), else an id.
pub async fn find(repos: &Repos, who: &str) -> Result<UserRecord, AccountError> {
    if let Some(user) = repos.accounts.user_by_name(who).await? {
        return Ok(user);
    }
    let by_id = match who.parse::<UserId>() {
        Ok(id) => repos.accounts.user_by_id(id).await?,
        Err(_) => None,
    };
    by_id.ok_or_else(|| AccountError::UnknownUser(who.to_string()))
}

/// Applies `change` to the account `who` names, unless it already is so.
pub async fn change(repos: &Repos, who: &str, change: Change) -> Result<Changed, AccountError> {
    let before = find(repos, who).await?;
    let (role, disabled) = match change {
        Change::Role(role) if role == before.role => return Ok(unchanged(before)),
        Change::Role(Role::Merchant) => {
            if repos.merchants.merchant(before.id).await?.is_none() {
                return Err(AccountError::NoMerchantProfile(before.username));
            }
            (Some(Role::Merchant), None)
        }
        Change::Role(role) => (Some(role), None),
        Change::Disabled(disabled) if disabled == before.disabled => {
            return Ok(unchanged(before));
        }
        Change::Disabled(disabled) => (None, Some(disabled)),
    };
    let now = corral_actors::clock::now_ms();
    let after = repos
        .accounts
        .change_standing(OPERATOR, before.id, role, disabled, now)
        .await?;
    Ok(Changed {
        before,
        after: Some(after),
    })
}

fn unchanged(before: UserRecord) -> Changed {
    Changed {
        before,
        after: None,
    }
}

/// Sets a new password on `user` (found with [`find`] before the password is asked for); its
/// tokens stop working.
pub async fn reset_password(
    repos: &Repos,
    hasher: &Hasher,
    user: &UserRecord,
    password: String,
) -> Result<UserRecord, AccountError> {
    if !PASSWORD_CHARS.contains(&password.chars().count()) {
        return Err(AccountError::BadPassword);
    }
    let hash = hasher.hash(password).await?;
    let now = corral_actors::clock::now_ms();
    Ok(repos
        .accounts
        .reset_password(OPERATOR, user.id, &hash, now)
        .await?)
}

/// Tells every node sharing `redis` of `user`'s standing as it now is; returns how many
/// nodes were listening.
pub async fn announce(redis: &RedisStore, user: &UserRecord) -> Result<usize, AccountError> {
    let event = ClusterEvent::Standing {
        user: user.id,
        standing: user.standing(),
    };
    let (channel, payload) =
        broker::message_from_outside(&redis.prefix, &event).map_err(AccountError::Encode)?;
    redis
        .publish(channel, payload)
        .await
        .map_err(AccountError::Announce)
}

/// A random password of letters and digits.
pub fn generate_password() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(GENERATED_CHARS)
        .map(char::from)
        .collect()
}

/// Reads the new password for `username`: prompted twice without echo on a terminal, else the
/// first line of standard input (never an argument: those show in `ps` and shell history).
pub fn read_password(username: &str) -> Result<String, AccountError> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("New password for {username}: "))
            .map_err(AccountError::Read)?;
        let again = rpassword::prompt_password("Again: ").map_err(AccountError::Read)?;
        if first != again {
            return Err(AccountError::Mismatch);
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(AccountError::Read)?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(AccountError::NoPassword);
    }
    Ok(password.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_pass_the_rule_and_differ() {
        let a = generate_password();
        let b = generate_password();
        assert!(PASSWORD_CHARS.contains(&a.chars().count()), "{a}");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }
}

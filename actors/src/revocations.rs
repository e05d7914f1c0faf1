//! What a token must still match to be accepted: its user's current role, token version and
//! disabled flag, kept in memory so verifying a token never reads the database.
//!
//! Only accounts that differ from a fresh one (role `user`, version 0, enabled) are held, so
//! the map is as small as the number of merchants, admins and changed accounts. The server
//! fills it from the store at start, refreshes it periodically (catching changes made directly
//! in the database), and updates it at once when an account changes through the API, on this
//! node and — over the cluster bus — on the others.

use corral_protocol::{Role, UserId};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};

/// An account's standing, as far as its tokens are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// Its role now.
    pub role: Role,
    /// Raised whenever its tokens must stop working (role changed by an admin, disabled,
    /// enabled again); a token carries the version it was issued under.
    pub version: i64,
    /// A disabled account's tokens are all refused.
    pub disabled: bool,
}

impl Default for Standing {
    /// A fresh account.
    fn default() -> Self {
        Standing {
            role: Role::User,
            version: 0,
            disabled: false,
        }
    }
}

fn rank(role: Role) -> u8 {
    match role {
        Role::User => 0,
        Role::Merchant => 1,
        Role::Admin => 2,
    }
}

impl Standing {
    /// Whether a token claiming `role` under `version` may act for this account. A token may
    /// claim less than the account has (a user token kept after becoming a merchant), never
    /// more.
    pub fn accepts(&self, role: Role, version: i64) -> bool {
        !self.disabled && version >= self.version && rank(role) <= rank(self.role)
    }

    /// Whether moving from `self` to `next` takes rights away from existing sessions.
    fn loses_rights_to(&self, next: &Standing) -> bool {
        next.disabled || next.version > self.version || rank(next.role) < rank(self.role)
    }
}

/// The node's view of every account's standing.
#[derive(Default)]
pub struct Revocations {
    accounts: DashMap<UserId, Standing>,
}

impl Revocations {
    /// `user`'s standing as this node knows it.
    pub fn current(&self, user: UserId) -> Standing {
        self.accounts.get(&user).map(|s| *s).unwrap_or_default()
    }

    /// Whether a token of `user` claiming `role` under `version` is still good.
    pub fn accepts(&self, user: UserId, role: Role, version: i64) -> bool {
        self.current(user).accepts(role, version)
    }

    /// Records `next` as `user`'s standing unless a newer version is already known; says
    /// whether sessions of `user` lose rights (and should be closed).
    pub fn observe(&self, user: UserId, next: Standing) -> bool {
        let previous = self.current(user);
        if next.version < previous.version {
            return false;
        }
        if next == Standing::default() {
            self.accounts.remove(&user);
        } else {
            self.accounts.insert(user, next);
        }
        previous.loses_rights_to(&next)
    }

    /// Replaces the view with a full read of the accounts that differ from a fresh one;
    /// returns the users whose sessions lose rights.
    pub fn reload(&self, rows: Vec<(UserId, Standing)>) -> Vec<UserId> {
        let listed: std::collections::HashSet<UserId> = rows.iter().map(|(u, _)| *u).collect();
        // Accounts no longer listed are fresh again (a changed version is always listed, so
        // only version-0 entries can drop out).
        let gone: Vec<UserId> = self
            .accounts
            .iter()
            .filter(|e| e.version == 0 && !listed.contains(e.key()))
            .map(|e| *e.key())
            .collect();
        let fresh = gone.into_iter().map(|u| (u, Standing::default()));
        rows.into_iter()
            .chain(fresh)
            .filter(|(user, standing)| self.observe(*user, *standing))
            .map(|(user, _)| user)
            .collect()
    }

    /// Accounts held.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether every account is fresh.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(role: Role, version: i64, disabled: bool) -> Standing {
        Standing {
            role,
            version,
            disabled,
        }
    }

    #[test]
    fn a_demoted_or_disabled_account_refuses_its_old_tokens() {
        let r = Revocations::default();
        assert!(r.accepts(7, Role::User, 0));
        assert!(!r.accepts(7, Role::Merchant, 0), "claims more than it has");
        assert!(!r.observe(7, standing(Role::Merchant, 0, false)));
        assert!(r.accepts(7, Role::Merchant, 0));
        assert!(r.accepts(7, Role::User, 0), "less than it has is fine");
        // Demoted by an admin: version 1.
        assert!(r.observe(7, standing(Role::User, 1, false)));
        assert!(!r.accepts(7, Role::Merchant, 0));
        assert!(
            !r.accepts(7, Role::User, 0),
            "tokens before the change are gone"
        );
        assert!(r.accepts(7, Role::User, 1));
        // A late, older event changes nothing.
        assert!(!r.observe(7, standing(Role::Merchant, 0, false)));
        assert!(!r.accepts(7, Role::Merchant, 1));
        assert!(r.observe(7, standing(Role::User, 2, true)));
        assert!(!r.accepts(7, Role::User, 2));
    }

    #[test]
    fn a_reload_catches_changes_made_in_the_database() {
        let r = Revocations::default();
        r.observe(1, standing(Role::Merchant, 0, false));
        r.observe(2, standing(Role::Admin, 3, false));
        // Merchant 1 demoted by SQL (version unchanged); 2 unchanged; 3 made admin.
        let lost = r.reload(vec![
            (2, standing(Role::Admin, 3, false)),
            (3, standing(Role::Admin, 0, false)),
        ]);
        assert_eq!(lost, vec![1]);
        assert!(!r.accepts(1, Role::Merchant, 0));
        assert!(r.accepts(3, Role::Admin, 0));
        assert_eq!(r.len(), 2);
    }
}

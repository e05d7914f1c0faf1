//! The audience: followers of the merchant only, accounts registered before a date, new
//! accounts since a date, and any combination (each narrows the audience).

use corral_protocol::rules::{Audience, RuleKey, Unmet};

use crate::ports::UserFacts;

/// The audience limits `facts` fall outside of.
pub fn check(audience: &Audience, facts: &UserFacts) -> Vec<Unmet> {
    let mut unmet = Vec::new();
    if audience.followers_only && !facts.follows_merchant {
        unmet.push(Unmet::flag(RuleKey::FollowersOnly));
    }
    if audience
        .registered_before
        .is_some_and(|before| facts.registered_at >= before)
    {
        unmet.push(Unmet::flag(RuleKey::RegisteredBefore));
    }
    if audience
        .new_users_since
        .is_some_and(|since| facts.registered_at < since)
    {
        unmet.push(Unmet::flag(RuleKey::NewUsersSince));
    }
    unmet
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(registered_at: i64, follows_merchant: bool) -> UserFacts {
        UserFacts {
            registered_at,
            follows_merchant,
            ..UserFacts::default()
        }
    }

    fn keys(audience: &Audience, facts: &UserFacts) -> Vec<RuleKey> {
        check(audience, facts).into_iter().map(|u| u.rule).collect()
    }

    #[test]
    fn followers_only() {
        let a = Audience {
            followers_only: true,
            ..Audience::default()
        };
        assert_eq!(keys(&a, &user(1, true)), vec![]);
        assert_eq!(keys(&a, &user(1, false)), vec![RuleKey::FollowersOnly]);
    }

    #[test]
    fn registered_before_is_exclusive() {
        let a = Audience {
            registered_before: Some(100),
            ..Audience::default()
        };
        assert_eq!(keys(&a, &user(99, false)), vec![]);
        assert_eq!(keys(&a, &user(100, false)), vec![RuleKey::RegisteredBefore]);
    }

    #[test]
    fn new_users_since_is_inclusive() {
        let a = Audience {
            new_users_since: Some(100),
            ..Audience::default()
        };
        assert_eq!(keys(&a, &user(100, false)), vec![]);
        assert_eq!(keys(&a, &user(99, false)), vec![RuleKey::NewUsersSince]);
    }

    #[test]
    fn a_combination_needs_every_part() {
        let a = Audience {
            followers_only: true,
            registered_before: Some(200),
            new_users_since: Some(100),
        };
        assert_eq!(keys(&a, &user(150, true)), vec![]);
        assert_eq!(
            keys(&a, &user(250, false)),
            vec![RuleKey::FollowersOnly, RuleKey::RegisteredBefore]
        );
        assert_eq!(keys(&a, &user(50, true)), vec![RuleKey::NewUsersSince]);
        assert_eq!(keys(&Audience::default(), &user(0, false)), vec![]);
    }
}

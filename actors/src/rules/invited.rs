//! The `invited` requirement: at least `min` users registered with the user's invite code.

use corral_protocol::rules::{RuleKey, Unmet};

use crate::ports::UserFacts;

/// Unmet while fewer than `min` invitees have registered.
pub fn check(min: i64, facts: &UserFacts) -> Option<Unmet> {
    (facts.invited < min).then(|| Unmet::count(RuleKey::Invited, min, facts.invited))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_registered_invitees() {
        let facts = |invited| UserFacts {
            invited,
            ..UserFacts::default()
        };
        assert_eq!(
            check(1, &facts(0)),
            Some(Unmet::count(RuleKey::Invited, 1, 0))
        );
        assert_eq!(check(1, &facts(1)), None);
    }
}

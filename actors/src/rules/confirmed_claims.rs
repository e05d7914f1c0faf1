//! The `confirmed_claims` requirement: at least `min` confirmed claims from other promotions,
//! of the same merchant (`merchant_only`) or of any.

use corral_protocol::rules::{RuleKey, Unmet};

use crate::ports::UserFacts;

/// Unmet while the user has fewer than `min` confirmed claims in the counted scope.
pub fn check(min: i64, merchant_only: bool, facts: &UserFacts) -> Option<Unmet> {
    let have = if merchant_only {
        facts.confirmed_at_merchant
    } else {
        facts.confirmed_anywhere
    };
    (have < min).then(|| Unmet::count(RuleKey::ConfirmedClaims, min, have))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_picks_the_count() {
        let facts = UserFacts {
            confirmed_at_merchant: 0,
            confirmed_anywhere: 2,
            ..UserFacts::default()
        };
        assert_eq!(check(1, false, &facts), None);
        assert_eq!(
            check(1, true, &facts),
            Some(Unmet::count(RuleKey::ConfirmedClaims, 1, 0))
        );
        assert_eq!(
            check(3, false, &facts),
            Some(Unmet::count(RuleKey::ConfirmedClaims, 3, 2))
        );
    }
}

//! The `follows_merchant` requirement: the user follows the promotion's merchant.

use corral_protocol::rules::{RuleKey, Unmet};

use crate::ports::UserFacts;

/// Unmet unless the user follows the merchant.
pub fn check(facts: &UserFacts) -> Option<Unmet> {
    (!facts.follows_merchant).then(|| Unmet::flag(RuleKey::FollowsMerchant))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_meets_it() {
        let mut facts = UserFacts::default();
        assert_eq!(check(&facts), Some(Unmet::flag(RuleKey::FollowsMerchant)));
        facts.follows_merchant = true;
        assert_eq!(check(&facts), None);
    }
}

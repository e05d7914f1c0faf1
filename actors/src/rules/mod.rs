//! Evaluating a promotion's rules against one user's facts: [`evaluate`] runs the audience
//! check and one small pure evaluator per requirement kind (a file each, unit-tested), and
//! answers the rules the user does not meet. Facts come from the one port method
//! [`RulesStore::facts`](crate::ports::RulesStore::facts); nothing here does I/O.

pub mod audience;
pub mod confirmed_claims;
pub mod follows_merchant;
pub mod invited;
pub mod posts;

use corral_protocol::rules::{ActivityRules, Requirement, Unmet};

use crate::ports::UserFacts;

/// The rules of `rules` that `facts` do not meet, audience first, then the requirements in
/// their listed order; empty when the user is eligible.
pub fn evaluate(rules: &ActivityRules, facts: &UserFacts) -> Vec<Unmet> {
    let mut unmet = audience::check(&rules.audience, facts);
    unmet.extend(rules.requires.iter().filter_map(|req| match *req {
        Requirement::FollowsMerchant => follows_merchant::check(facts),
        Requirement::Posts { min, .. } => posts::check(min, facts),
        Requirement::Invited { min } => invited::check(min, facts),
        Requirement::ConfirmedClaims { min, merchant_only } => {
            confirmed_claims::check(min, merchant_only, facts)
        }
    }));
    unmet
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_protocol::rules::{Audience, RuleKey};

    #[test]
    fn every_unmet_rule_is_named_in_order() {
        let rules = ActivityRules {
            audience: Audience {
                followers_only: true,
                registered_before: Some(1_000),
                new_users_since: None,
            },
            requires: vec![
                Requirement::Invited { min: 2 },
                Requirement::FollowsMerchant,
                Requirement::Posts { min: 1, since: 500 },
            ],
            reward: Default::default(),
        };
        let newcomer = UserFacts {
            registered_at: 2_000,
            invited: 1,
            posts_since: 4,
            ..UserFacts::default()
        };
        let keys: Vec<RuleKey> = evaluate(&rules, &newcomer)
            .into_iter()
            .map(|u| u.rule)
            .collect();
        assert_eq!(
            keys,
            vec![
                RuleKey::FollowersOnly,
                RuleKey::RegisteredBefore,
                RuleKey::Invited,
                RuleKey::FollowsMerchant
            ]
        );
        let regular = UserFacts {
            registered_at: 999,
            follows_merchant: true,
            invited: 2,
            posts_since: 1,
            ..UserFacts::default()
        };
        assert_eq!(evaluate(&rules, &regular), vec![]);
        assert_eq!(evaluate(&ActivityRules::default(), &newcomer), vec![]);
    }
}

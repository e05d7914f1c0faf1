//! The `posts` requirement: at least `min` posts since a date (the facts count the posts
//! since the date the rules ask for).

use corral_protocol::rules::{RuleKey, Unmet};

use crate::ports::UserFacts;

/// Unmet while the user has fewer than `min` posts since the rule's date.
pub fn check(min: i64, facts: &UserFacts) -> Option<Unmet> {
    (facts.posts_since < min).then(|| Unmet::count(RuleKey::Posts, min, facts.posts_since))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_to_the_minimum() {
        let facts = |posts_since| UserFacts {
            posts_since,
            ..UserFacts::default()
        };
        assert_eq!(
            check(3, &facts(2)),
            Some(Unmet::count(RuleKey::Posts, 3, 2))
        );
        assert_eq!(check(3, &facts(3)), None);
        assert_eq!(check(3, &facts(9)), None);
    }
}

//! The arbiter's name for each decision of a claim key.
//!
//! A key is decided once, unless reconciliation voided its decision (its row never came): a
//! retry then decides it afresh, and the arbiter must not see the voided decision's entry
//! (`seen`) again. So the n-th decision of `key` is made under `key` for n = 1 and under
//! `key\0n` after that; claim keys never hold NUL (the claim desk refuses them), so no client
//! key can name another decision. The claim row keeps the client's key and the attempt.

use std::borrow::Cow;

/// The arbiter key of decision `attempt` of `key`.
pub fn arbiter_key(key: &str, attempt: i64) -> Cow<'_, str> {
    match attempt {
        ..=1 => Cow::Borrowed(key),
        n => Cow::Owned(format!("{key}\0{n}")),
    }
}

/// The client's key and the attempt an arbiter key names (the inverse of [`arbiter_key`]).
pub fn split(arbiter_key: &str) -> (&str, i64) {
    match arbiter_key.rsplit_once('\0') {
        Some((key, n)) => match n.parse() {
            Ok(n) if n > 1 => (key, n),
            _ => (arbiter_key, 1),
        },
        None => (arbiter_key, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_decision_is_the_key_itself() {
        assert_eq!(arbiter_key("k|1", 1), "k|1");
        assert_eq!(split("k|1"), ("k|1", 1));
    }

    #[test]
    fn later_decisions_round_trip() {
        for n in [2, 3, 17, 1_000] {
            let named = arbiter_key("order-7", n);
            assert_ne!(named, "order-7");
            assert_eq!(split(&named), ("order-7", n));
        }
    }

    #[test]
    fn decisions_of_different_keys_never_share_a_name() {
        assert_ne!(arbiter_key("a", 2), arbiter_key("a\u{0}", 2));
        assert_ne!(arbiter_key("a", 12), arbiter_key("a", 2));
        assert_ne!(arbiter_key("a1", 2), arbiter_key("a", 12));
    }
}

//! What a reply means for the report. A claim refused by the promotion's rules (`sold_out`
//! once the slots are gone, `limit_reached`, `not_eligible`, `not_started`, `ended`) is the
//! server doing its job: it is an outcome, counted beside `held`, and a decision for the
//! decision rate. Everything else that failed (`unavailable`, `rate_limited`, timeouts,
//! closed sockets) is an error.

/// How the report counts a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// An answer the scenario expects, named `claim.held`, `claim.sold_out`, ...
    Outcome(String),
    /// Something went wrong.
    Error,
    /// A plain success with nothing to count beyond the reply itself.
    Reply,
}

/// Refusals of `claim` that are answers by the promotion's rules.
const CLAIM_ANSWERS: [&str; 5] = [
    "sold_out",
    "limit_reached",
    "not_eligible",
    "not_started",
    "ended",
];

/// Classifies the reply to `op`: `Ok(())` for a success, `Err(code)` for an error reply.
pub fn classify(op: &str, reply: Result<(), &str>) -> Class {
    match (op, reply) {
        ("claim", Ok(())) => Class::Outcome("claim.held".into()),
        ("claim", Err(code)) if CLAIM_ANSWERS.contains(&code) => {
            Class::Outcome(format!("claim.{code}"))
        }
        (_, Ok(())) => Class::Reply,
        (_, Err(_)) => Class::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_answers_to_a_claim_are_outcomes() {
        assert_eq!(
            classify("claim", Ok(())),
            Class::Outcome("claim.held".into())
        );
        for code in [
            "sold_out",
            "limit_reached",
            "not_eligible",
            "not_started",
            "ended",
        ] {
            assert_eq!(
                classify("claim", Err(code)),
                Class::Outcome(format!("claim.{code}"))
            );
        }
    }

    #[test]
    fn failures_stay_errors() {
        for code in [
            "unavailable",
            "rate_limited",
            "internal",
            "timeout",
            "forbidden",
        ] {
            assert_eq!(classify("claim", Err(code)), Class::Error, "{code}");
        }
        // A chat message refused as sold out would be a server bug, not an outcome.
        assert_eq!(classify("room.send", Err("sold_out")), Class::Error);
        assert_eq!(classify("room.send", Ok(())), Class::Reply);
    }
}

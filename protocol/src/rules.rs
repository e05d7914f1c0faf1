//! Activity rules: a promotion's audience (who may take part), requirements (what they must
//! have done) and reward (what they get), as data (SPEC section 13). A new kind of rule is one
//! variant here, its validation, and one evaluator in the actors crate: never a migration (the
//! rules are stored as one JSON text on the activity).
//!
//! [`ActivityRules::parse`] reads and checks the `rules` object of `POST /activities` and
//! `PUT /activities/{id}`; a refusal ([`RuleError`]) names the offending field by its path
//! (`rules.requires[1].min`). [`RuleKey`] names one rule in `unmet` lists, `not_eligible`
//! messages and the funnel's `stopped_by`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::EpochMs;

/// The highest count a requirement may ask for (a promotion asking for more is a typo).
pub const MAX_MIN: i64 = 1_000_000;
/// The most requirements one promotion may list.
pub const MAX_REQUIREMENTS: usize = 16;
/// Times in rules lie between these (2000-01-01 and 2100-01-01 UTC, in milliseconds), so a
/// time in seconds or microseconds is refused rather than read as a far date.
const EARLIEST_MS: EpochMs = 946_684_800_000;
const LATEST_MS: EpochMs = 4_102_444_800_000;

/// Who may take part. Every field narrows the audience; absent fields do not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Audience {
    /// Only users who follow the promotion's merchant.
    #[serde(default)]
    pub followers_only: bool,
    /// Only accounts registered before this instant (Unix epoch milliseconds): existing
    /// customers.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub registered_before: Option<EpochMs>,
    /// Only accounts registered at or after this instant (Unix epoch milliseconds): new users.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub new_users_since: Option<EpochMs>,
}

/// One thing a user must have done, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Requirement {
    /// Follows the promotion's merchant.
    FollowsMerchant,
    /// Published at least `min` posts (not deleted) since `since`.
    Posts {
        /// How many, 1 to 1,000,000.
        min: i64,
        /// Unix epoch milliseconds; posts before it do not count.
        #[cfg_attr(feature = "openapi", schema(value_type = i64))]
        since: EpochMs,
    },
    /// Invited at least `min` users who registered with their invite code.
    Invited {
        /// How many, 1 to 1,000,000.
        min: i64,
    },
    /// Has at least `min` confirmed (paid) claims from other promotions: of this merchant
    /// only (`merchant_only`), or of any merchant.
    ConfirmedClaims {
        /// How many, 1 to 1,000,000.
        min: i64,
        /// Count only claims of the promotion's merchant.
        #[serde(default)]
        merchant_only: bool,
    },
}

/// What a winner gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reward {
    /// A slot of an animal: the claim flow (hold, pay, confirm).
    #[default]
    Slot,
    /// A code from a pool the merchant uploads.
    Coupon,
}

/// A promotion's rules. The default (no audience limits, no requirements, a slot) lets
/// everyone take part, as a promotion without rules does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ActivityRules {
    /// Who may take part.
    #[serde(default)]
    pub audience: Audience,
    /// What they must have done, all of it.
    #[serde(default)]
    pub requires: Vec<Requirement>,
    /// What they get.
    #[serde(default)]
    pub reward: Reward,
}

/// One rule, as `unmet` lists, `not_eligible` messages and the funnel name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RuleKey {
    /// `audience.followers_only`.
    FollowersOnly,
    /// `audience.registered_before`.
    RegisteredBefore,
    /// `audience.new_users_since`.
    NewUsersSince,
    /// A `follows_merchant` requirement.
    FollowsMerchant,
    /// A `posts` requirement.
    Posts,
    /// An `invited` requirement.
    Invited,
    /// A `confirmed_claims` requirement.
    ConfirmedClaims,
}

impl RuleKey {
    /// Every key, in documentation order.
    pub const ALL: [RuleKey; 7] = [
        RuleKey::FollowersOnly,
        RuleKey::RegisteredBefore,
        RuleKey::NewUsersSince,
        RuleKey::FollowsMerchant,
        RuleKey::Posts,
        RuleKey::Invited,
        RuleKey::ConfirmedClaims,
    ];

    /// The wire name, e.g. `"followers_only"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKey::FollowersOnly => "followers_only",
            RuleKey::RegisteredBefore => "registered_before",
            RuleKey::NewUsersSince => "new_users_since",
            RuleKey::FollowsMerchant => "follows_merchant",
            RuleKey::Posts => "posts",
            RuleKey::Invited => "invited",
            RuleKey::ConfirmedClaims => "confirmed_claims",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<RuleKey> {
        RuleKey::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A rule a user does not meet: which, and for a count, how many are needed and how many the
/// user has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Unmet {
    /// The rule.
    pub rule: RuleKey,
    /// For a count (`posts`, `invited`, `confirmed_claims`): how many are needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need: Option<i64>,
    /// For a count: how many the user has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub have: Option<i64>,
}

impl Unmet {
    /// An unmet yes/no rule.
    pub fn flag(rule: RuleKey) -> Unmet {
        Unmet {
            rule,
            need: None,
            have: None,
        }
    }

    /// An unmet count.
    pub fn count(rule: RuleKey, need: i64, have: i64) -> Unmet {
        Unmet {
            rule,
            need: Some(need),
            have: Some(have),
        }
    }

    /// What the user is missing, in plain words (a `not_eligible` message is made of these).
    pub fn describe(&self) -> String {
        let counted = |what: &str| match (self.need, self.have) {
            (Some(need), Some(have)) => format!("{what}: {need} needed, you have {have}"),
            _ => what.to_string(),
        };
        match self.rule {
            RuleKey::FollowersOnly => "followers of the merchant only".into(),
            RuleKey::RegisteredBefore => {
                "accounts registered before the promotion's date only".into()
            }
            RuleKey::NewUsersSince => "new accounts only".into(),
            RuleKey::FollowsMerchant => "follow the merchant".into(),
            RuleKey::Posts => counted("posts"),
            RuleKey::Invited => counted("invited friends who registered"),
            RuleKey::ConfirmedClaims => counted("confirmed claims"),
        }
    }
}

/// Why a `rules` object was refused: the offending field's path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    /// The field, from `rules` down (e.g. `rules.requires[1].min`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn refuse(field: impl Into<String>, message: impl Into<String>) -> RuleError {
    RuleError {
        field: field.into(),
        message: message.into(),
    }
}

fn check_time(field: &str, at: EpochMs) -> Result<(), RuleError> {
    if (EARLIEST_MS..=LATEST_MS).contains(&at) {
        Ok(())
    } else {
        Err(refuse(
            field,
            "must be Unix epoch milliseconds between 2000 and 2100",
        ))
    }
}

fn check_min(field: String, min: i64) -> Result<(), RuleError> {
    if (1..=MAX_MIN).contains(&min) {
        Ok(())
    } else {
        Err(refuse(field, format!("must be 1 to {MAX_MIN}")))
    }
}

/// The JSON object under `value`, or a refusal naming `field`.
fn object<'a>(
    value: &'a Value,
    field: &str,
) -> Result<&'a serde_json::Map<String, Value>, RuleError> {
    value
        .as_object()
        .ok_or_else(|| refuse(field, "must be an object"))
}

/// Decodes `value` as `T`, a refusal naming `field` (with serde's reason: an unknown kind or
/// field, a wrong type) otherwise.
fn decode<T: serde::de::DeserializeOwned>(value: &Value, field: &str) -> Result<T, RuleError> {
    serde_json::from_value(value.clone()).map_err(|err| refuse(field, err.to_string()))
}

impl ActivityRules {
    /// Reads and checks a `rules` object (`null` is no rules).
    pub fn parse(value: &Value) -> Result<ActivityRules, RuleError> {
        if value.is_null() {
            return Ok(ActivityRules::default());
        }
        let fields = object(value, "rules")?;
        if let Some(unknown) = fields
            .keys()
            .find(|k| !matches!(k.as_str(), "audience" | "requires" | "reward"))
        {
            return Err(refuse(
                format!("rules.{unknown}"),
                "unknown field (expected audience, requires, reward)",
            ));
        }
        let audience = match fields.get("audience") {
            None | Some(Value::Null) => Audience::default(),
            Some(v) => {
                object(v, "rules.audience")?;
                decode(v, "rules.audience")?
            }
        };
        let requires = match fields.get("requires") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let field = format!("rules.requires[{i}]");
                    object(v, &field)?;
                    decode(v, &field)
                })
                .collect::<Result<Vec<Requirement>, RuleError>>()?,
            Some(_) => return Err(refuse("rules.requires", "must be an array")),
        };
        let reward = match fields.get("reward") {
            None | Some(Value::Null) => Reward::default(),
            Some(v) => {
                object(v, "rules.reward")?;
                decode(v, "rules.reward")?
            }
        };
        let rules = ActivityRules {
            audience,
            requires,
            reward,
        };
        rules.validate()?;
        Ok(rules)
    }

    /// Checks values and combinations: counts and times in range, no rule listed twice, an
    /// audience window that is not empty.
    pub fn validate(&self) -> Result<(), RuleError> {
        let a = &self.audience;
        if let Some(at) = a.registered_before {
            check_time("rules.audience.registered_before", at)?;
        }
        if let Some(at) = a.new_users_since {
            check_time("rules.audience.new_users_since", at)?;
        }
        if let (Some(before), Some(since)) = (a.registered_before, a.new_users_since)
            && since >= before
        {
            return Err(refuse(
                "rules.audience.new_users_since",
                "must be before registered_before (no account could be both)",
            ));
        }
        if self.requires.len() > MAX_REQUIREMENTS {
            return Err(refuse(
                "rules.requires",
                format!("at most {MAX_REQUIREMENTS} requirements"),
            ));
        }
        let mut seen = Vec::new();
        for (i, req) in self.requires.iter().enumerate() {
            let field = format!("rules.requires[{i}]");
            let key = req.key();
            if seen.contains(&key) {
                return Err(refuse(
                    field,
                    format!(
                        "{} is listed twice (give one, with the strictest values)",
                        key.as_str()
                    ),
                ));
            }
            seen.push(key);
            match *req {
                Requirement::FollowsMerchant => {}
                Requirement::Posts { min, since } => {
                    check_min(format!("{field}.min"), min)?;
                    check_time(&format!("{field}.since"), since)?;
                }
                Requirement::Invited { min } | Requirement::ConfirmedClaims { min, .. } => {
                    check_min(format!("{field}.min"), min)?;
                }
            }
        }
        Ok(())
    }

    /// Whether anyone may take part without any fact being read (no audience limit, no
    /// requirement).
    pub fn is_open(&self) -> bool {
        self.audience == Audience::default() && self.requires.is_empty()
    }

    /// The rules a user may be stopped by, in the order they are checked.
    pub fn keys(&self) -> Vec<RuleKey> {
        let a = &self.audience;
        let mut keys = Vec::new();
        if a.followers_only {
            keys.push(RuleKey::FollowersOnly);
        }
        if a.registered_before.is_some() {
            keys.push(RuleKey::RegisteredBefore);
        }
        if a.new_users_since.is_some() {
            keys.push(RuleKey::NewUsersSince);
        }
        keys.extend(self.requires.iter().map(Requirement::key));
        keys
    }

    /// The earliest `since` of a `posts` requirement: the posts a user's facts must count.
    pub fn posts_since(&self) -> Option<EpochMs> {
        self.requires
            .iter()
            .filter_map(|r| match r {
                Requirement::Posts { since, .. } => Some(*since),
                _ => None,
            })
            .min()
    }
}

impl Requirement {
    /// The rule's name.
    pub fn key(&self) -> RuleKey {
        match self {
            Requirement::FollowsMerchant => RuleKey::FollowsMerchant,
            Requirement::Posts { .. } => RuleKey::Posts,
            Requirement::Invited { .. } => RuleKey::Invited,
            Requirement::ConfirmedClaims { .. } => RuleKey::ConfirmedClaims,
        }
    }
}

/// The `not_eligible` message for `unmet`: every missing rule, in plain words.
pub fn not_eligible_message(unmet: &[Unmet]) -> String {
    let parts: Vec<String> = unmet.iter().map(Unmet::describe).collect();
    format!("not eligible for this promotion: {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(value: Value) -> String {
        match ActivityRules::parse(&value) {
            Ok(rules) => format!("accepted {rules:?}"),
            Err(err) => err.field,
        }
    }

    #[test]
    fn the_spec_example_parses_and_round_trips() {
        let value = json!({
            "audience": {"followers_only": true, "registered_before": 1_796_000_000_000_i64, "new_users_since": null},
            "requires": [
                {"kind": "follows_merchant"},
                {"kind": "posts", "min": 3, "since": 1_795_000_000_000_i64},
                {"kind": "invited", "min": 1},
                {"kind": "confirmed_claims", "min": 1, "merchant_only": true}
            ],
            "reward": {"kind": "slot"}
        });
        let rules = ActivityRules::parse(&value).unwrap_or_default();
        assert_eq!(rules.requires.len(), 4);
        assert!(rules.audience.followers_only);
        assert_eq!(rules.posts_since(), Some(1_795_000_000_000));
        assert_eq!(
            rules.keys(),
            vec![
                RuleKey::FollowersOnly,
                RuleKey::RegisteredBefore,
                RuleKey::FollowsMerchant,
                RuleKey::Posts,
                RuleKey::Invited,
                RuleKey::ConfirmedClaims
            ]
        );
        let back = serde_json::to_value(&rules).unwrap_or_default();
        assert_eq!(ActivityRules::parse(&back), Ok(rules));
    }

    #[test]
    fn absent_and_null_rules_let_everyone_in() {
        for value in [Value::Null, json!({}), json!({"requires": []})] {
            let rules = ActivityRules::parse(&value).unwrap_or_else(|e| panic!("{e}"));
            assert!(rules.is_open());
            assert_eq!(rules.reward, Reward::Slot);
        }
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (json!([]), "rules"),
            (json!({"audiance": {}}), "rules.audiance"),
            (json!({"audience": {"followers": true}}), "rules.audience"),
            (json!({"audience": 3}), "rules.audience"),
            (
                json!({"requires": [{"kind": "follows_merchant"}, {"kind": "teleport"}]}),
                "rules.requires[1]",
            ),
            (json!({"requires": [{"min": 2}]}), "rules.requires[0]"),
            (json!({"requires": {"kind": "invited"}}), "rules.requires"),
            (
                json!({"requires": [{"kind": "invited", "min": 0}]}),
                "rules.requires[0].min",
            ),
            (
                json!({"requires": [{"kind": "posts", "min": 2, "since": 1_795_000_000}]}),
                "rules.requires[0].since",
            ),
            (
                json!({"requires": [{"kind": "posts", "min": 2}]}),
                "rules.requires[0]",
            ),
            (
                json!({"requires": [{"kind": "invited", "min": 1}, {"kind": "invited", "min": 2}]}),
                "rules.requires[1]",
            ),
            (
                json!({"requires": [{"kind": "invited", "min": 1, "max": 3}]}),
                "rules.requires[0]",
            ),
            (
                json!({"audience": {"registered_before": 1_795_000_000_000_i64, "new_users_since": 1_796_000_000_000_i64}}),
                "rules.audience.new_users_since",
            ),
            (json!({"reward": {"kind": "cash"}}), "rules.reward"),
        ];
        for (value, field) in cases {
            assert_eq!(field_of(value.clone()), field, "{value}");
        }
    }

    #[test]
    fn an_audience_window_and_every_kind_are_accepted() {
        let value = json!({
            "audience": {"registered_before": 1_796_000_000_000_i64, "new_users_since": 1_795_000_000_000_i64},
            "requires": [{"kind": "confirmed_claims", "min": 2}],
            "reward": {"kind": "coupon"}
        });
        let rules = ActivityRules::parse(&value).unwrap_or_default();
        assert_eq!(rules.reward, Reward::Coupon);
        assert_eq!(
            rules.requires,
            vec![Requirement::ConfirmedClaims {
                min: 2,
                merchant_only: false
            }]
        );
        assert!(!rules.is_open());
    }

    #[test]
    fn rule_keys_round_trip_and_messages_name_what_is_missing() {
        for key in RuleKey::ALL {
            let json = serde_json::to_string(&key).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", key.as_str()));
            assert_eq!(RuleKey::parse(key.as_str()), Some(key));
        }
        let message = not_eligible_message(&[
            Unmet::flag(RuleKey::FollowsMerchant),
            Unmet::count(RuleKey::Posts, 3, 1),
        ]);
        assert!(message.contains("follow the merchant"), "{message}");
        assert!(message.contains("posts: 3 needed, you have 1"), "{message}");
        let wire = serde_json::to_value(Unmet::flag(RuleKey::FollowersOnly)).unwrap_or_default();
        assert_eq!(wire, json!({"rule": "followers_only"}));
    }
}

//! Every rule kind, with one eligible and one ineligible user each, on both engines: the
//! subscribe reply says `eligible` and names what is unmet, the eligible user's claim is
//! held, the other's is refused `not_eligible` naming the rule. In cluster mode the claims go
//! to the second node, which never saw the users subscribe (it reads their facts once each,
//! and no more for a second claim); the node they subscribed on reads none for their claims.

use corral_protocol::Role;
use serde_json::{Value, json};

use super::fixtures::{confirmed_claim, follow, invited, post, promo_with_rules, registered_at};
use crate::claims::{Promo, bulk_users, now_ms};
use crate::support::{Engine, TestApp};

/// A day ago and now, as registration times.
const DAY_MS: i64 = 86_400_000;

/// One rule kind to try: its rules, and the rule an ineligible user is missing.
struct Case {
    name: &'static str,
    rules: Value,
    unmet: &'static str,
}

fn cases(since: i64) -> Vec<Case> {
    vec![
        Case {
            name: "followers only",
            rules: json!({"audience": {"followers_only": true}}),
            unmet: "followers_only",
        },
        Case {
            name: "registered before",
            rules: json!({"audience": {"registered_before": since}}),
            unmet: "registered_before",
        },
        Case {
            name: "new users since",
            rules: json!({"audience": {"new_users_since": since}}),
            unmet: "new_users_since",
        },
        Case {
            name: "follows the merchant",
            rules: json!({"requires": [{"kind": "follows_merchant"}]}),
            unmet: "follows_merchant",
        },
        Case {
            name: "posts since",
            rules: json!({"requires": [{"kind": "posts", "min": 2, "since": since}]}),
            unmet: "posts",
        },
        Case {
            name: "invited",
            rules: json!({"requires": [{"kind": "invited", "min": 1}]}),
            unmet: "invited",
        },
        Case {
            name: "confirmed claims at this merchant",
            rules: json!({"requires": [{"kind": "confirmed_claims", "min": 1, "merchant_only": true}]}),
            unmet: "confirmed_claims",
        },
        Case {
            name: "confirmed claims anywhere",
            rules: json!({"requires": [{"kind": "confirmed_claims", "min": 1}]}),
            unmet: "confirmed_claims",
        },
        Case {
            name: "followers registered before (a combination)",
            rules: json!({"audience": {"followers_only": true, "registered_before": since}}),
            unmet: "registered_before",
        },
    ]
}

/// Gives `yes` the facts the case asks for and `no` facts just short of them.
async fn facts(app: &TestApp, case: &Case, since: i64, merchant: i64, yes: i64, no: i64) {
    let pool = &app.state.db.pool;
    match case.unmet {
        "followers_only" | "follows_merchant" => follow(pool, yes, merchant).await,
        "registered_before" => {
            if case.rules["audience"]["followers_only"] == true {
                follow(pool, yes, merchant).await;
                follow(pool, no, merchant).await;
            }
            registered_at(pool, yes, since - DAY_MS).await;
            registered_at(pool, no, now_ms()).await;
        }
        "new_users_since" => {
            registered_at(pool, yes, now_ms()).await;
            registered_at(pool, no, since - 1).await;
        }
        "posts" => {
            post(pool, yes, since + 1).await;
            post(pool, yes, now_ms()).await;
            post(pool, no, since - 1).await;
            post(pool, no, now_ms()).await;
        }
        "invited" => {
            let friend = bulk_users(app, 1, Role::User).await[0].0;
            invited(pool, yes, friend).await;
            // An invitation the other way round does not count for the invitee.
            let inviter = bulk_users(app, 1, Role::User).await[0].0;
            let late = bulk_users(app, 1, Role::User).await[0].0;
            invited(pool, inviter, late).await;
            let _ = no;
        }
        "confirmed_claims" => {
            confirmed_claim(app, yes, Some(merchant)).await;
            if case.rules["requires"][0]["merchant_only"] == true {
                // A claim at another merchant only.
                confirmed_claim(app, no, None).await;
            }
        }
        other => panic!("no facts for {other}"),
    }
}

async fn each_kind(subscribe_on: &TestApp, claim_on: &TestApp) {
    let since = now_ms() - DAY_MS;
    for case in cases(since) {
        let (activity, merchant, _) =
            promo_with_rules(subscribe_on, &Promo::open(2), &case.rules).await;
        let users = bulk_users(subscribe_on, 2, Role::User).await;
        let ((yes, yes_token), (no, no_token)) = (users[0].clone(), users[1].clone());
        facts(subscribe_on, &case, since, merchant, yes, no).await;

        let mut ws = subscribe_on.client(Some(&yes_token)).await;
        let sub = ws
            .request("activity.subscribe", json!({"activity": activity}))
            .await
            .expect("subscribe");
        assert_eq!(
            (sub["eligible"].clone(), sub["unmet"].clone()),
            (json!(true), json!([])),
            "{}: {sub}",
            case.name
        );
        let mut other = subscribe_on.client(Some(&no_token)).await;
        let sub = other
            .request("activity.subscribe", json!({"activity": activity}))
            .await
            .expect("subscribe");
        assert_eq!(sub["eligible"], false, "{}: {sub}", case.name);
        let rules: Vec<&str> = sub["unmet"]
            .as_array()
            .expect("unmet")
            .iter()
            .filter_map(|u| u["rule"].as_str())
            .collect();
        assert_eq!(rules, vec![case.unmet], "{}: {sub}", case.name);

        // A node that saw the users subscribe reads no facts for their claims; one that did
        // not reads each user's once, however often they claim.
        let reads_before = claim_on.state.hub.claims.facts_read();
        let mut ws = claim_on.client(Some(&yes_token)).await;
        let held = ws
            .request("claim", json!({"activity": activity, "key": "k"}))
            .await;
        assert_eq!(
            held.map(|ok| ok["status"].clone()).ok(),
            Some(json!("held")),
            "{}",
            case.name
        );
        let mut other = claim_on.client(Some(&no_token)).await;
        let refused = other
            .request("claim", json!({"activity": activity, "key": "k"}))
            .await
            .expect_err("not eligible");
        assert_eq!(
            refused.code.as_str(),
            "not_eligible",
            "{}: {refused:?}",
            case.name
        );
        assert!(
            refused.message.starts_with("not eligible"),
            "{}: {}",
            case.name,
            refused.message
        );
        let again = other
            .request("claim", json!({"activity": activity, "key": "k2"}))
            .await
            .expect_err("still not eligible");
        assert_eq!(again.code.as_str(), "not_eligible");
        let same_node = std::ptr::eq(subscribe_on, claim_on);
        assert_eq!(
            claim_on.state.hub.claims.facts_read() - reads_before,
            if same_node { 0 } else { 2 },
            "{}: facts read for the claims",
            case.name
        );
        let _ = no;
    }
}

#[actix_web::test]
async fn each_rule_kind_admits_the_eligible_and_refuses_the_rest_embedded() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    each_kind(&app, &app).await;
}

#[actix_web::test]
async fn each_rule_kind_admits_the_eligible_and_refuses_the_rest_on_postgres_and_redis() {
    let nodes = TestApp::cluster(2, |_| {}).await;
    each_kind(&nodes[0], &nodes[1]).await;
}

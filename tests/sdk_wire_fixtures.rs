//! Keeps the TypeScript SDK's wire types (`clients/js/src/wire.ts`) from drifting from
//! `corral-protocol`: serializes a sample of every op's parameters and reply, every push and
//! every enum from the Rust types into `clients/js/wire-fixtures.json`, and fails when the
//! committed file differs. The SDK's `wire.test.ts` decodes every fixture strictly (unknown
//! fields are errors) and checks the field sets match, so a change on either side fails a test.
//!
//! After changing the protocol: `CORRAL_BLESS_FIXTURES=1 cargo test --test sdk_wire_fixtures`,
//! then `npm test` in clients/js.

#![allow(clippy::expect_used)]

use corral_protocol::ops::*;
use corral_protocol::rules::{RuleKey, Unmet};
use corral_protocol::{ErrorBody, ErrorCode, Push, Role, SUBPROTOCOL, limits::close, reply};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/js/wire-fixtures.json");
const PUSH_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/protocol/src/push.rs");

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("protocol types serialize")
}

fn message(seq: u64) -> ChatMessage {
    ChatMessage {
        room: 12,
        seq,
        from: 7,
        text: format!("message {seq}"),
        ts: 1_763_779_000_000 + seq as i64,
        client_msg_id: format!("a-{seq}"),
    }
}

fn post(animal: Option<AnimalId>) -> Post {
    Post {
        post_id: 77,
        author: 42,
        text: "Morning at the farm".into(),
        media: vec!["https://cdn.example/a.jpg".into()],
        animal,
        likes: 3,
        comments: 4,
        created_at: 1_763_780_000_000,
    }
}

/// Parameter and reply samples per op: each `Option` both set and unset.
fn op_samples(name: &str) -> (Vec<Value>, Vec<Value>) {
    let page = |next_before| PostsPage {
        posts: vec![post(None), post(Some(5))],
        next_before,
    };
    let like = LikeOk {
        likes: 3,
        changed: true,
    };
    match name {
        "auth" => (
            vec![to_value(&AuthParams {
                token: "eyJ0".into(),
            })],
            vec![to_value(&AuthOk {
                user_id: 42,
                role: Role::Merchant,
                server_time: 1_795_314_187_012,
            })],
        ),
        "time.sync" => (
            vec![to_value(&TimeSyncParams {
                client_time: 1_795_314_187_000,
            })],
            vec![to_value(&TimeSyncOk {
                client_time: 1_795_314_187_000,
                server_time: 1_795_314_187_012,
            })],
        ),
        "room.join" => (
            vec![
                to_value(&RoomJoinParams {
                    room: 12,
                    since: Some(40),
                }),
                to_value(&RoomJoinParams {
                    room: 12,
                    since: None,
                }),
            ],
            vec![to_value(&RoomJoinOk {
                room: 12,
                last_seq: 43,
                epoch: 1_763_778_000_000,
                missed: vec![message(41), message(42), message(43)],
                truncated: false,
                caught_up: true,
                online: vec![9, 7],
                online_count: 2,
            })],
        ),
        "room.leave" => (
            vec![to_value(&RoomRef { room: 12 })],
            vec![to_value(&RoomLeaveOk {})],
        ),
        "room.send" => (
            vec![to_value(&RoomSendParams {
                room: 12,
                text: "hello".into(),
                client_msg_id: "a-3".into(),
            })],
            vec![to_value(&RoomSendOk {
                seq: 44,
                ts: 1_763_779_001_000,
            })],
        ),
        "room.history" => (
            vec![
                to_value(&RoomHistoryParams {
                    room: 12,
                    before_seq: Some(41),
                    limit: 2,
                }),
                to_value(&RoomHistoryParams {
                    room: 12,
                    before_seq: None,
                    limit: 50,
                }),
            ],
            vec![to_value(&RoomHistoryOk {
                messages: vec![message(39), message(40)],
            })],
        ),
        "dm.send" => (
            vec![to_value(&DmSendParams {
                to: 9,
                text: "psst".into(),
                client_msg_id: "a-4".into(),
            })],
            vec![to_value(&DmSendOk {
                room: 31,
                seq: 1,
                ts: 1_763_779_002_000,
            })],
        ),
        "follow" | "unfollow" => (
            vec![to_value(&UserRef { user: 42 })],
            vec![to_value(&Done {})],
        ),
        "feed.post" => (
            vec![
                to_value(&FeedPostParams {
                    text: "Daisy had a bath".into(),
                    media: vec!["https://cdn.example/a.jpg".into()],
                    animal: Some(5),
                }),
                to_value(&FeedPostParams {
                    text: "Morning".into(),
                    media: vec![],
                    animal: None,
                }),
            ],
            vec![to_value(&FeedPostOk {
                post_id: 77,
                created_at: 1_763_780_000_000,
            })],
        ),
        "feed.timeline" => (
            vec![
                to_value(&FeedTimelineParams {
                    before: Some(77),
                    limit: 20,
                }),
                to_value(&FeedTimelineParams {
                    before: None,
                    limit: 20,
                }),
            ],
            vec![to_value(&page(Some(58))), to_value(&page(None))],
        ),
        "feed.profile" => (
            vec![
                to_value(&FeedProfileParams {
                    user: 42,
                    before: Some(77),
                    limit: 20,
                }),
                to_value(&FeedProfileParams {
                    user: 42,
                    before: None,
                    limit: 20,
                }),
            ],
            vec![to_value(&page(None))],
        ),
        "feed.like" | "feed.unlike" => {
            (vec![to_value(&PostRef { post: 77 })], vec![to_value(&like)])
        }
        "feed.comment" => (
            vec![to_value(&FeedCommentParams {
                post: 77,
                text: "So cute!".into(),
            })],
            vec![to_value(&CommentOk {
                comment_id: 901,
                comments: 4,
            })],
        ),
        "feed.delete" => (
            vec![to_value(&PostRef { post: 77 })],
            vec![to_value(&Done {})],
        ),
        "activity.subscribe" => (
            vec![to_value(&ActivityRef { activity: 7 })],
            activity_states()
                .into_iter()
                .map(|state| {
                    let eligible = state != ActivityState::Scheduled;
                    to_value(&ActivitySubscribeOk {
                        activity: 7,
                        state,
                        starts_at: 1_795_314_247_000,
                        ends_at: 1_795_317_847_000,
                        stock_left: 40,
                        server_time: 1_795_314_187_012,
                        eligible,
                        unmet: if eligible { vec![] } else { unmet() },
                    })
                })
                .collect(),
        ),
        "activity.unsubscribe" => (
            vec![to_value(&ActivityRef { activity: 7 })],
            vec![json!({})],
        ),
        "claim" => (
            vec![
                to_value(&ClaimParams {
                    activity: 12,
                    item: Some(31),
                    key: "c7d1e0f4".into(),
                }),
                to_value(&ClaimParams {
                    activity: 12,
                    item: None,
                    key: "c7d1e0f5".into(),
                }),
            ],
            ClaimStatus::ALL
                .iter()
                .map(|&status| {
                    to_value(&ClaimOk {
                        claim_id: 901,
                        item: 31,
                        status,
                        expires_at: 1_795_000_300_000,
                        coupon_code: coupon_sample(status),
                    })
                })
                .collect(),
        ),
        "claim.cancel" => (
            vec![to_value(&ClaimCancelParams { claim_id: 901 })],
            vec![to_value(&ClaimCancelOk {
                status: ClaimStatus::Cancelled,
            })],
        ),
        other => panic!(
            "op `{other}` has no fixture: add its parameters and reply here, then to the SDK"
        ),
    }
}

/// Unmet rules: a yes/no one and a count.
fn unmet() -> Vec<Unmet> {
    vec![
        Unmet::flag(RuleKey::FollowersOnly),
        Unmet::count(RuleKey::Posts, 3, 1),
    ]
}

// The enums without an `ALL` list: each match fails to compile when a variant is added, until
// it is listed (and sampled) here.

fn activity_states() -> [ActivityState; 4] {
    use ActivityState::*;
    let all = [Scheduled, Live, Ended, Cancelled];
    for state in all {
        match state {
            Scheduled | Live | Ended | Cancelled => {}
        }
    }
    all
}

fn end_reasons() -> [EndReason; 3] {
    use EndReason::*;
    let all = [Time, Cancelled, SoldOut];
    for reason in all {
        match reason {
            Time | Cancelled | SoldOut => {}
        }
    }
    all
}

fn presence_states() -> [PresenceState; 2] {
    use PresenceState::*;
    let all = [Joined, Left];
    for state in all {
        match state {
            Joined | Left => {}
        }
    }
    all
}

fn roles() -> [Role; 3] {
    let all = [Role::User, Role::Merchant, Role::Admin];
    for role in all {
        match role {
            Role::User | Role::Merchant | Role::Admin => {}
        }
    }
    all
}

fn pushes() -> Vec<Push> {
    let mut out = vec![
        Push::GoingAway {
            reconnect_after_ms: 2300,
        },
        Push::RoomMessage(message(44)),
        Push::ActivityCountdown {
            activity: 7,
            seconds_left: 10,
            server_time: 1_795_314_237_001,
        },
        Push::ActivityStarted {
            activity: 7,
            server_time: 1_795_314_247_001,
        },
        Push::ActivityBroadcast {
            activity: 7,
            text: "Piglets at noon!".into(),
            ts: 1_795_314_200_000,
        },
        Push::ActivityStock {
            activity: 12,
            left: 37,
        },
        Push::ActivityEligibility {
            activity: 12,
            eligible: false,
            unmet: unmet(),
        },
        Push::ActivityEligibility {
            activity: 12,
            eligible: true,
            unmet: vec![],
        },
        Push::FeedPost {
            post: post(Some(5)),
        },
        Push::FeedPost { post: post(None) },
        Push::FeedLiked { post: 77, by: 43 },
        Push::FeedCommented {
            post: 77,
            by: 43,
            text: "So cute!".into(),
        },
    ];
    for state in presence_states() {
        out.push(Push::Presence {
            room: 12,
            user: 9,
            state,
        });
    }
    for reason in end_reasons() {
        out.push(Push::ActivityEnded {
            activity: 7,
            reason,
            server_time: 1_795_317_847_002,
        });
    }
    for status in ClaimStatus::ALL {
        out.push(Push::ClaimUpdated {
            claim_id: 901,
            activity: 12,
            item: 31,
            status,
            coupon_code: coupon_sample(status),
        });
    }
    out
}

/// A coupon promotion's code on an active claim; none on the others.
fn coupon_sample(status: ClaimStatus) -> Option<String> {
    matches!(status, ClaimStatus::Held | ClaimStatus::Confirmed).then(|| "SPRING-7Q2X".into())
}

/// The `ev` names declared in push.rs (`Push` is `#[non_exhaustive]`, so a match outside its
/// crate cannot prove every variant has a sample: the source is the list).
fn declared_push_names() -> Vec<String> {
    let source = std::fs::read_to_string(PUSH_SOURCE).expect("read protocol/src/push.rs");
    source
        .split("#[serde(rename = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

fn fixtures() -> Value {
    let mut ops = Map::new();
    for name in OP_NAMES {
        let (params, ok) = op_samples(name);
        ops.insert((*name).into(), json!({ "params": params, "ok": ok }));
    }
    let pushes: Vec<Value> = pushes().iter().map(to_value).collect();
    let mut sampled: Vec<String> = pushes
        .iter()
        .filter_map(|p| p.get("ev").and_then(Value::as_str).map(str::to_string))
        .collect();
    sampled.sort();
    sampled.dedup();
    let mut declared = declared_push_names();
    declared.sort();
    assert_eq!(
        sampled, declared,
        "every push declared in protocol/src/push.rs needs a sample here"
    );
    json!({
        "subprotocol": SUBPROTOCOL,
        "error_codes": ErrorCode::ALL.map(ErrorCode::as_str),
        "roles": roles().map(Role::as_str),
        "claim_statuses": ClaimStatus::ALL.map(ClaimStatus::as_str),
        "rule_keys": RuleKey::ALL.map(RuleKey::as_str),
        "activity_states": activity_states(),
        "end_reasons": end_reasons(),
        "presence_states": presence_states(),
        "close_codes": {
            "NORMAL": close::NORMAL,
            "GOING_AWAY": close::GOING_AWAY,
            "UNSUPPORTED": close::UNSUPPORTED,
            "POLICY": close::POLICY,
            "TOO_LARGE": close::TOO_LARGE,
            "IDLE": close::IDLE,
            "SLOW_CONSUMER": close::SLOW_CONSUMER,
            "TRY_AGAIN_LATER": close::TRY_AGAIN_LATER,
        },
        "error_replies": error_replies(),
        "retry_close_reason": corral_actors::retry_hint::close_reason(Duration::from_millis(2_300)),
        "ops": ops,
        "pushes": pushes,
    })
}

/// Error reply frames as the node writes them: a plain one, and a shed one carrying the
/// server's retry hint.
fn error_replies() -> Vec<Value> {
    let plain = ErrorBody::new(ErrorCode::NotFound, "no such room");
    let shed = ErrorBody::new(
        ErrorCode::Unavailable,
        "the node is overloaded; retry shortly",
    )
    .with_retry_after(Duration::from_millis(2_300));
    [
        reply::failure(Some(4), &plain),
        reply::failure(Some(5), &shed),
    ]
    .iter()
    .map(|text| serde_json::from_str(text).expect("a reply frame"))
    .collect()
}

#[test]
fn sdk_wire_fixtures_match_the_protocol_types() {
    let expected = serde_json::to_string_pretty(&fixtures()).expect("encode fixtures") + "\n";
    if std::env::var_os("CORRAL_BLESS_FIXTURES").is_some() {
        std::fs::write(FIXTURES, &expected).expect("write clients/js/wire-fixtures.json");
        return;
    }
    let committed = std::fs::read_to_string(FIXTURES).unwrap_or_default();
    assert!(
        committed == expected,
        "clients/js/wire-fixtures.json is out of date with corral-protocol: run \
         `CORRAL_BLESS_FIXTURES=1 cargo test --test sdk_wire_fixtures`, then `npm test` in \
         clients/js (and update src/wire.ts until it passes)"
    );
}

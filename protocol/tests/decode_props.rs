//! Property tests of the frame decoder: whatever a client sends — arbitrary text, arbitrary
//! JSON, or a known op with arbitrary fields — decoding never panics, and every frame that is
//! not a request yields an error reply that a client can parse, carrying the request's id when
//! the frame had a readable one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use corral_protocol::ops::OP_NAMES;
use corral_protocol::{ErrorCode, ServerFrame, decode_request, reply};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Arbitrary JSON values, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A request-shaped object: an id (sometimes not a number), a known or unknown op, and
/// arbitrary parameters under plausible and random names.
fn request_like() -> impl Strategy<Value = Value> {
    let names = prop_oneof![
        prop::sample::select(OP_NAMES).prop_map(str::to_string),
        "[a-z.]{0,12}",
    ];
    let fields = prop::collection::btree_map(
        prop_oneof![
            prop::sample::select(
                &[
                    "room",
                    "text",
                    "client_msg_id",
                    "since",
                    "limit",
                    "activity",
                    "key",
                    "item",
                    "token",
                    "to",
                    "user",
                    "post",
                    "claim_id",
                    "before",
                    "client_time",
                    "media",
                ][..]
            )
            .prop_map(str::to_string),
            ".{0,6}",
        ],
        any_json(),
        0..6,
    );
    (
        prop::option::of(any_json()),
        prop::option::of(names),
        fields,
    )
        .prop_map(|(id, op, fields)| {
            let mut map: Map<String, Value> = fields.into_iter().collect();
            if let Some(id) = id {
                map.insert("id".into(), id);
            }
            if let Some(op) = op {
                map.insert("op".into(), Value::String(op));
            }
            Value::Object(map)
        })
}

/// Decodes `text`; on failure, checks the error reply a client would get.
fn check(text: &str) -> Result<(), TestCaseError> {
    let readable_id = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_u64));
    match decode_request(text) {
        Ok(request) => prop_assert_eq!(Some(request.id), readable_id),
        Err(err) => {
            prop_assert!(matches!(
                err.error.code,
                ErrorCode::BadRequest | ErrorCode::UnknownOp
            ));
            prop_assert!(!err.error.message.is_empty());
            let frame = reply::error(err.id, err.error.code, &err.error.message);
            match ServerFrame::parse(&frame) {
                Ok(ServerFrame::Reply { re, result }) => {
                    prop_assert_eq!(re, err.id);
                    prop_assert_eq!(result.map_err(|e| e.code), Err(err.error.code));
                }
                other => prop_assert!(false, "unparseable error reply {other:?}"),
            }
            if readable_id.is_some() {
                prop_assert_eq!(err.id, readable_id);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_text_never_panics_and_gets_a_reply(text in ".{0,256}") {
        check(&text)?;
    }

    #[test]
    fn arbitrary_bytes_read_as_text_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        // The transport refuses invalid UTF-8; whatever survives lossy conversion still decodes.
        check(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn arbitrary_json_never_panics_and_gets_a_reply(value in any_json()) {
        check(&value.to_string())?;
    }

    #[test]
    fn request_shaped_frames_decode_or_get_a_reply(value in request_like()) {
        check(&value.to_string())?;
    }
}

//! The frame envelope: decoding client requests, encoding replies, and parsing server frames
//! on the client side.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ErrorBody, ErrorCode, Op, Push};

/// A decoded client request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Client-chosen id, echoed as `re` in the reply.
    pub id: u64,
    /// The operation and its parameters.
    pub op: Op,
}

/// Why a text frame is not a valid request. The connection stays open: the server answers
/// with an error reply carrying `re` when the id could be read, `null` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct DecodeError {
    /// The request id, when the frame had a readable one.
    pub id: Option<u64>,
    /// The error to answer: `bad_request` or `unknown_op`, and what was wrong.
    pub error: ErrorBody,
    /// The op name, when it could be read (for metrics).
    pub op: Option<String>,
}

#[derive(Deserialize)]
struct Head {
    id: Option<u64>,
    op: Option<String>,
}

/// Decodes one text frame into a [`Request`].
pub fn decode_request(text: &str) -> Result<Request, DecodeError> {
    let head: Head = serde_json::from_str(text).map_err(|e| head_error(text, &e))?;
    let Some(id) = head.id else {
        return Err(DecodeError {
            id: None,
            error: ErrorBody::new(ErrorCode::BadRequest, "missing field `id`"),
            op: head.op,
        });
    };
    let Some(name) = head.op else {
        return Err(DecodeError {
            id: Some(id),
            error: ErrorBody::new(ErrorCode::BadRequest, "missing field `op`"),
            op: None,
        });
    };
    match Op::decode(&name, text) {
        Some(Ok(op)) => Ok(Request { id, op }),
        Some(Err(e)) => Err(DecodeError {
            id: Some(id),
            error: ErrorBody::new(
                ErrorCode::BadRequest,
                format!("bad parameters for `{name}`: {e}{}", why_required(&e)),
            ),
            op: Some(name),
        }),
        None => Err(DecodeError {
            id: Some(id),
            error: ErrorBody::new(ErrorCode::UnknownOp, format!("unknown op `{name}`")),
            op: None,
        }),
    }
}

/// Why a missing parameter has no default, for the ones a client is most tempted to leave out.
fn why_required(err: &serde_json::Error) -> &'static str {
    if err.to_string().starts_with("missing field `client_msg_id`") {
        // A default chosen by the server would differ on every retry, so a retry after a lost
        // reply would store the message twice.
        " (it is the message's idempotency key: any string of at most 128 bytes, new for each \
         message and the same on every retry of it, so that a message sent again after a lost \
         reply is stored once)"
    } else {
        ""
    }
}

/// Explains a frame whose envelope could not be read, salvaging the id when possible.
fn head_error(text: &str, err: &serde_json::Error) -> DecodeError {
    let (id, message) = match serde_json::from_str::<Value>(text) {
        Err(_) => (None, format!("malformed JSON: {err}")),
        Ok(Value::Object(map)) => (
            map.get("id").and_then(Value::as_u64),
            format!("bad envelope: {err} (`id` must be an unsigned integer, `op` a string)"),
        ),
        Ok(_) => (None, "a request must be a JSON object".to_string()),
    };
    DecodeError {
        id,
        error: ErrorBody::new(ErrorCode::BadRequest, message),
        op: None,
    }
}

#[derive(Serialize)]
struct OkFrame<'a, T: Serialize> {
    re: u64,
    ok: &'a T,
}

#[derive(Serialize)]
struct ErrFrame<'a> {
    re: Option<u64>,
    error: ErrorRef<'a>,
}

#[derive(Serialize)]
struct ErrorRef<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

/// Reply encoders.
pub mod reply {
    use super::*;

    /// Encodes `{"re": re, "ok": ok}`.
    pub fn ok<T: Serialize>(re: u64, ok: &T) -> String {
        serde_json::to_string(&OkFrame { re, ok }).unwrap_or_else(|e| {
            error(
                Some(re),
                ErrorCode::Internal,
                &format!("reply encoding failed: {e}"),
            )
        })
    }

    /// Encodes `{"re": re, "error": {"code", "message"}}`.
    pub fn error(re: Option<u64>, code: ErrorCode, message: &str) -> String {
        encode_error(re, code, message, None)
    }

    /// Encodes `{"re": re, "error": ...}` for an [`ErrorBody`], its `retry_after_ms` included
    /// when set.
    pub fn failure(re: Option<u64>, error: &ErrorBody) -> String {
        encode_error(re, error.code, &error.message, error.retry_after_ms)
    }

    fn encode_error(
        re: Option<u64>,
        code: ErrorCode,
        message: &str,
        retry_after_ms: Option<u64>,
    ) -> String {
        // Encoding a struct of numbers, an enum and a string cannot fail.
        serde_json::to_string(&ErrFrame {
            re,
            error: ErrorRef {
                code,
                message,
                retry_after_ms,
            },
        })
        .unwrap_or_default()
    }

    /// Encodes a push frame.
    pub fn push(push: &Push) -> String {
        serde_json::to_string(push).unwrap_or_default()
    }
}

/// A frame as a client sees it: a reply to one of its requests, or a push.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    /// `{"re": .., "ok": ..}` or `{"re": .., "error": ..}`.
    Reply {
        /// The request id this answers (`None` when the request had no readable id).
        re: Option<u64>,
        /// The `ok` object, or the error.
        result: Result<Value, ErrorBody>,
    },
    /// `{"ev": .., ...}`.
    Push(Push),
}

impl ServerFrame {
    /// Parses a server text frame (client side).
    pub fn parse(text: &str) -> Result<ServerFrame, serde_json::Error> {
        let value: Value = serde_json::from_str(text)?;
        if value.get("ev").is_some() {
            return Ok(ServerFrame::Push(serde_json::from_value(value)?));
        }
        #[derive(Deserialize)]
        struct Raw {
            re: Option<u64>,
            ok: Option<Value>,
            error: Option<ErrorBody>,
        }
        let raw: Raw = serde_json::from_value(value)?;
        let result = match (raw.ok, raw.error) {
            (_, Some(err)) => Err(err),
            (Some(ok), None) => Ok(ok),
            (None, None) => {
                return Err(serde::de::Error::custom(
                    "frame is neither a reply nor a push",
                ));
            }
        };
        Ok(ServerFrame::Reply { re: raw.re, result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{AuthParams, ChatOp, FeedOp, SessionOp, TimeSyncParams};

    #[test]
    fn decodes_a_request() {
        let req = decode_request(r#"{"id":7,"op":"auth","token":"abc"}"#);
        assert_eq!(
            req,
            Ok(Request {
                id: 7,
                op: Op::Session(SessionOp::Auth(AuthParams {
                    token: "abc".into()
                }))
            })
        );
        let req = decode_request(r#"{"op":"time.sync","client_time":5,"id":1}"#);
        assert_eq!(
            req,
            Ok(Request {
                id: 1,
                op: Op::Session(SessionOp::TimeSync(TimeSyncParams { client_time: 5 }))
            })
        );
    }

    #[test]
    fn malformed_json_is_bad_request_without_id() {
        let err = decode_request("{not json").err();
        assert_eq!(
            err.as_ref().map(|e| e.error.code),
            Some(ErrorCode::BadRequest)
        );
        assert_eq!(err.and_then(|e| e.id), None);
    }

    #[test]
    fn unknown_op_keeps_the_id() {
        let err = decode_request(r#"{"id":3,"op":"nope"}"#).err();
        assert_eq!(
            err.as_ref().map(|e| e.error.code),
            Some(ErrorCode::UnknownOp)
        );
        assert_eq!(err.and_then(|e| e.id), Some(3));
    }

    #[test]
    fn wrong_types_and_missing_fields_are_bad_request() {
        for text in [
            r#"{"id":4,"op":"auth"}"#,
            r#"{"id":4,"op":"auth","token":5}"#,
            r#"{"id":4,"op":7}"#,
            r#"{"id":"4","op":"auth","token":"x"}"#,
            r#"{"op":"auth","token":"x"}"#,
            r#"[1,2]"#,
        ] {
            let err = decode_request(text).err();
            assert_eq!(
                err.map(|e| e.error.code),
                Some(ErrorCode::BadRequest),
                "for {text}"
            );
        }
        assert_eq!(
            decode_request(r#"{"id":4,"op":7}"#)
                .err()
                .and_then(|e| e.id),
            Some(4)
        );
    }

    #[test]
    fn a_send_without_its_key_says_why_the_key_is_required() {
        for text in [
            r#"{"id":5,"op":"room.send","room":1,"text":"hi"}"#,
            r#"{"id":5,"op":"dm.send","to":2,"text":"hi"}"#,
        ] {
            let err = decode_request(text).err();
            let message = err.map(|e| e.error.message).unwrap_or_default();
            assert!(
                message.contains("missing field `client_msg_id`")
                    && message.contains("idempotency key")
                    && message.contains("retry"),
                "{message}"
            );
        }
        let other = decode_request(r#"{"id":5,"op":"room.send","room":1,"client_msg_id":"k"}"#);
        let message = other.err().map(|e| e.error.message).unwrap_or_default();
        assert!(
            message.contains("`text`") && !message.contains("idempotency"),
            "{message}"
        );
    }

    #[test]
    fn a_history_request_without_limit_gets_the_default_page() {
        let req = decode_request(r#"{"id":6,"op":"room.history","room":3}"#);
        assert_eq!(
            req.map(|r| r.op),
            Ok(Op::Chat(ChatOp::RoomHistory(
                crate::ops::RoomHistoryParams {
                    room: 3,
                    before_seq: None,
                    limit: crate::limits::DEFAULT_HISTORY_PAGE,
                }
            )))
        );
    }

    #[test]
    fn feed_pages_without_limit_get_the_default_page() {
        use crate::ops::feed::{DEFAULT_PAGE, FeedProfileParams, FeedTimelineParams};
        let timeline = decode_request(r#"{"id":7,"op":"feed.timeline"}"#);
        assert_eq!(
            timeline.map(|r| r.op),
            Ok(Op::Feed(FeedOp::FeedTimeline(FeedTimelineParams {
                before: None,
                limit: DEFAULT_PAGE,
            })))
        );
        let profile = decode_request(r#"{"id":8,"op":"feed.profile","user":4,"before":9}"#);
        assert_eq!(
            profile.map(|r| r.op),
            Ok(Op::Feed(FeedOp::FeedProfile(FeedProfileParams {
                user: 4,
                before: Some(9),
                limit: DEFAULT_PAGE,
            })))
        );
    }

    #[test]
    fn replies_round_trip() {
        let text = reply::ok(9, &serde_json::json!({"a": 1}));
        assert_eq!(text, r#"{"re":9,"ok":{"a":1}}"#);
        assert_eq!(
            ServerFrame::parse(&text).ok(),
            Some(ServerFrame::Reply {
                re: Some(9),
                result: Ok(serde_json::json!({"a": 1}))
            })
        );
        let text = reply::error(None, ErrorCode::BadRequest, "nope");
        assert_eq!(
            text,
            r#"{"re":null,"error":{"code":"bad_request","message":"nope"}}"#
        );
        assert_eq!(
            ServerFrame::parse(&text).ok(),
            Some(ServerFrame::Reply {
                re: None,
                result: Err(ErrorBody::new(ErrorCode::BadRequest, "nope"))
            })
        );
        let shed = ErrorBody::new(ErrorCode::Unavailable, "busy")
            .with_retry_after(std::time::Duration::from_millis(1_500));
        let text = reply::failure(Some(3), &shed);
        assert_eq!(
            text,
            r#"{"re":3,"error":{"code":"unavailable","message":"busy","retry_after_ms":1500}}"#
        );
        assert_eq!(
            ServerFrame::parse(&text).ok(),
            Some(ServerFrame::Reply {
                re: Some(3),
                result: Err(shed)
            })
        );
    }
}

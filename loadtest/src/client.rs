//! One load client's connection: a TCP socket bound to a chosen 127.0.0.x source address
//! (each address has its own ~28k ephemeral ports), the WebSocket handshake over it, and a
//! small protocol-v1 layer that numbers requests and times their replies.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::stats::now_us;

/// A client WebSocket over a plain TCP stream.
pub type Ws = WebSocketStream<TcpStream>;

/// Why a connection or request failed, as a stable code for the error table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct ClientError {
    /// `connect_refused`, `connect_timeout`, `addr_unavailable`, `http_<status>`, `handshake`,
    /// `closed`, `timeout`, `io`, or a protocol error code (`rate_limited`, ...).
    pub code: String,
    /// For humans.
    pub detail: String,
    /// How long the server asked the client to wait before trying again
    /// (`retry_after_ms` of an `unavailable` answer).
    pub retry_after: Option<Duration>,
}

impl ClientError {
    /// An error with a code.
    pub fn new(code: &str, detail: impl ToString) -> ClientError {
        ClientError {
            code: code.to_string(),
            detail: detail.to_string(),
            retry_after: None,
        }
    }
}

fn io_code(err: &std::io::Error) -> &'static str {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect_refused",
        std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::AddrInUse => "addr_unavailable",
        std::io::ErrorKind::TimedOut => "connect_timeout",
        _ => match err.raw_os_error() {
            Some(24) => "too_many_open_files",
            _ => "io",
        },
    }
}

/// Small buffers: tens of thousands of mostly idle clients live in one process.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Connects to `addr` from `source`, then upgrades to a WebSocket at `url` offering
/// `subprotocol`. Bounded by `timeout`.
pub async fn connect(
    url: &str,
    addr: SocketAddr,
    source: IpAddr,
    subprotocol: Option<&str>,
    timeout: Duration,
) -> Result<Ws, ClientError> {
    let attempt = async {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| ClientError::new(io_code(&e), e))?;
        if addr.is_ipv4() {
            socket
                .bind(SocketAddr::new(source, 0))
                .map_err(|e| ClientError::new(io_code(&e), e))?;
        }
        let stream = socket
            .connect(addr)
            .await
            .map_err(|e| ClientError::new(io_code(&e), e))?;
        let _ = stream.set_nodelay(true);
        let mut request = url
            .into_client_request()
            .map_err(|e| ClientError::new("handshake", e))?;
        if let Some(proto) = subprotocol
            && let Ok(value) = HeaderValue::from_str(proto)
        {
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", value);
        }
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
                .await
                .map_err(|e| match e {
                    tungstenite::Error::Http(resp) => {
                        ClientError::new(&format!("http_{}", resp.status().as_u16()), "refused")
                    }
                    tungstenite::Error::Io(io) => ClientError::new(io_code(&io), io),
                    other => ClientError::new("handshake", other),
                })?;
        Ok(ws)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| ClientError::new("connect_timeout", "connect + handshake timed out"))?
}

/// What arrived on a protocol connection.
#[derive(Debug)]
pub enum Incoming {
    /// A reply to one of our requests, with the op it answered and its latency.
    Reply {
        /// The request id it answers.
        id: u64,
        /// The op.
        op: &'static str,
        /// Microseconds from send to reply.
        latency_us: u64,
        /// The `ok` body, or the error code and message.
        result: Result<Value, ClientError>,
    },
    /// A `room.message` push, read without a JSON parse (the hot path of every chat
    /// scenario): its room, its seq, and the send timestamp at the head of the load
    /// generator's payload text.
    RoomMessage {
        /// The room.
        room: i64,
        /// The message's seq in the room.
        seq: u64,
        /// `<sent_us>` from the payload, when the text is one.
        sent_us: Option<u64>,
    },
    /// Any other push (`{"ev": ..}`).
    Push(Value),
}

/// Reads a `room.message` push by scanning its bytes: the server writes the fields in a fixed
/// order (`{"ev":"room.message","room":R,"seq":S,"from":F,"text":"T..."`, pinned by
/// corral-protocol's tests). Anything else is `None` and takes the full JSON parse.
pub fn scan_room_message(frame: &str) -> Option<(i64, u64, Option<u64>)> {
    let rest = frame.strip_prefix(r#"{"ev":"room.message","room":"#)?;
    let (room, rest) = leading_int(rest)?;
    let (seq, rest) = leading_int(rest.strip_prefix(r#","seq":"#)?)?;
    let (_from, rest) = leading_int(rest.strip_prefix(r#","from":"#)?)?;
    let text = rest.strip_prefix(r#","text":""#)?;
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let sent_us = match text.as_bytes().get(digits) {
        Some(b' ') => text[..digits].parse().ok(),
        _ => None,
    };
    Some((room, u64::try_from(seq).ok()?, sent_us))
}

/// A JSON integer at the start of `s`, and what follows it.
fn leading_int(s: &str) -> Option<(i64, &str)> {
    let len = s
        .bytes()
        .enumerate()
        .take_while(|(i, b)| b.is_ascii_digit() || (*i == 0 && *b == b'-'))
        .count();
    Some((s[..len].parse().ok()?, &s[len..]))
}

/// The wait a close reason asks for: `{"retry_after_ms":N}`; any other reason is human text
/// and asks for nothing.
pub fn retry_hint(reason: &str) -> Option<Duration> {
    #[derive(serde::Deserialize)]
    struct Hint {
        retry_after_ms: u64,
    }
    serde_json::from_str::<Hint>(reason)
        .ok()
        .map(|h| Duration::from_millis(h.retry_after_ms))
}

/// A protocol-v1 connection: numbered requests, timed replies, pushes.
pub struct Conn {
    /// The socket.
    pub ws: Ws,
    next_id: u64,
    pending: HashMap<u64, (&'static str, u64)>,
    /// The close code the server sent, once it closed the socket.
    pub close_code: Option<u16>,
    /// How long the server asked us to stay away, from a load close's reason
    /// (`{"retry_after_ms":N}` on 4008 and 1013, protocol/README.md "Close codes").
    pub retry_after: Option<Duration>,
}

impl Conn {
    /// Wraps an open socket.
    pub fn new(ws: Ws) -> Conn {
        Conn {
            ws,
            next_id: 1,
            pending: HashMap::new(),
            close_code: None,
            retry_after: None,
        }
    }

    /// Sends request `op` with `params` (a serializable object); returns its id.
    pub async fn send<P: Serialize>(
        &mut self,
        op: &'static str,
        params: &P,
    ) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut frame = match serde_json::to_value(params) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        frame.insert("id".into(), Value::from(id));
        frame.insert("op".into(), Value::from(op));
        let text = Value::Object(frame).to_string();
        self.pending.insert(id, (op, now_us()));
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| ClientError::new("closed", e))?;
        Ok(id)
    }

    /// The next reply or push; `Ok(None)` when the server closed the socket.
    pub async fn next(&mut self) -> Result<Option<Incoming>, ClientError> {
        loop {
            let Some(msg) = self.ws.next().await else {
                return Ok(None);
            };
            let text = match msg.map_err(|e| ClientError::new("closed", e))? {
                Message::Text(text) => text,
                Message::Close(frame) => {
                    self.close_code = frame.as_ref().map(|f| u16::from(f.code));
                    self.retry_after = frame.and_then(|f| retry_hint(&f.reason));
                    return Ok(None);
                }
                _ => continue,
            };
            if let Some((room, seq, sent_us)) = scan_room_message(&text) {
                return Ok(Some(Incoming::RoomMessage { room, seq, sent_us }));
            }
            let Ok(Value::Object(mut frame)) = serde_json::from_str::<Value>(&text) else {
                return Err(ClientError::new("bad_frame", text.as_str()));
            };
            if frame.contains_key("ev") {
                return Ok(Some(Incoming::Push(Value::Object(frame))));
            }
            let Some(id) = frame.get("re").and_then(Value::as_u64) else {
                return Err(ClientError::new("unmatched_reply", text.as_str()));
            };
            let Some((op, sent)) = self.pending.remove(&id) else {
                return Err(ClientError::new("unmatched_reply", text.as_str()));
            };
            let result = match frame.remove("error") {
                Some(err) => Err(ClientError {
                    retry_after: err
                        .get("retry_after_ms")
                        .and_then(Value::as_u64)
                        .map(Duration::from_millis),
                    ..ClientError::new(
                        err.get("code").and_then(Value::as_str).unwrap_or("unknown"),
                        err.get("message").and_then(Value::as_str).unwrap_or(""),
                    )
                }),
                None => Ok(frame.remove("ok").unwrap_or(Value::Null)),
            };
            return Ok(Some(Incoming::Reply {
                id,
                op,
                latency_us: now_us().saturating_sub(sent),
                result,
            }));
        }
    }

    /// Requests still waiting for their reply.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The ops of the requests still waiting for their reply.
    pub fn pending_ops(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.pending.values().map(|(op, _)| *op)
    }

    /// Sends a request and waits for its reply (pushes arriving meanwhile go to `pushes`).
    /// Returns the reply latency with the result.
    pub async fn request<P: Serialize>(
        &mut self,
        op: &'static str,
        params: &P,
        timeout: Duration,
        pushes: &mut Vec<Incoming>,
    ) -> Result<(u64, Value), ClientError> {
        self.send(op, params).await?;
        let wait = async {
            loop {
                match self.next().await? {
                    None => return Err(ClientError::new("closed", "server closed the socket")),
                    Some(Incoming::Reply {
                        latency_us, result, ..
                    }) => return result.map(|ok| (latency_us, ok)),
                    Some(push) => pushes.push(push),
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::new("timeout", format!("no reply to {op}")))?
    }

    /// Closes politely (bounded: a server that does not answer the close is left behind).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}

#[cfg(test)]
mod tests {
    use corral_protocol::Push;
    use corral_protocol::ops::ChatMessage;

    use super::*;

    #[test]
    fn a_load_close_reason_gives_its_wait_and_human_text_none() {
        assert_eq!(
            retry_hint(r#"{"retry_after_ms":2300}"#),
            Some(Duration::from_millis(2_300))
        );
        assert_eq!(retry_hint("the server is shutting down"), None);
        assert_eq!(retry_hint(""), None);
        assert_eq!(retry_hint(r#"{"retry_after_ms":-1}"#), None);
    }

    #[test]
    fn room_messages_are_scanned_in_the_servers_field_order() {
        // Exactly as the server encodes it.
        let frame = corral_protocol::reply::push(&Push::RoomMessage(ChatMessage {
            room: 12,
            seq: 44,
            from: 7,
            text: "1700000000000123 room 3 xx\"y".into(),
            ts: 1,
            client_msg_id: "a".into(),
        }));
        assert_eq!(
            scan_room_message(&frame),
            Some((12, 44, Some(1_700_000_000_000_123)))
        );
        let human = r#"{"ev":"room.message","room":12,"seq":45,"from":7,"text":"hello","ts":1,"client_msg_id":"a"}"#;
        assert_eq!(scan_room_message(human), Some((12, 45, None)));
        assert_eq!(scan_room_message(r#"{"ev":"presence","room":12}"#), None);
        assert_eq!(scan_room_message(r#"{"ev":"room.message","seq":1}"#), None);
    }
}

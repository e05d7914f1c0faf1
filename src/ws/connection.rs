//! One connection's I/O loop: a `select!` over the close signal, the client's frames, the
//! outbound queue (replies before pushes) and the heartbeat. Frame size and continuation limits are enforced here;
//! protocol work happens in the Session actor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_ws::{AggregatedMessage, CloseCode, MessageStream, ProtocolError};
use bytestring::ByteString;
use corral_actors::metric_catalogue as metric;
use corral_actors::{CloseReason, ConnPermit, OutboundRx, Overload, SessionHandle, retry_hint};
use corral_protocol::limits::close;

use crate::config::WsSettings;

/// The I/O loop's limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Largest frame (and largest message after continuations), in bytes.
    pub max_frame: usize,
    /// Ping interval.
    pub heartbeat: Duration,
    /// Silence before the socket is closed.
    pub idle: Duration,
}

impl From<&WsSettings> for ConnectionLimits {
    fn from(ws: &WsSettings) -> Self {
        ConnectionLimits {
            max_frame: ws.max_frame_bytes,
            heartbeat: Duration::from_millis(ws.heartbeat_interval_ms.max(100)),
            idle: Duration::from_millis(ws.idle_timeout_ms.max(200)),
        }
    }
}

/// The close for a frame the client should not have sent: 1009 for one too big (a single
/// frame, or continuations adding up past the limit), 1007 for text that is not UTF-8 (both
/// per RFC 6455), 1002 for anything else.
fn protocol_error(err: &ProtocolError, max_frame: usize) -> CloseReason {
    let too_big = || {
        metrics::counter!(metric::OVERSIZE_FRAMES).increment(1);
        CloseReason::abrupt(
            close::TOO_LARGE,
            format!("message larger than {max_frame} bytes"),
        )
    };
    match err {
        ProtocolError::Overflow => too_big(),
        // actix-ws reports both as I/O errors: invalid UTF-8 with `InvalidData`, the
        // continuation limit by this message only.
        ProtocolError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            CloseReason::abrupt(close::INVALID_PAYLOAD, "text frame is not valid UTF-8")
        }
        ProtocolError::Io(io) if io.to_string().contains("maximum continuation size") => too_big(),
        other => CloseReason::abrupt(1002, format!("protocol error: {other}")),
    }
}

/// Closes that are about load tell the client when to come back: 4008 (slow consumer) and
/// 1013 (try again later) carry `{"retry_after_ms":N}` as their reason (protocol/README.md,
/// "Close codes"), a jittered delay growing with the node's overload level, so the clients a
/// struggling node sheds do not all return at once.
fn with_retry_hint(reason: CloseReason, overload: &Overload) -> CloseReason {
    match reason.code {
        close::SLOW_CONSUMER | close::TRY_AGAIN_LATER => CloseReason {
            reason: retry_hint::close_reason(overload.retry_after()),
            ..reason
        },
        _ => reason,
    }
}

/// Writes `frame` (there is one when the caller asks).
async fn write(
    ws: &mut actix_ws::Session,
    frame: &Option<ByteString>,
) -> Result<(), actix_ws::Closed> {
    match frame {
        Some(frame) => ws.text(frame.clone()).await,
        None => Ok(()),
    }
}

/// Runs the connection until either side closes it.
pub async fn run(
    mut ws: actix_ws::Session,
    stream: MessageStream,
    out: OutboundRx,
    session: SessionHandle,
    permit: ConnPermit,
    limits: ConnectionLimits,
    overload: Arc<Overload>,
) {
    let mut stream = stream
        .max_frame_size(limits.max_frame)
        .aggregate_continuations()
        .max_continuation_size(limits.max_frame);
    let mut heartbeat = tokio::time::interval(limits.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();

    // The frame being written: taken off the queue only when it is about to be written, and
    // kept here while a client frame is handled, so none is lost between the two.
    let mut pending: Option<ByteString> = None;
    let reason: Option<CloseReason> = loop {
        // Client frames before writes: a request (a claim) is read and answered while the
        // socket is still busy with the crowd's pushes, and its reply goes ahead of them.
        tokio::select! {
            biased;
            reason = out.close.closed() => break Some(reason),
            msg = stream.recv() => {
                last_heard = Instant::now();
                match msg {
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        metrics::counter!(metric::BYTES_IN).increment(text.len() as u64);
                        session.inbound(text).await;
                    }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        break Some(CloseReason::graceful(
                            close::UNSUPPORTED,
                            "binary frames are not part of corral.v1; send JSON text",
                        ));
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        if ws.pong(&bytes).await.is_err() { break None }
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    Some(Ok(AggregatedMessage::Close(_))) | None => break None,
                    Some(Err(err)) => break Some(protocol_error(&err, limits.max_frame)),
                }
            }
            sent = write(&mut ws, &pending), if pending.is_some() => {
                if sent.is_err() { break None }
                pending = out.try_recv();
            }
            frame = out.recv(), if pending.is_none() => {
                let Some(frame) = frame else { break None };
                pending = Some(frame);
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > limits.idle {
                    metrics::counter!(metric::IDLE_DISCONNECTS).increment(1);
                    break Some(CloseReason::abrupt(close::IDLE, "no heartbeat"));
                }
                if ws.ping(b"").await.is_err() { break None }
                // A burst's queue is given back once it has drained.
                out.trim();
            }
        }
    };

    session.disconnected();
    if let Some(reason) = reason {
        let reason = with_retry_hint(reason, &overload);
        if reason.flush {
            while let Some(frame) = pending.take().or_else(|| out.try_recv()) {
                if ws.text(frame).await.is_err() {
                    break;
                }
            }
        }
        let _ = ws
            .close(Some(actix_ws::CloseReason {
                code: CloseCode::from(reason.code),
                description: Some(reason.reason),
            }))
            .await;
    } else {
        let _ = ws.close(None).await;
    }
    drop(permit);
}

//! One connection, run by the one task that owns its socket: it reads the client's frames,
//! writes the queued ones itself (replies before pushes, several per write), pings (at the
//! heartbeat, and every `ws.lag_probe_ms` while frames flow, to time the client: see `lag.rs`),
//! and closes.
//! Frame size and continuation limits are enforced by the codec; protocol work happens in the
//! Session actor.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use corral_actors::metric_catalogue as metric;
use corral_actors::{
    CloseReason, ConnPermit, Lane, OutboundRx, Overload, SessionHandle, retry_hint,
};
use corral_protocol::limits::close;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Sleep;

use super::codec::{Decoder, FrameError, Message, close_payload, opcode};
use super::lag::LagProbe;
use super::socket::{WRITE_BATCH, Writes, poll_read_into};
use crate::config::WsSettings;
use crate::http::conn_limit::PeerPermit;

/// The I/O loop's limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Largest frame (and largest message after continuations), in bytes.
    pub max_frame: usize,
    /// Ping interval.
    pub heartbeat: Duration,
    /// Silence before the socket is closed.
    pub idle: Duration,
    /// How far behind its pushes a client may fall (`None`: not judged).
    pub max_lag: Option<Duration>,
    /// Ping interval while frames flow.
    pub lag_probe: Duration,
}

impl From<&WsSettings> for ConnectionLimits {
    fn from(ws: &WsSettings) -> Self {
        ConnectionLimits {
            max_frame: ws.max_frame_bytes,
            heartbeat: Duration::from_millis(ws.heartbeat_interval_ms.max(100)),
            idle: Duration::from_millis(ws.idle_timeout_ms.max(200)),
            max_lag: (ws.max_lag_ms > 0).then(|| Duration::from_millis(ws.max_lag_ms)),
            lag_probe: Duration::from_millis(ws.lag_probe_ms.max(100)),
        }
    }
}

/// What an accepted upgrade hands to the task that will own the socket.
pub struct Accepted {
    /// The connection's Session actor.
    pub session: SessionHandle,
    /// Its outbound queue.
    pub out: OutboundRx,
    /// Its place in the node's admission count.
    pub permit: ConnPermit,
    /// Its place in its address's count of TCP connections (none for trusted proxies).
    pub peer: Option<Arc<PeerPermit>>,
    /// Frame limits and timers.
    pub limits: ConnectionLimits,
    /// The node's load, for the retry hint of a load close.
    pub overload: Arc<Overload>,
}

/// The close for a frame the client should not have sent: 1009 for one too big (a single
/// frame, or continuations adding up past the limit), 1007 for text that is not UTF-8 (both
/// per RFC 6455), 1002 for anything else.
fn protocol_error(err: &FrameError) -> CloseReason {
    match err {
        FrameError::TooLarge(_) => {
            metrics::counter!(metric::OVERSIZE_FRAMES).increment(1);
            CloseReason::abrupt(close::TOO_LARGE, err.to_string())
        }
        FrameError::InvalidUtf8 => CloseReason::abrupt(close::INVALID_PAYLOAD, err.to_string()),
        FrameError::Protocol(_) => CloseReason::abrupt(1002, err.to_string()),
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

/// What woke the connection.
enum Step {
    /// A whole message from the client.
    Message(Message),
    /// A frame the client should not have sent.
    Invalid(FrameError),
    /// Someone asked the connection to close.
    Close(CloseReason),
    /// Every sender of the queue is gone (the Session ended).
    Ended,
    /// The socket failed or the client went away: nothing more can be written.
    Lost,
    /// Time to ping.
    Tick,
}

/// How the loop ended.
enum End {
    /// With a close frame giving `reason`.
    Reason(CloseReason),
    /// With a close frame without a code (the client closed, or the Session ended).
    Plain,
    /// Without a close frame: the socket is gone.
    Lost,
}

/// The socket and what the loop keeps between wake-ups.
struct Conn<T> {
    io: T,
    decoder: Decoder,
    writes: Writes,
    out: OutboundRx,
    /// The next ping (or lag check).
    timer: Pin<Box<Sleep>>,
    lag: LagProbe,
    /// A probe's ping waiting for the frames queued before it to be taken (how many more):
    /// it goes after them, so its answer times the whole backlog.
    ping_after: Option<(usize, Bytes)>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Conn<T> {
    /// Advances reads and writes; ready with the first thing the loop must act on. Order: a
    /// close request, then the client's frames (a request is read while the socket is busy
    /// with pushes), then writes, then the heartbeat.
    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        if let Poll::Ready(reason) = self.out.poll_closed(cx) {
            return Poll::Ready(Step::Close(reason));
        }
        loop {
            match self.decoder.next() {
                Ok(Some(message)) => return Poll::Ready(Step::Message(message)),
                Err(err) => return Poll::Ready(Step::Invalid(err)),
                Ok(None) => {}
            }
            match poll_read_into(cx, &mut self.io, &mut self.decoder) {
                Poll::Ready(Ok(true)) => continue,
                Poll::Ready(Ok(false) | Err(_)) => return Poll::Ready(Step::Lost),
                Poll::Pending => break,
            }
        }
        loop {
            let mut taken = 0;
            let mut pushed = false;
            let mut ended = false;
            while self.writes.len() < WRITE_BATCH {
                match self.out.poll_next(cx) {
                    Poll::Ready(Some((lane, frame))) => {
                        self.writes.push(opcode::TEXT, frame.into_bytes());
                        taken += 1;
                        pushed |= lane == Lane::Push;
                        if let Some((ahead, _)) = &mut self.ping_after {
                            *ahead -= 1;
                            if *ahead == 0
                                && let Some((_, token)) = self.ping_after.take()
                            {
                                self.writes.push(opcode::PING, token);
                            }
                        }
                    }
                    Poll::Ready(None) => {
                        ended = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            // Pushes flow (replies answer the client's own requests: a client may wait
            // before reading one, as one told to come back later does).
            if pushed && self.lag.wrote() {
                // Frames flow: the next probe is due within `probe_every`, not a heartbeat.
                let soon = tokio::time::Instant::now() + self.lag.probe_every();
                if self.timer.deadline() > soon {
                    self.timer.as_mut().reset(soon);
                }
            }
            if self.writes.is_empty() {
                if ended {
                    return Poll::Ready(Step::Ended);
                }
                break;
            }
            match self.writes.poll_write(cx, &mut self.io) {
                Poll::Ready(Ok(())) if taken == WRITE_BATCH => {
                    // A full batch went out: look at the client again before the next one.
                    cx.waker().wake_by_ref();
                    break;
                }
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(_)) => return Poll::Ready(Step::Lost),
                Poll::Pending => break,
            }
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Step::Tick),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Gives back the memory of drained buffers.
    fn trim(&mut self) {
        self.out.trim();
        self.decoder.trim();
        self.writes.trim();
    }

    /// Writes the close frame after what `end` keeps of the queue, then waits for the client
    /// to close its side, within `linger`.
    async fn close(mut self, end: End, overload: &Overload, linger: Duration) {
        let payload = match end {
            End::Lost => return,
            End::Plain => Bytes::new(),
            End::Reason(reason) => {
                if reason.code == close::SLOW_CONSUMER {
                    overload.note_slow_consumer();
                }
                let reason = with_retry_hint(reason, overload);
                if reason.flush {
                    while let Some(frame) = self.out.try_recv() {
                        self.writes.push(opcode::TEXT, frame.into_bytes());
                    }
                } else {
                    self.writes.drop_unstarted();
                }
                close_payload(reason.code, &reason.reason)
            }
        };
        let Conn {
            mut io,
            mut writes,
            out,
            ..
        } = self;
        drop(out);
        writes.push(opcode::CLOSE, payload);
        // A client that reads nothing more is dropped after `linger`: the memory it holds is
        // at most one partly written frame (or, on a graceful close, the queue it had).
        let _ = tokio::time::timeout(linger, async {
            poll_fn(|cx| writes.poll_write(cx, &mut io)).await?;
            io.shutdown().await?;
            // The client answers with its own close and then closes: read until then, so the
            // close is not met with a reset that could discard it unread.
            let mut rest = [0u8; 256];
            while io.read(&mut rest).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
    }
}

/// Runs the connection on `io` until either side closes it; `read_ahead` holds the client's
/// bytes that came with the upgrade request.
pub async fn run<T: AsyncRead + AsyncWrite + Unpin>(
    io: T,
    read_ahead: BytesMut,
    accepted: Accepted,
) {
    let Accepted {
        session,
        out,
        permit,
        peer,
        limits,
        overload,
    } = accepted;
    let mut decoder = Decoder::new(limits.max_frame);
    decoder.extend(&read_ahead);
    drop(read_ahead);
    // The first ping goes out at once, as the heartbeat interval's first tick always did.
    let mut conn = Conn {
        io,
        decoder,
        writes: Writes::default(),
        out,
        timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        lag: LagProbe::new(limits.max_lag, limits.lag_probe, limits.heartbeat),
        ping_after: None,
    };
    let mut last_heard = Instant::now();

    let end = loop {
        match poll_fn(|cx| conn.poll_step(cx)).await {
            Step::Message(message) => {
                last_heard = Instant::now();
                match message {
                    Message::Text(text) => {
                        metrics::counter!(metric::BYTES_IN).increment(text.len() as u64);
                        session.inbound(text).await;
                    }
                    Message::Binary => {
                        break End::Reason(CloseReason::graceful(
                            close::UNSUPPORTED,
                            "binary frames are not part of corral.v1; send JSON text",
                        ));
                    }
                    Message::Ping(payload) => {
                        // A client that pings without reading gets no more than a batch.
                        if conn.writes.len() < WRITE_BATCH {
                            conn.writes.push(opcode::PONG, payload);
                        }
                    }
                    Message::Pong(payload) => {
                        if let Some(lag) = conn.lag.pong(&payload, Instant::now()) {
                            metrics::histogram!(metric::CLIENT_LAG).record(lag.as_secs_f64());
                            overload.note_client_lag(lag);
                        }
                    }
                    Message::Close => break End::Plain,
                }
            }
            Step::Invalid(err) => break End::Reason(protocol_error(&err)),
            Step::Close(reason) => break End::Reason(reason),
            Step::Ended => break End::Plain,
            Step::Lost => break End::Lost,
            Step::Tick => {
                if last_heard.elapsed() > limits.idle {
                    metrics::counter!(metric::IDLE_DISCONNECTS).increment(1);
                    break End::Reason(CloseReason::abrupt(close::IDLE, "no heartbeat"));
                }
                let now = Instant::now();
                let tick = conn.lag.tick(now);
                if let Some(behind) = tick.behind {
                    metrics::counter!(metric::SLOW_CONSUMER_DROPS).increment(1);
                    break End::Reason(CloseReason::abrupt(
                        close::SLOW_CONSUMER,
                        format!("slow consumer: {} ms behind", behind.as_millis()),
                    ));
                }
                if !tick.busy {
                    // Quiet since the last tick: a burst's buffers are given back.
                    conn.trim();
                }
                if let Some(token) = tick.ping {
                    let token = Bytes::copy_from_slice(&token);
                    match conn.out.queued() {
                        0 => conn.writes.push(opcode::PING, token),
                        ahead => conn.ping_after = Some((ahead, token)),
                    }
                }
                let next = conn.lag.next_tick(now, tick.busy);
                conn.timer.as_mut().reset(next.into());
            }
        }
    };

    session.disconnected();
    drop(permit);
    conn.close(end, &overload, limits.idle).await;
    drop(peer);
}

//! The Session actor: one per WebSocket connection.
//!
//! It owns the connection's protocol state — authentication, the request rate limiter — and
//! answers every request exactly once through its [`Outbound`] queue. The connection's I/O
//! loop (in the server crate) feeds it text frames through a [`SessionHandle`] and writes what
//! the queue yields.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytestring::ByteString;
use corral_protocol::limits::close;
use corral_protocol::ops::{AuthOk, AuthParams, Priority, SessionOp, TimeSyncOk};
use corral_protocol::{ErrorBody, ErrorCode, Op, Request, decode_request};

mod activity;
mod chat;
mod claim;
mod feed;

use crate::admission::UserPermit;
use crate::clock::now_ms;
use crate::hub::Hub;
use crate::metric_catalogue as metric;
use crate::outbound::{CloseReason, Outbound};
use crate::ports::Identity;
use crate::rate_limit::TokenBucket;
use crate::replier::Replier;

/// One connection's actor.
pub struct Session {
    conn_id: u64,
    hub: Arc<Hub>,
    out: Outbound,
    identity: Option<Identity>,
    /// Holds the connection's place in its user's connection count.
    user_permit: Option<UserPermit>,
    bucket: TokenBucket,
    /// Rooms joined and DM rooms known.
    chat: chat::ChatState,
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.identity.is_none() {
            ctx.run_later(self.hub.session.auth_timeout, |act, ctx| {
                if act.identity.is_none() {
                    metrics::counter!(metric::AUTH_FAILURES, "reason" => "timeout").increment(1);
                    act.out.close(CloseReason::graceful(
                        close::POLICY,
                        "authentication timeout",
                    ));
                    ctx.stop();
                }
            });
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.hub.connections.remove(self.conn_id);
        if let Some(identity) = self.identity {
            self.hub.users.detach(identity.user_id, self.conn_id);
            self.leave_rooms(identity.user_id);
        }
    }
}

/// A text frame from the client.
#[derive(Message)]
#[rtype(result = "()")]
struct Inbound(ByteString);

/// The client went away.
#[derive(Message)]
#[rtype(result = "()")]
struct Disconnected;

impl Handler<Inbound> for Session {
    type Result = ();

    fn handle(&mut self, Inbound(text): Inbound, ctx: &mut Self::Context) {
        let started = Instant::now();
        let scope = if !self.bucket.try_take() {
            Some("connection")
        } else {
            // One budget for all of a user's connections: more sockets are not more requests.
            self.identity
                .and_then(|who| self.hub.user_rates.check(who.user_id).err())
                .map(|_| "user")
        };
        if let Some(scope) = scope {
            let id = decode_request(&text).ok().map(|r| r.id);
            metrics::counter!(metric::RATE_LIMITED, "scope" => scope).increment(1);
            self.replier(id, "rate_limited", started)
                .error(ErrorCode::RateLimited, "too many requests, slow down");
            return;
        }
        match decode_request(&text) {
            Ok(request) => {
                let op = request.op.name();
                metrics::counter!(metric::FRAMES_IN, "op" => op).increment(1);
                let user = self.identity.map(|i| i.user_id);
                let _span = tracing::debug_span!(
                    "request",
                    conn = self.conn_id,
                    id = request.id,
                    op,
                    ?user
                )
                .entered();
                self.dispatch(request, started, ctx);
            }
            Err(err) => {
                let op = err
                    .op
                    .as_deref()
                    .map(corral_protocol::Op::static_name)
                    .unwrap_or("invalid");
                metrics::counter!(metric::FRAMES_IN, "op" => op).increment(1);
                self.replier(err.id, op, started).fail(err.error);
            }
        }
    }
}

impl Handler<Disconnected> for Session {
    type Result = ();

    fn handle(&mut self, _: Disconnected, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Session {
    fn replier(&self, id: Option<u64>, op: &'static str, started: Instant) -> Replier {
        Replier::new(id, op, started, self.out.clone())
    }

    /// Serves a decoded request: each area's ops go, once, to that area's handler.
    fn dispatch(&mut self, request: Request, started: Instant, ctx: &mut Context<Self>) {
        let replier = self.replier(Some(request.id), request.op.name(), started);
        let priority = request.op.priority();
        match request.op {
            Op::Session(op) => self.session(op, replier),
            Op::Chat(op) => self.admitted(op, Session::chat, priority, replier, ctx),
            Op::Feed(op) => self.admitted(op, Session::feed, priority, replier, ctx),
            Op::Activity(op) => self.admitted(op, Session::activity, priority, replier, ctx),
            Op::Claim(op) => self.admitted(op, Session::claim, priority, replier, ctx),
        }
    }

    /// Session ops run before authentication and are never shed.
    fn session(&mut self, op: SessionOp, replier: Replier) {
        match op {
            SessionOp::Auth(params) => self.authenticate(&params, replier),
            SessionOp::TimeSync(params) => replier.ok(&TimeSyncOk {
                client_time: params.client_time,
                server_time: now_ms(),
            }),
        }
    }

    /// Hands `op` to its area's `serve` once the connection is authenticated and the node is
    /// not shedding ops of its `priority`; answers the refusal otherwise.
    fn admitted<T>(
        &mut self,
        op: T,
        serve: fn(&mut Session, T, Identity, Replier, &mut Context<Session>),
        priority: Priority,
        replier: Replier,
        ctx: &mut Context<Self>,
    ) {
        match self.admit(priority) {
            Ok(who) => serve(self, op, who, replier, ctx),
            Err(refused) => replier.fail(refused),
        }
    }

    fn admit(&self, priority: Priority) -> Result<Identity, ErrorBody> {
        let who = self.identity.ok_or_else(|| {
            ErrorBody::new(
                ErrorCode::Unauthenticated,
                "authenticate first with the `auth` op",
            )
        })?;
        if self.hub.overload.sheds(priority) {
            return Err(ErrorBody::new(
                ErrorCode::Unavailable,
                "the node is overloaded; retry shortly",
            )
            .with_retry_after(self.hub.overload.retry_after()));
        }
        Ok(who)
    }

    fn authenticate(&mut self, params: &AuthParams, replier: Replier) {
        let identity = match self.hub.verifier.verify(&params.token) {
            Ok(identity) => identity,
            Err(err) => {
                let reason = err.label();
                metrics::counter!(metric::AUTH_FAILURES, "reason" => reason).increment(1);
                return replier.error(ErrorCode::Unauthenticated, &err.to_string());
            }
        };
        if let Some(current) = self.identity {
            if current.user_id != identity.user_id {
                return replier.error(
                    ErrorCode::Conflict,
                    "this connection is already authenticated as another user",
                );
            }
        } else {
            match self.hub.admission.admit_user(identity.user_id) {
                Ok(permit) => self.user_permit = Some(permit),
                Err(refusal) => {
                    replier.error(ErrorCode::LimitReached, &refusal.to_string());
                    self.out.close(CloseReason::graceful(
                        close::POLICY,
                        "too many connections for this user",
                    ));
                    return;
                }
            }
        }
        if self.identity.is_none() {
            self.hub
                .users
                .attach(identity.user_id, self.conn_id, self.out.clone());
        }
        self.identity = Some(identity);
        replier.ok(&AuthOk {
            user_id: identity.user_id,
            role: identity.role,
            server_time: now_ms(),
        });
    }
}

/// How the server crate talks to a Session actor.
#[derive(Clone)]
pub struct SessionHandle {
    addr: Addr<Session>,
}

/// The session refused a connection pre-authenticated by a bearer header.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SessionRefused(pub crate::admission::Refusal);

impl SessionHandle {
    /// Starts the actor for a new connection whose frames go to `out`. `identity` is set
    /// when the upgrade request carried a valid `Authorization: Bearer` token.
    pub fn start(
        hub: Arc<Hub>,
        out: Outbound,
        identity: Option<Identity>,
    ) -> Result<SessionHandle, SessionRefused> {
        let user_permit = match identity {
            Some(identity) => Some(
                hub.admission
                    .admit_user(identity.user_id)
                    .map_err(SessionRefused)?,
            ),
            None => None,
        };
        let conn_id = hub.connections.register(out.clone());
        if let Some(identity) = identity {
            hub.users.attach(identity.user_id, conn_id, out.clone());
        }
        let bucket = TokenBucket::new(hub.session.rate_per_sec, hub.session.rate_burst);
        let addr = Session {
            conn_id,
            hub,
            out,
            identity,
            user_permit,
            bucket,
            chat: chat::ChatState::default(),
        }
        .start();
        Ok(SessionHandle { addr })
    }

    /// Hands a client text frame to the session, waiting while it is busy (this is the
    /// connection's backpressure: a flooding client is read no faster than it is served).
    pub async fn inbound(&self, text: ByteString) {
        let _ = self.addr.send(Inbound(text)).await;
    }

    /// Tells the session its client is gone.
    pub fn disconnected(&self) {
        self.addr.do_send(Disconnected);
    }
}

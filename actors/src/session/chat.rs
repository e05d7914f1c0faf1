//! The Session actor's chat ops: room.join, room.leave, room.send, room.history and dm.send.
//!
//! The session checks what it can alone (text and key limits, its rooms-per-connection
//! count, the node's fan-out pressure for a new membership) and hands the request, with its
//! reply, to the room's actor.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use actix::prelude::*;
use corral_protocol::limits::MAX_CLIENT_KEY_BYTES;
use corral_protocol::ops::{ChatOp, RoomId};
use corral_protocol::{ErrorBody, ErrorCode, UserId};

use super::Session;
use crate::ports::Identity;
use crate::ports::chat::ChatStoreError;
use crate::replier::OnceReply;
use crate::replier::Replier;
use crate::room::{History, Join, Leave, Post, ROOM_RESTARTING, Room};

/// A session's chat state.
#[derive(Default)]
pub(super) struct ChatState {
    /// Rooms joined (or being joined) on this connection.
    rooms: HashSet<RoomId>,
    /// DM rooms already opened, by the other user.
    dms: HashMap<UserId, RoomId>,
}

impl Session {
    pub(super) fn chat(
        &mut self,
        op: ChatOp,
        who: Identity,
        replier: Replier,
        ctx: &mut Context<Session>,
    ) {
        let user = who.user_id;
        let started = Instant::now();
        let reply = OnceReply::new(replier, ROOM_RESTARTING);
        match op {
            ChatOp::RoomJoin(params) => {
                let room = params.room;
                let chat = &mut self.chat;
                if !chat.rooms.contains(&room) {
                    if chat.rooms.len() >= self.hub.rooms.config.rooms_per_connection {
                        return reply.error(
                            ErrorCode::LimitReached,
                            "too many rooms joined on this connection",
                        );
                    }
                    // A node dropping members it cannot keep up with takes no new ones.
                    if let Some(wait) = self.hub.overload.refuses_members() {
                        return reply.fail(
                            ErrorBody::new(
                                ErrorCode::Unavailable,
                                "the node is closing members it cannot keep up with; retry later",
                            )
                            .with_retry_after(wait),
                        );
                    }
                }
                chat.rooms.insert(room);
                let (joined, outcome) = tokio::sync::oneshot::channel();
                let join = Join {
                    user,
                    conn_id: self.conn_id,
                    out: self.out.clone(),
                    since: params.since,
                    reply,
                    joined,
                };
                self.to_room(room, join, ctx);
                ctx.spawn(
                    async move { outcome.await.unwrap_or(false) }
                        .into_actor(self)
                        .map(move |joined, act, _| {
                            if !joined {
                                act.chat.rooms.remove(&room);
                            }
                        }),
                );
            }
            ChatOp::RoomLeave(params) => {
                if self.chat.rooms.remove(&params.room) {
                    let leave = Leave {
                        user,
                        conn_id: self.conn_id,
                        reply: Some(reply),
                    };
                    self.to_room(params.room, leave, ctx);
                } else {
                    reply.ok(&corral_protocol::ops::RoomLeaveOk {});
                }
            }
            ChatOp::RoomSend(params) => {
                if let Err(refused) = self.check_message(&params.text, &params.client_msg_id) {
                    return reply.fail(refused);
                }
                let post = Post {
                    user,
                    text: params.text,
                    client_msg_id: params.client_msg_id,
                    started,
                    dm: false,
                    reply,
                };
                self.to_room(params.room, post, ctx);
            }
            ChatOp::RoomHistory(params) => {
                let history = History {
                    user,
                    before: params.before_seq,
                    limit: params.limit,
                    reply,
                };
                self.to_room(params.room, history, ctx);
            }
            ChatOp::DmSend(params) => {
                if let Err(refused) = self.check_message(&params.text, &params.client_msg_id) {
                    return reply.fail(refused);
                }
                if params.to == user {
                    return reply.error(ErrorCode::BadRequest, "a DM needs another user");
                }
                let post = Post {
                    user,
                    text: params.text,
                    client_msg_id: params.client_msg_id,
                    started,
                    dm: true,
                    reply,
                };
                if let Some(room) = self.chat.dms.get(&params.to).copied() {
                    return self.to_room(room, post, ctx);
                }
                let store = self.hub.rooms.store.clone();
                let to = params.to;
                ctx.spawn(
                    async move { store.open_dm(user, to).await }
                        .into_actor(self)
                        .map(move |result, act, ctx| match result {
                            Ok(room) => {
                                act.chat.dms.insert(to, room);
                                act.to_room(room, post, ctx);
                            }
                            Err(ChatStoreError::NotFound) => {
                                post.reply.error(ErrorCode::NotFound, "no such user")
                            }
                            Err(err) => post.reply.error(ErrorCode::Unavailable, &err.to_string()),
                        }),
                );
            }
        }
    }

    /// Text and idempotency-key limits.
    fn check_message(&self, text: &str, client_msg_id: &str) -> Result<(), ErrorBody> {
        let refuse = |code, why: &str| Err(ErrorBody::new(code, why));
        if text.is_empty() {
            return refuse(ErrorCode::BadRequest, "empty message");
        }
        if text.chars().count() > self.hub.rooms.config.max_text_chars {
            return refuse(ErrorCode::TooLarge, "message text is too long");
        }
        if client_msg_id.is_empty() {
            return refuse(ErrorCode::BadRequest, "client_msg_id is required");
        }
        if client_msg_id.len() > MAX_CLIENT_KEY_BYTES {
            return refuse(ErrorCode::TooLarge, "client_msg_id is too long");
        }
        Ok(())
    }

    /// Hands a request to the room's actor, waiting while its mailbox is full. Should the
    /// actor be gone, the request (and its reply, answering `unavailable`) is dropped.
    fn to_room<M>(&self, room: RoomId, msg: M, ctx: &mut Context<Session>)
    where
        M: Message<Result = ()> + Send + 'static,
        Room: Handler<M>,
    {
        let addr = self.hub.rooms.get(room);
        ctx.spawn(
            async move {
                let _ = addr.send(msg).await;
            }
            .into_actor(self),
        );
    }

    /// Leaves every joined room (the connection is closing).
    pub(super) fn leave_rooms(&mut self, user: UserId) {
        for room in self.chat.rooms.drain() {
            let addr = self.hub.rooms.get(room);
            addr.do_send(Leave {
                user,
                conn_id: self.conn_id,
                reply: None,
            });
        }
    }
}

//! The Session actor's chat ops: room.join, room.leave, room.send, room.history and dm.send.

use actix::Context;
use corral_protocol::{ErrorCode, Op};

use super::Session;
use crate::ports::Identity;
use crate::replier::Replier;

impl Session {
    pub(super) fn chat(
        &mut self,
        op: Op,
        who: Identity,
        replier: Replier,
        _ctx: &mut Context<Session>,
    ) {
        let _ = (op, who);
        replier.error(
            ErrorCode::Unavailable,
            "chat is not served by this node yet",
        );
    }
}

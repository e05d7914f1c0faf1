//! The Session actor's claim ops: claim and claim.cancel.

use actix::Context;
use corral_protocol::{ErrorCode, Op};

use super::Session;
use crate::ports::Identity;
use crate::replier::Replier;

impl Session {
    pub(super) fn claim(
        &mut self,
        op: Op,
        who: Identity,
        replier: Replier,
        _ctx: &mut Context<Session>,
    ) {
        let _ = (op, who);
        replier.error(
            ErrorCode::Unavailable,
            "claim is not served by this node yet",
        );
    }
}

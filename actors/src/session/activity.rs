//! The Session actor's activity ops: activity.subscribe and activity.unsubscribe.

use actix::Context;
use corral_protocol::{ErrorCode, Op};

use super::Session;
use crate::ports::Identity;
use crate::replier::Replier;

impl Session {
    pub(super) fn activity(
        &mut self,
        op: Op,
        who: Identity,
        replier: Replier,
        _ctx: &mut Context<Session>,
    ) {
        let _ = (op, who);
        replier.error(
            ErrorCode::Unavailable,
            "activity is not served by this node yet",
        );
    }
}

//! The Session actor's feed ops: follow, unfollow, feed.post and feed.timeline.

use actix::Context;
use corral_protocol::{ErrorCode, Op};

use super::Session;
use crate::ports::Identity;
use crate::replier::Replier;

impl Session {
    pub(super) fn feed(
        &mut self,
        op: Op,
        who: Identity,
        replier: Replier,
        _ctx: &mut Context<Session>,
    ) {
        let _ = (op, who);
        replier.error(
            ErrorCode::Unavailable,
            "feed is not served by this node yet",
        );
    }
}

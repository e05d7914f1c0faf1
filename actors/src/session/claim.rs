//! The Session actor's claim ops: claim and claim.cancel. Both run on the node's claim desk;
//! the reply leaves when the desk answers (for a hold: after its row is committed).

use actix::Context;
use corral_protocol::ops::ClaimOp;

use super::Session;
use crate::ports::Identity;
use crate::replier::Replier;

impl Session {
    pub(super) fn claim(
        &mut self,
        op: ClaimOp,
        who: Identity,
        replier: Replier,
        _ctx: &mut Context<Session>,
    ) {
        let claims = self.hub.claims.clone();
        match op {
            ClaimOp::Claim(params) => {
                actix::spawn(async move {
                    match claims.hold(who.user_id, params).await {
                        Ok(ok) => replier.ok(&ok),
                        Err(err) => replier.fail(err),
                    }
                });
            }
            ClaimOp::ClaimCancel(params) => {
                actix::spawn(async move {
                    match claims.cancel(who.user_id, params.claim_id).await {
                        Ok(ok) => replier.ok(&ok),
                        Err(err) => replier.fail(err),
                    }
                });
            }
        }
    }
}

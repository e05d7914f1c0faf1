//! The Session actor's activity ops: activity.subscribe and activity.unsubscribe.

use actix::Context;
use corral_protocol::ops::{ActivityOp, ActivityRef};

use super::Session;
use crate::activity::subscribers::Subscriber;
use crate::ports::Identity;
use crate::replier::Replier;

impl Session {
    pub(super) fn activity(
        &mut self,
        op: ActivityOp,
        who: Identity,
        replier: Replier,
        _ctx: &mut Context<Session>,
    ) {
        match op {
            ActivityOp::ActivitySubscribe(ActivityRef { activity }) => {
                let sub = Subscriber {
                    conn_id: self.conn_id,
                    user: who.user_id,
                    out: self.out.clone(),
                };
                self.hub.activities.subscribe(activity, sub, replier);
            }
            ActivityOp::ActivityUnsubscribe(ActivityRef { activity }) => {
                self.hub.activities.unsubscribe(activity, self.conn_id);
                replier.ok(&serde_json::json!({}));
            }
        }
    }
}

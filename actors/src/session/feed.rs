//! The Session actor's feed ops: follow, unfollow, feed.post, feed.timeline, feed.profile,
//! feed.like, feed.unlike, feed.comment and feed.delete. Each runs on a spawned future (store
//! round trips never block the session) and replies exactly once.

use actix::Context;
use corral_protocol::ErrorBody;
use corral_protocol::ops::FeedOp;
use serde::Serialize;

use super::Session;
use crate::feeds;
use crate::ports::Identity;
use crate::replier::Replier;

impl Session {
    pub(super) fn feed(
        &mut self,
        op: FeedOp,
        who: Identity,
        replier: Replier,
        _ctx: &mut Context<Session>,
    ) {
        let hub = self.hub.clone();
        let me = who.user_id;
        actix::spawn(async move {
            let hub = &hub;
            match op {
                FeedOp::Follow(p) => answer(replier, feeds::follow(hub, me, p.user).await),
                FeedOp::Unfollow(p) => answer(replier, feeds::unfollow(hub, me, p.user).await),
                FeedOp::FeedPost(p) => answer(
                    replier,
                    feeds::publish(hub, who, p).await.map(|post| {
                        corral_protocol::ops::FeedPostOk {
                            post_id: post.post_id,
                            created_at: post.created_at,
                        }
                    }),
                ),
                FeedOp::FeedTimeline(p) => {
                    answer(replier, feeds::timeline(hub, me, p.before, p.limit).await)
                }
                FeedOp::FeedProfile(p) => answer(
                    replier,
                    feeds::profile(hub, p.user, p.before, p.limit).await,
                ),
                FeedOp::FeedLike(p) => answer(replier, feeds::like(hub, me, p.post).await),
                FeedOp::FeedUnlike(p) => answer(replier, feeds::unlike(hub, me, p.post).await),
                FeedOp::FeedComment(p) => {
                    answer(replier, feeds::comment(hub, me, p.post, p.text).await)
                }
                FeedOp::FeedDelete(p) => answer(replier, feeds::delete(hub, me, p.post).await),
            }
        });
    }
}

fn answer<T: Serialize>(replier: Replier, result: Result<T, ErrorBody>) {
    match result {
        Ok(ok) => replier.ok(&ok),
        Err(err) => replier.fail(err),
    }
}

//! Client operations: the `op` names, their parameters and their `ok` reply shapes, one file
//! per area.

pub mod activity;
pub mod chat;
pub mod claim;
pub mod feed;
pub mod session;

pub use activity::*;
pub use chat::*;
pub use claim::*;
pub use feed::*;
pub use session::*;

use serde::de::DeserializeOwned;

/// Every operation a client can request, with its parameters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Op {
    /// `auth`
    Auth(AuthParams),
    /// `time.sync`
    TimeSync(TimeSyncParams),
    /// `room.join`
    RoomJoin(RoomJoinParams),
    /// `room.leave`
    RoomLeave(RoomRef),
    /// `room.send`
    RoomSend(RoomSendParams),
    /// `room.history`
    RoomHistory(RoomHistoryParams),
    /// `dm.send`
    DmSend(DmSendParams),
    /// `follow`
    Follow(UserRef),
    /// `unfollow`
    Unfollow(UserRef),
    /// `feed.post`
    FeedPost(FeedPostParams),
    /// `feed.timeline`
    FeedTimeline(FeedTimelineParams),
    /// `feed.profile`
    FeedProfile(FeedProfileParams),
    /// `feed.like`
    FeedLike(PostRef),
    /// `feed.unlike`
    FeedUnlike(PostRef),
    /// `feed.comment`
    FeedComment(FeedCommentParams),
    /// `feed.delete`
    FeedDelete(PostRef),
    /// `activity.subscribe`
    ActivitySubscribe(ActivityRef),
    /// `activity.unsubscribe`
    ActivityUnsubscribe(ActivityRef),
    /// `claim`
    Claim(ClaimParams),
    /// `claim.cancel`
    ClaimCancel(ClaimCancelParams),
}

/// Every op name, in documentation order.
pub const OP_NAMES: &[&str] = &[
    "auth",
    "time.sync",
    "room.join",
    "room.leave",
    "room.send",
    "room.history",
    "dm.send",
    "follow",
    "unfollow",
    "feed.post",
    "feed.timeline",
    "feed.profile",
    "feed.like",
    "feed.unlike",
    "feed.comment",
    "feed.delete",
    "activity.subscribe",
    "activity.unsubscribe",
    "claim",
    "claim.cancel",
];

fn params<T: DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str(text)
}

impl Op {
    /// Decodes the parameters of op `name` from the whole frame `text` (the envelope fields are
    /// ignored by every parameter type). `None` when the op is unknown.
    pub fn decode(name: &str, text: &str) -> Option<Result<Op, serde_json::Error>> {
        Some(match name {
            "auth" => params(text).map(Op::Auth),
            "time.sync" => params(text).map(Op::TimeSync),
            "room.join" => params(text).map(Op::RoomJoin),
            "room.leave" => params(text).map(Op::RoomLeave),
            "room.send" => params(text).map(Op::RoomSend),
            "room.history" => params(text).map(Op::RoomHistory),
            "dm.send" => params(text).map(Op::DmSend),
            "follow" => params(text).map(Op::Follow),
            "unfollow" => params(text).map(Op::Unfollow),
            "feed.post" => params(text).map(Op::FeedPost),
            "feed.timeline" => params(text).map(Op::FeedTimeline),
            "feed.profile" => params(text).map(Op::FeedProfile),
            "feed.like" => params(text).map(Op::FeedLike),
            "feed.unlike" => params(text).map(Op::FeedUnlike),
            "feed.comment" => params(text).map(Op::FeedComment),
            "feed.delete" => params(text).map(Op::FeedDelete),
            "activity.subscribe" => params(text).map(Op::ActivitySubscribe),
            "activity.unsubscribe" => params(text).map(Op::ActivityUnsubscribe),
            "claim" => params(text).map(Op::Claim),
            "claim.cancel" => params(text).map(Op::ClaimCancel),
            _ => return None,
        })
    }

    /// The op's wire name (a `&'static str`, usable as a metrics label).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Auth(_) => "auth",
            Op::TimeSync(_) => "time.sync",
            Op::RoomJoin(_) => "room.join",
            Op::RoomLeave(_) => "room.leave",
            Op::RoomSend(_) => "room.send",
            Op::RoomHistory(_) => "room.history",
            Op::DmSend(_) => "dm.send",
            Op::Follow(_) => "follow",
            Op::Unfollow(_) => "unfollow",
            Op::FeedPost(_) => "feed.post",
            Op::FeedTimeline(_) => "feed.timeline",
            Op::FeedProfile(_) => "feed.profile",
            Op::FeedLike(_) => "feed.like",
            Op::FeedUnlike(_) => "feed.unlike",
            Op::FeedComment(_) => "feed.comment",
            Op::FeedDelete(_) => "feed.delete",
            Op::ActivitySubscribe(_) => "activity.subscribe",
            Op::ActivityUnsubscribe(_) => "activity.unsubscribe",
            Op::Claim(_) => "claim",
            Op::ClaimCancel(_) => "claim.cancel",
        }
    }

    /// The static name for a (possibly unknown) op string, for metrics labels.
    pub fn static_name(name: &str) -> &'static str {
        OP_NAMES
            .iter()
            .find(|n| **n == name)
            .copied()
            .unwrap_or("unknown")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_decodes_or_fails_on_params_only() {
        for name in OP_NAMES {
            let decoded = Op::decode(name, r#"{"id":1}"#);
            assert!(decoded.is_some(), "{name} is listed but not decodable");
        }
        assert!(Op::decode("nope", "{}").is_none());
    }
}

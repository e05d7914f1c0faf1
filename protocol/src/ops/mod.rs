//! Client operations: the `op` names, their parameters and their `ok` reply shapes, one file
//! per area, and the op table below: the one listing of every op from which decoding, names,
//! areas and shedding priorities derive (see `table.rs`).

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

mod table;

pub use table::Priority;
use table::op_table;

// The op table: every op once, in documentation order, with its wire name, its parameters,
// its area and its shedding class. To add an op: give it a line here, handle its variant in
// the area's session file (the match there is exhaustive), and describe it in README.md.
op_table! {
    /// Session ops: `auth` and `time.sync`, served before authentication and never shed.
    Session(SessionOp) {
        /// `auth`
        Auth(AuthParams) = "auth", Critical;
        /// `time.sync`
        TimeSync(TimeSyncParams) = "time.sync", Critical;
    }
    /// Chat ops: rooms and direct messages.
    Chat(ChatOp) {
        /// `room.join`
        RoomJoin(RoomJoinParams) = "room.join", Medium;
        /// `room.leave`
        RoomLeave(RoomRef) = "room.leave", Medium;
        /// `room.send`
        RoomSend(RoomSendParams) = "room.send", Medium;
        /// `room.history`
        RoomHistory(RoomHistoryParams) = "room.history", Low;
        /// `dm.send`
        DmSend(DmSendParams) = "dm.send", Medium;
    }
    /// Social ops: follows, posts, likes, comments and timelines.
    Feed(FeedOp) {
        /// `follow`
        Follow(UserRef) = "follow", Low;
        /// `unfollow`
        Unfollow(UserRef) = "unfollow", Low;
        /// `feed.post`
        FeedPost(FeedPostParams) = "feed.post", Low;
        /// `feed.timeline`
        FeedTimeline(FeedTimelineParams) = "feed.timeline", Low;
        /// `feed.profile`
        FeedProfile(FeedProfileParams) = "feed.profile", Low;
        /// `feed.like`
        FeedLike(PostRef) = "feed.like", Low;
        /// `feed.unlike`
        FeedUnlike(PostRef) = "feed.unlike", Low;
        /// `feed.comment`
        FeedComment(FeedCommentParams) = "feed.comment", Low;
        /// `feed.delete`
        FeedDelete(PostRef) = "feed.delete", Low;
    }
    /// Live-promotion ops: watching an activity's countdown and stock.
    Activity(ActivityOp) {
        /// `activity.subscribe`
        ActivitySubscribe(ActivityRef) = "activity.subscribe", High;
        /// `activity.unsubscribe`
        ActivityUnsubscribe(ActivityRef) = "activity.unsubscribe", High;
    }
    /// Claim ops: taking and giving back a hold.
    Claim(ClaimOp) {
        /// `claim`
        Claim(ClaimParams) = "claim", High;
        /// `claim.cancel`
        ClaimCancel(ClaimCancelParams) = "claim.cancel", High;
    }
}

impl Op {
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

    /// Every op with valid sample parameters, its area and its shedding class: the pin. A
    /// change of area or priority here is a change of behaviour (SPEC section 7).
    const PINNED: [(&str, &str, Area, Priority); 20] = [
        (
            "auth",
            r#"{"token":"t"}"#,
            Area::Session,
            Priority::Critical,
        ),
        (
            "time.sync",
            r#"{"client_time":1}"#,
            Area::Session,
            Priority::Critical,
        ),
        ("room.join", r#"{"room":1}"#, Area::Chat, Priority::Medium),
        ("room.leave", r#"{"room":1}"#, Area::Chat, Priority::Medium),
        (
            "room.send",
            r#"{"room":1,"text":"t","client_msg_id":"c"}"#,
            Area::Chat,
            Priority::Medium,
        ),
        ("room.history", r#"{"room":1}"#, Area::Chat, Priority::Low),
        (
            "dm.send",
            r#"{"to":2,"text":"t","client_msg_id":"c"}"#,
            Area::Chat,
            Priority::Medium,
        ),
        ("follow", r#"{"user":2}"#, Area::Feed, Priority::Low),
        ("unfollow", r#"{"user":2}"#, Area::Feed, Priority::Low),
        ("feed.post", r#"{"text":"t"}"#, Area::Feed, Priority::Low),
        ("feed.timeline", r#"{}"#, Area::Feed, Priority::Low),
        ("feed.profile", r#"{"user":2}"#, Area::Feed, Priority::Low),
        ("feed.like", r#"{"post":1}"#, Area::Feed, Priority::Low),
        ("feed.unlike", r#"{"post":1}"#, Area::Feed, Priority::Low),
        (
            "feed.comment",
            r#"{"post":1,"text":"t"}"#,
            Area::Feed,
            Priority::Low,
        ),
        ("feed.delete", r#"{"post":1}"#, Area::Feed, Priority::Low),
        (
            "activity.subscribe",
            r#"{"activity":1}"#,
            Area::Activity,
            Priority::High,
        ),
        (
            "activity.unsubscribe",
            r#"{"activity":1}"#,
            Area::Activity,
            Priority::High,
        ),
        (
            "claim",
            r#"{"activity":1,"key":"k"}"#,
            Area::Claim,
            Priority::High,
        ),
        (
            "claim.cancel",
            r#"{"claim_id":1}"#,
            Area::Claim,
            Priority::High,
        ),
    ];

    #[test]
    fn every_name_decodes_or_fails_on_params_only() {
        for name in OP_NAMES {
            let decoded = Op::decode(name, r#"{"id":1}"#);
            assert!(decoded.is_some(), "{name} is listed but not decodable");
        }
        assert!(Op::decode("nope", "{}").is_none());
    }

    #[test]
    fn every_name_round_trips_with_its_area_and_priority() {
        assert_eq!(PINNED.map(|(name, ..)| name), OP_NAMES);
        for (name, params, area, priority) in PINNED {
            let op = Op::decode(name, params).unwrap().unwrap();
            assert_eq!(op.name(), name);
            assert_eq!(Op::static_name(name), name);
            assert_eq!(op.area(), area, "{name}");
            assert_eq!(op.priority(), priority, "{name}");
        }
        assert_eq!(Op::static_name("nope"), "unknown");
    }

    #[test]
    fn priorities_order_the_shedding() {
        assert!(Priority::Low < Priority::Medium);
        assert!(Priority::Medium < Priority::High);
        assert!(Priority::High < Priority::Critical);
        assert_eq!(Priority::Critical as u8, 4);
    }
}

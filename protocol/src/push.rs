//! Server pushes: `{"ev": "<name>", ...}` frames the server sends unasked.

use serde::{Deserialize, Serialize};

use crate::EpochMs;
use crate::UserId;
use crate::ops::{ActivityId, ClaimStatus, EndReason};
use crate::ops::{ChatMessage, PresenceState, RoomId};
use crate::rules::Unmet;

/// Every push event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev")]
#[non_exhaustive]
pub enum Push {
    /// The server is shutting down; reconnect after the given delay (jittered per client so
    /// reconnects spread out). The socket closes with 1001 shortly after.
    #[serde(rename = "server.going_away")]
    GoingAway {
        /// How long to wait before reconnecting.
        reconnect_after_ms: u64,
    },

    // Chat.
    /// A message in a room the client joined (or a DM to or from its user).
    #[serde(rename = "room.message")]
    RoomMessage(ChatMessage),
    /// A user's first session joined a room, or their last one left it.
    #[serde(rename = "presence")]
    Presence {
        /// The room.
        room: RoomId,
        /// Who.
        user: UserId,
        /// `joined` or `left`.
        state: PresenceState,
    },

    // --- Promotions (activity.*) ---
    /// A countdown tick before an activity starts: every 10 s while more than a minute is
    /// left, then every second (see protocol/README.md, "Promotions").
    #[serde(rename = "activity.countdown")]
    ActivityCountdown {
        /// The activity.
        activity: ActivityId,
        /// Whole seconds until `starts_at` (the tick is sent at `starts_at - seconds_left * 1000`).
        seconds_left: i64,
        /// The server clock when the tick was sent.
        server_time: EpochMs,
    },
    /// The server clock reached `starts_at`: claims are open.
    #[serde(rename = "activity.started")]
    ActivityStarted {
        /// The activity.
        activity: ActivityId,
        /// The server clock when the frame was sent (never before `starts_at`).
        server_time: EpochMs,
    },
    /// The activity is over.
    #[serde(rename = "activity.ended")]
    ActivityEnded {
        /// The activity.
        activity: ActivityId,
        /// Why.
        reason: EndReason,
        /// The server clock when the frame was sent.
        server_time: EpochMs,
    },
    /// A message from the activity's merchant to its watchers.
    #[serde(rename = "activity.broadcast")]
    ActivityBroadcast {
        /// The activity.
        activity: ActivityId,
        /// The merchant's text.
        text: String,
        /// When the server accepted it.
        ts: EpochMs,
    },

    /// The receiving user's eligibility for a promotion changed while they watch it (they
    /// followed the merchant, posted, an invitee registered...): sent to the user's sessions
    /// on the node that holds their subscription.
    #[serde(rename = "activity.eligibility")]
    ActivityEligibility {
        /// The activity.
        activity: ActivityId,
        /// Whether the user may claim now.
        eligible: bool,
        /// The rules still unmet (empty when eligible).
        unmet: Vec<Unmet>,
    },

    // --- Claims ---
    /// A claim of the receiving user changed (sent to every device of the claimant).
    #[serde(rename = "claim.updated")]
    ClaimUpdated {
        /// The claim.
        claim_id: i64,
        /// Its activity.
        activity: ActivityId,
        /// Its item.
        item: i64,
        /// The new status.
        status: ClaimStatus,
        /// A coupon promotion's code, while the claim is held or confirmed (null otherwise).
        #[serde(default)]
        coupon_code: Option<String>,
    },
    /// Free slots left in an activity (coalesced: at most ~10 per second per activity).
    #[serde(rename = "activity.stock")]
    ActivityStock {
        /// The activity.
        activity: ActivityId,
        /// Slots neither held nor confirmed.
        left: i64,
    },

    // --- Feeds ---
    /// Someone the user follows (or an animal the user follows) has a new post.
    #[serde(rename = "feed.post")]
    FeedPost {
        /// The post.
        post: crate::ops::Post,
    },
    /// Someone liked one of the user's posts.
    #[serde(rename = "feed.liked")]
    FeedLiked {
        /// The post.
        post: crate::ops::PostId,
        /// Who liked it.
        by: crate::UserId,
    },
    /// Someone commented on one of the user's posts.
    #[serde(rename = "feed.commented")]
    FeedCommented {
        /// The post.
        post: crate::ops::PostId,
        /// Who commented.
        by: crate::UserId,
        /// The comment.
        text: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn going_away_round_trips() {
        let push = Push::GoingAway {
            reconnect_after_ms: 1500,
        };
        let text = crate::reply::push(&push);
        assert_eq!(
            text,
            r#"{"ev":"server.going_away","reconnect_after_ms":1500}"#
        );
        assert_eq!(serde_json::from_str::<Push>(&text).ok(), Some(push));
    }

    #[test]
    fn chat_pushes_round_trip() {
        let push = Push::RoomMessage(ChatMessage {
            room: 3,
            seq: 7,
            from: 2,
            text: "hi".into(),
            ts: 1000,
            client_msg_id: "c1".into(),
        });
        let text = crate::reply::push(&push);
        assert_eq!(
            text,
            r#"{"ev":"room.message","room":3,"seq":7,"from":2,"text":"hi","ts":1000,"client_msg_id":"c1"}"#
        );
        assert_eq!(serde_json::from_str::<Push>(&text).ok(), Some(push));
        let push = Push::Presence {
            room: 3,
            user: 2,
            state: PresenceState::Left,
        };
        let text = crate::reply::push(&push);
        assert_eq!(
            text,
            r#"{"ev":"presence","room":3,"user":2,"state":"left"}"#
        );
        assert_eq!(serde_json::from_str::<Push>(&text).ok(), Some(push));
    }

    #[test]
    fn activity_pushes_use_their_wire_names() {
        let ended = Push::ActivityEnded {
            activity: 3,
            reason: EndReason::SoldOut,
            server_time: 10,
        };
        let text = crate::reply::push(&ended);
        assert_eq!(
            text,
            r#"{"ev":"activity.ended","activity":3,"reason":"sold_out","server_time":10}"#
        );
        assert_eq!(serde_json::from_str::<Push>(&text).ok(), Some(ended));
        let tick = Push::ActivityCountdown {
            activity: 3,
            seconds_left: 9,
            server_time: 11,
        };
        assert_eq!(
            crate::reply::push(&tick),
            r#"{"ev":"activity.countdown","activity":3,"seconds_left":9,"server_time":11}"#
        );
    }
}

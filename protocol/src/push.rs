//! Server pushes: `{"ev": "<name>", ...}` frames the server sends unasked.

use serde::{Deserialize, Serialize};

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
}

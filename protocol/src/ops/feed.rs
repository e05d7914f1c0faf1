//! Social ops: follows, posts, timelines.

use serde::{Deserialize, Serialize};

use crate::UserId;

/// `follow {user}` / `unfollow {user}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    /// The other user.
    pub user: UserId,
}

/// `feed.post {text, media[]?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedPostParams {
    /// Post text.
    pub text: String,
    /// Media URLs (http/https).
    #[serde(default)]
    pub media: Vec<String>,
}

/// `feed.timeline {before?, limit}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedTimelineParams {
    /// Keyset cursor from the previous page; the newest posts when absent.
    #[serde(default)]
    pub before: Option<i64>,
    /// Page size.
    pub limit: u32,
}

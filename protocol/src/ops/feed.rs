//! Social ops: follows, posts, likes, comments and timelines, with their replies.

use serde::{Deserialize, Serialize};

use crate::{EpochMs, UserId};

/// Post identifiers (database ids; also the timeline's keyset cursor).
pub type PostId = i64;

/// Animal identifiers (the promotions catalogue's ids).
pub type AnimalId = i64;

/// Most media URLs one post may carry.
pub const MAX_MEDIA: usize = 10;

/// Longest media URL, in bytes.
pub const MAX_MEDIA_URL_BYTES: usize = 2048;

/// Largest page a timeline, profile, list or comments page returns.
pub const MAX_PAGE: u32 = 100;

/// Page size of a timeline, profile, list or comments page when the request gives no `limit`.
pub const DEFAULT_PAGE: u32 = 20;

fn default_page() -> u32 {
    DEFAULT_PAGE
}

/// `follow {user}` / `unfollow {user}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    /// The other user.
    pub user: UserId,
}

/// `feed.post {text, media[]?, animal?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedPostParams {
    /// Post text (at most [`crate::limits::DEFAULT_MAX_TEXT_CHARS`] characters).
    pub text: String,
    /// Media URLs (http/https, at most [`MAX_MEDIA`]).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 10))]
    pub media: Vec<String>,
    /// Tags the post as an update about this animal (merchants only): users who follow the
    /// animal (its claimants) see it too.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub animal: Option<AnimalId>,
}

/// `feed.timeline {before?, limit?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedTimelineParams {
    /// Keyset cursor from the previous page; the newest posts when absent.
    #[serde(default)]
    pub before: Option<PostId>,
    /// Page size (1 to [`MAX_PAGE`]; [`DEFAULT_PAGE`] when absent).
    #[serde(default = "default_page")]
    pub limit: u32,
}

/// `feed.profile {user, before?, limit?}`: one author's posts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedProfileParams {
    /// The author.
    pub user: UserId,
    /// Keyset cursor from the previous page; the newest posts when absent.
    #[serde(default)]
    pub before: Option<PostId>,
    /// Page size (1 to [`MAX_PAGE`]; [`DEFAULT_PAGE`] when absent).
    #[serde(default = "default_page")]
    pub limit: u32,
}

/// `feed.like {post}`, `feed.unlike {post}`, `feed.delete {post}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostRef {
    /// The post.
    pub post: PostId,
}

/// `feed.comment {post, text}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedCommentParams {
    /// The post.
    pub post: PostId,
    /// Comment text (at most [`crate::limits::DEFAULT_MAX_TEXT_CHARS`] characters).
    pub text: String,
}

/// A post as clients see it (timeline entries, `feed.post` pushes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Post {
    /// Its id.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub post_id: PostId,
    /// Who wrote it.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub author: UserId,
    /// Its text.
    pub text: String,
    /// Its media URLs.
    pub media: Vec<String>,
    /// The animal it is an update about, if any.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>, required = true))]
    pub animal: Option<AnimalId>,
    /// Likes so far.
    pub likes: u64,
    /// Comments so far.
    pub comments: u64,
    /// When it was posted.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub created_at: EpochMs,
}

/// Reply to `feed.post`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedPostOk {
    /// The new post's id.
    pub post_id: PostId,
    /// When it was posted.
    pub created_at: EpochMs,
}

/// Reply to `feed.timeline` and `feed.profile`: a page of posts, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PostsPage {
    /// The posts.
    pub posts: Vec<Post>,
    /// The `before` cursor of the next (older) page; null on the last page.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>, required = true))]
    pub next_before: Option<PostId>,
}

/// Reply to `feed.like` / `feed.unlike`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LikeOk {
    /// The post's like count after the change.
    pub likes: u64,
    /// Whether the call changed anything (false for a repeated like or unlike).
    pub changed: bool,
}

/// Reply to `feed.comment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommentOk {
    /// The new comment's id.
    pub comment_id: i64,
    /// The post's comment count after it.
    pub comments: u64,
}

/// A comment on a post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Comment {
    /// Its id (the comments page cursor).
    pub comment_id: i64,
    /// The post.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub post: PostId,
    /// Who wrote it.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub author: UserId,
    /// Its text.
    pub text: String,
    /// When it was written.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub created_at: EpochMs,
}

/// The empty `{}` reply of `follow`, `unfollow` and `feed.delete`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Done {}

//! The `SocialStore` port: the follow graph, posts, likes, comments, timelines and the
//! audience queries the feed fan-out runs.

use async_trait::async_trait;
use corral_protocol::ops::{AnimalId, Comment, Post, PostId};
use corral_protocol::{EpochMs, UserId};

/// Why a social operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SocialError {
    /// The user, post or comment does not exist (or the post was deleted).
    #[error("not found")]
    NotFound,
    /// The caller may not do this (e.g. delete someone else's post).
    #[error("forbidden")]
    Forbidden,
    /// The request breaks a graph rule (e.g. following oneself).
    #[error("{0}")]
    Invalid(String),
    /// The storage failed.
    #[error("storage: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A post to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPost {
    /// Who writes it.
    pub author: UserId,
    /// Validated text.
    pub text: String,
    /// Validated media URLs.
    pub media: Vec<String>,
    /// The animal it is an update about.
    pub animal: Option<AnimalId>,
    /// Server time of the post.
    pub created_at: EpochMs,
}

/// A user's follower and following counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowCounts {
    /// How many follow them.
    pub followers: u64,
    /// How many they follow.
    pub following: u64,
}

/// The result of a like or unlike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LikeChange {
    /// The post's author (who gets the `feed.liked` push).
    pub author: UserId,
    /// The like count after the call.
    pub likes: u64,
    /// Whether the call changed anything.
    pub changed: bool,
}

/// The result of a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommentAdded {
    /// The post's author.
    pub author: UserId,
    /// The new comment's id.
    pub comment_id: i64,
    /// The comment count after it.
    pub comments: u64,
}

/// A page of user ids, highest id first, for follower and following lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    /// The users.
    pub users: Vec<UserId>,
    /// The `before` cursor of the next page; `None` on the last one.
    pub next_before: Option<UserId>,
}

/// Durable social state. Every method is one short transaction; counters stay exact under
/// concurrency (unique pairs, counters updated in the transaction that inserts the pair).
#[async_trait]
pub trait SocialStore: Send + Sync + 'static {
    /// `follower` follows `followee`; returns whether the edge is new. `NotFound` for an
    /// unknown followee, `Invalid` for a self-follow.
    async fn follow(
        &self,
        follower: UserId,
        followee: UserId,
        now: EpochMs,
    ) -> Result<bool, SocialError>;

    /// Removes the edge; returns whether there was one.
    async fn unfollow(&self, follower: UserId, followee: UserId) -> Result<bool, SocialError>;

    /// Follower and following counts; `NotFound` for an unknown user.
    async fn follow_counts(&self, user: UserId) -> Result<FollowCounts, SocialError>;

    /// Who follows `user`, highest id first, strictly below `before`.
    async fn followers(
        &self,
        user: UserId,
        before: Option<UserId>,
        limit: u32,
    ) -> Result<UserPage, SocialError>;

    /// Whom `user` follows, highest id first, strictly below `before`.
    async fn following(
        &self,
        user: UserId,
        before: Option<UserId>,
        limit: u32,
    ) -> Result<UserPage, SocialError>;

    /// `user` follows updates about `animal` (called when their claim on it is confirmed);
    /// returns whether this is new.
    async fn follow_animal(
        &self,
        user: UserId,
        animal: AnimalId,
        now: EpochMs,
    ) -> Result<bool, SocialError>;

    /// Stores a post and returns it as clients see it. A tagged animal must exist
    /// (`NotFound`) and belong to the author (`Forbidden`).
    async fn create_post(&self, post: NewPost) -> Result<Post, SocialError>;

    /// A live (not deleted) post.
    async fn post(&self, post: PostId) -> Result<Post, SocialError>;

    /// Soft-deletes `post`; only its author may. Returns the deleted post.
    async fn delete_post(
        &self,
        post: PostId,
        by: UserId,
        now: EpochMs,
    ) -> Result<Post, SocialError>;

    /// `user`'s timeline: their own posts, posts of authors they follow and posts tagged with
    /// animals they follow; newest first, ids strictly below `before`.
    async fn timeline(
        &self,
        user: UserId,
        before: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<Post>, SocialError>;

    /// `author`'s posts, newest first, ids strictly below `before`.
    async fn profile(
        &self,
        author: UserId,
        before: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<Post>, SocialError>;

    /// `user` likes `post` (idempotent).
    async fn like(
        &self,
        user: UserId,
        post: PostId,
        now: EpochMs,
    ) -> Result<LikeChange, SocialError>;

    /// `user` takes their like back (idempotent).
    async fn unlike(&self, user: UserId, post: PostId) -> Result<LikeChange, SocialError>;

    /// `user` comments on `post`.
    async fn comment(
        &self,
        user: UserId,
        post: PostId,
        text: &str,
        now: EpochMs,
    ) -> Result<CommentAdded, SocialError>;

    /// Comments on `post`, newest first, ids strictly below `before`.
    async fn comments(
        &self,
        post: PostId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Comment>, SocialError>;

    /// How many users a post by `author` (tagged with `animal`) is for: followers of the
    /// author plus followers of the animal (an upper bound when both overlap).
    async fn audience_size(
        &self,
        author: UserId,
        animal: Option<AnimalId>,
    ) -> Result<u64, SocialError>;

    /// The audience in ascending id order, strictly above `after`, at most `limit`, without
    /// duplicates: the fan-out's follower scan, one chunk per call.
    async fn audience_page(
        &self,
        author: UserId,
        animal: Option<AnimalId>,
        after: UserId,
        limit: u32,
    ) -> Result<Vec<UserId>, SocialError>;

    /// Which of `candidates` are in the audience: the fan-out's online-user scan, for
    /// authors with many more followers than the node has online users.
    async fn audience_among(
        &self,
        author: UserId,
        animal: Option<AnimalId>,
        candidates: &[UserId],
    ) -> Result<Vec<UserId>, SocialError>;
}

//! Feeds: the rules of the social ops (validation, permissions, paging) shared by the
//! WebSocket session and the HTTP API, and the live fan-out of posts to online followers.
//!
//! Strategy (see `docs/feeds.md`): timelines are read from SQL on demand (fan-out on read, so
//! a post costs one row whatever the author's follower count), and only users online on this
//! node get a live `feed.post` (every other node runs the same fan-out for its own users,
//! told by one cluster event per post). The audience is computed on a spawned task, chunk by chunk,
//! never inside an actor: either by scanning the author's followers (small audiences) or, when
//! the audience is much larger than the node's online population, by asking the store which of
//! the online users are in it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use bytestring::ByteString;
use corral_protocol::limits::DEFAULT_MAX_TEXT_CHARS;
use corral_protocol::ops::{
    AnimalId, CommentOk, Done, FeedPostParams, LikeOk, MAX_MEDIA, MAX_MEDIA_URL_BYTES, MAX_PAGE,
    Post, PostId, PostsPage,
};
use corral_protocol::{ErrorBody, ErrorCode, Push, Role, UserId, reply};

use crate::clock::now_ms;
use crate::hub::Hub;
use crate::metric_catalogue as metric;
use crate::ports::cluster::ClusterEvent;
use crate::ports::{Identity, NewPost, SocialError};

/// User ids per store query and per delivery burst of the fan-out; the task yields between
/// chunks so other work on its thread keeps running.
pub const FANOUT_CHUNK: usize = 1000;

/// The fan-out iterates the node's online users instead of the audience when the audience is
/// more than this many times larger (a membership probe costs about this many scanned rows).
pub const ONLINE_SCAN_RATIO: u64 = 2;

// A refused or failed feed operation is answered with the protocol's `ErrorBody`, over the
// WebSocket and the HTTP API alike; a store failure's cause is logged here, not shown.
impl From<SocialError> for ErrorBody {
    fn from(err: SocialError) -> Self {
        match err {
            SocialError::NotFound => ErrorBody::new(ErrorCode::NotFound, "not found"),
            SocialError::Forbidden => ErrorBody::new(ErrorCode::Forbidden, "not yours"),
            SocialError::Invalid(msg) => ErrorBody::new(ErrorCode::BadRequest, msg),
            SocialError::Storage(msg) => {
                tracing::error!(cause = %msg, "social store failed");
                ErrorBody::new(ErrorCode::Unavailable, "storage unavailable, retry later")
            }
        }
    }
}

/// Checks a page size (1 to [`MAX_PAGE`]).
pub fn page_limit(limit: u32) -> Result<u32, ErrorBody> {
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ErrorBody::new(
            ErrorCode::BadRequest,
            format!("limit must be 1 to {MAX_PAGE}"),
        ))
    }
}

fn check_text(text: &str, allow_empty: bool) -> Result<(), ErrorBody> {
    if text.chars().count() > DEFAULT_MAX_TEXT_CHARS {
        return Err(ErrorBody::new(
            ErrorCode::TooLarge,
            format!("text is over {DEFAULT_MAX_TEXT_CHARS} characters"),
        ));
    }
    if !allow_empty && text.trim().is_empty() {
        return Err(ErrorBody::new(ErrorCode::BadRequest, "text is empty"));
    }
    Ok(())
}

/// Whether `url` is an absolute http(s) URL with a plain host (no credentials, no spaces or
/// control characters, no markup characters).
pub fn is_media_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return false;
    };
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '\\'))
    {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (host, port) = if authority.starts_with('[') {
        match authority.split_once(']') {
            Some((h, "")) => (&authority[..=h.len()], None),
            Some((h, p)) => (&authority[..=h.len()], p.strip_prefix(':').or(Some(""))),
            None => return false,
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !v6.is_empty() && v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':')
    } else {
        !host.is_empty()
            && !host.starts_with(['.', '-'])
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    host_ok && port_ok
}

fn check_media(media: &[String]) -> Result<(), ErrorBody> {
    if media.len() > MAX_MEDIA {
        return Err(ErrorBody::new(
            ErrorCode::TooLarge,
            format!("at most {MAX_MEDIA} media URLs"),
        ));
    }
    for url in media {
        if url.len() > MAX_MEDIA_URL_BYTES {
            return Err(ErrorBody::new(
                ErrorCode::TooLarge,
                format!("media URLs are at most {MAX_MEDIA_URL_BYTES} bytes"),
            ));
        }
        if !is_media_url(url) {
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                "media must be absolute http or https URLs",
            ));
        }
    }
    Ok(())
}

fn page(posts: Vec<Post>, limit: u32) -> PostsPage {
    let next_before = if posts.len() == limit as usize {
        posts.last().map(|p| p.post_id)
    } else {
        None
    };
    PostsPage { posts, next_before }
}

/// `follow {user}`.
pub async fn follow(hub: &Hub, who: UserId, user: UserId) -> Result<Done, ErrorBody> {
    hub.social.follow(who, user, now_ms()).await?;
    // A promotion of `user` may be open to followers only.
    hub.claims.facts_changed(who);
    Ok(Done {})
}

/// `unfollow {user}`.
pub async fn unfollow(hub: &Hub, who: UserId, user: UserId) -> Result<Done, ErrorBody> {
    hub.social.unfollow(who, user).await?;
    hub.claims.facts_changed(who);
    Ok(Done {})
}

/// `feed.post`: validates and stores the post, replies with it, and pushes it to the online
/// audience in the background.
pub async fn publish(
    hub: &Arc<Hub>,
    who: Identity,
    params: FeedPostParams,
) -> Result<Post, ErrorBody> {
    check_text(&params.text, !params.media.is_empty())?;
    check_media(&params.media)?;
    if params.animal.is_some() && !matches!(who.role, Role::Merchant | Role::Admin) {
        return Err(ErrorBody::new(
            ErrorCode::Forbidden,
            "only merchants post animal updates",
        ));
    }
    let post = hub
        .social
        .create_post(NewPost {
            author: who.user_id,
            text: params.text,
            media: params.media,
            animal: params.animal,
            created_at: now_ms(),
        })
        .await?;
    metrics::counter!(metric::FEED_POSTS).increment(1);
    // `posts` requirements count it.
    hub.claims.facts_changed(who.user_id);
    relay_post(hub, &post);
    Ok(post)
}

/// Pushes a new post to its audience on every node: this node's fan-out runs on a spawned
/// task, and one event per post (not per follower) tells the other nodes to run theirs.
fn relay_post(hub: &Arc<Hub>, post: &Post) {
    let frame = ByteString::from(reply::push(&Push::FeedPost { post: post.clone() }));
    let (author, animal) = (post.author, post.animal);
    hub.users.bus().publish(ClusterEvent::Post {
        author,
        animal,
        frame: frame.clone(),
    });
    spawn_fan_out(hub, author, animal, frame, HashSet::new());
}

/// Runs [`fan_out`] on a spawned task, logging a failure.
pub(crate) fn spawn_fan_out(
    hub: &Arc<Hub>,
    author: UserId,
    animal: Option<AnimalId>,
    frame: ByteString,
    skip: HashSet<UserId>,
) {
    let hub = hub.clone();
    actix::spawn(async move {
        if let Err(err) = fan_out(&hub, author, animal, &frame, &skip).await {
            tracing::warn!(%err, author, "feed fan-out failed");
        }
    });
}

/// What one fan-out did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanOutReport {
    /// Whether the node's online users were iterated (rather than the audience).
    pub scanned_online: bool,
    /// Users who got the frame on at least one device.
    pub users: usize,
}

/// Sends `frame` to every online user of this node in the audience of a post by `author`
/// (tagged with `animal`), on all their devices, except the users in `skip` (already served).
/// Runs in chunks and yields between them.
pub async fn fan_out(
    hub: &Hub,
    author: UserId,
    animal: Option<AnimalId>,
    frame: &ByteString,
    skip: &HashSet<UserId>,
) -> Result<FanOutReport, SocialError> {
    let started = Instant::now();
    let online = hub.users.online_count() as u64;
    let mut report = FanOutReport {
        scanned_online: false,
        users: 0,
    };
    if online == 0 {
        return Ok(report);
    }
    let audience = hub.social.audience_size(author, animal).await?;
    let mut deliver = |user: UserId| {
        if user != author && !skip.contains(&user) && hub.users.deliver(user, frame) > 0 {
            report.users += 1;
        }
    };
    let scanned_online = audience > ONLINE_SCAN_RATIO.saturating_mul(online);
    if scanned_online {
        let online_users = hub.users.online_users();
        for chunk in online_users.chunks(FANOUT_CHUNK) {
            for user in hub.social.audience_among(author, animal, chunk).await? {
                deliver(user);
            }
            tokio::task::yield_now().await;
        }
    } else {
        let mut after = 0;
        loop {
            let users = hub
                .social
                .audience_page(author, animal, after, FANOUT_CHUNK as u32)
                .await?;
            users.iter().copied().for_each(&mut deliver);
            match users.last() {
                Some(last) if users.len() == FANOUT_CHUNK => after = *last,
                _ => break,
            }
            tokio::task::yield_now().await;
        }
    }
    report.scanned_online = scanned_online;
    let strategy = if scanned_online {
        "online"
    } else {
        "followers"
    };
    metrics::histogram!(metric::FEED_FANOUT, "strategy" => strategy)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(metric::FEED_PUSHES).increment(report.users as u64);
    Ok(report)
}

/// `feed.delete {post}`: the author soft-deletes their post.
pub async fn delete(hub: &Hub, who: UserId, post: PostId) -> Result<Done, ErrorBody> {
    hub.social.delete_post(post, who, now_ms()).await?;
    hub.claims.facts_changed(who);
    Ok(Done {})
}

/// `feed.timeline {before?, limit}`.
pub async fn timeline(
    hub: &Hub,
    who: UserId,
    before: Option<PostId>,
    limit: u32,
) -> Result<PostsPage, ErrorBody> {
    let limit = page_limit(limit)?;
    Ok(page(hub.social.timeline(who, before, limit).await?, limit))
}

/// `feed.profile {user, before?, limit}`.
pub async fn profile(
    hub: &Hub,
    author: UserId,
    before: Option<PostId>,
    limit: u32,
) -> Result<PostsPage, ErrorBody> {
    let limit = page_limit(limit)?;
    Ok(page(
        hub.social.profile(author, before, limit).await?,
        limit,
    ))
}

/// `feed.like {post}`: the author is told (once per new like, not for their own).
pub async fn like(hub: &Hub, who: UserId, post: PostId) -> Result<LikeOk, ErrorBody> {
    let change = hub.social.like(who, post, now_ms()).await?;
    if change.changed && change.author != who {
        let frame = reply::push(&Push::FeedLiked { post, by: who });
        hub.users.push(change.author, &ByteString::from(frame));
    }
    Ok(LikeOk {
        likes: change.likes,
        changed: change.changed,
    })
}

/// `feed.unlike {post}`.
pub async fn unlike(hub: &Hub, who: UserId, post: PostId) -> Result<LikeOk, ErrorBody> {
    let change = hub.social.unlike(who, post).await?;
    Ok(LikeOk {
        likes: change.likes,
        changed: change.changed,
    })
}

/// `feed.comment {post, text}`: the author is told (not for their own comments).
pub async fn comment(
    hub: &Hub,
    who: UserId,
    post: PostId,
    text: String,
) -> Result<CommentOk, ErrorBody> {
    check_text(&text, false)?;
    let added = hub.social.comment(who, post, &text, now_ms()).await?;
    if added.author != who {
        let frame = reply::push(&Push::FeedCommented {
            post,
            by: who,
            text,
        });
        hub.users.push(added.author, &ByteString::from(frame));
    }
    Ok(CommentOk {
        comment_id: added.comment_id,
        comments: added.comments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_urls_are_checked() {
        for ok in [
            "https://cdn.example.com/a.jpg",
            "http://example.com",
            "HTTPS://Example.com:8443/x?y=1#z",
            "http://[::1]:8080/a",
            "http://[::1]/a",
            "http://127.0.0.1/p.png",
        ] {
            assert!(is_media_url(ok), "{ok}");
        }
        for bad in [
            "ftp://example.com/a",
            "javascript:alert(1)",
            "https://",
            "https:///path",
            "https://user:pw@example.com/",
            "https://exa mple.com/",
            "https://example.com/<script>",
            "https://example.com:99999/",
            "https://example.com:/",
            "//example.com/a",
            "https://-bad.com/",
        ] {
            assert!(!is_media_url(bad), "{bad}");
        }
    }

    #[test]
    fn limits_are_checked() {
        assert!(page_limit(0).is_err());
        assert!(page_limit(MAX_PAGE + 1).is_err());
        assert_eq!(page_limit(20), Ok(20));
        assert!(check_text("", false).is_err());
        assert!(check_text("", true).is_ok());
        let long = "x".repeat(DEFAULT_MAX_TEXT_CHARS + 1);
        assert_eq!(
            check_text(&long, false).map_err(|e| e.code),
            Err(ErrorCode::TooLarge)
        );
        let many = vec!["https://a.example/x".to_string(); MAX_MEDIA + 1];
        assert_eq!(
            check_media(&many).map_err(|e| e.code),
            Err(ErrorCode::TooLarge)
        );
    }
}

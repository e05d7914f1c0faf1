//! Feed routes under `/api/v1`: follows, profiles, posts, likes, comments and the timeline.
//! They apply the same rules as the WebSocket ops (`corral_actors::feeds`), pushes included.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use corral_actors::feeds;
use corral_protocol::UserId;
use corral_protocol::ops::{
    Comment, CommentOk, Done, FeedPostParams, LikeOk, Post, PostId, PostsPage,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::ApiError;
use crate::http::extract::Caller;
use crate::http::responses::{BadRequest, Forbidden, NotFound, Unauthenticated};
use crate::http::table::ApiRoute;
use crate::state::AppState;

/// The feed routes under `/api/v1`.
pub const ROUTES: &[ApiRoute] = &[
    ApiRoute {
        method: Method::GET,
        path: "/users/{id}",
        handler: |r| r.to(user),
    },
    ApiRoute {
        method: Method::POST,
        path: "/users/{id}/follow",
        handler: |r| r.to(follow),
    },
    ApiRoute {
        method: Method::DELETE,
        path: "/users/{id}/follow",
        handler: |r| r.to(unfollow),
    },
    ApiRoute {
        method: Method::GET,
        path: "/users/{id}/followers",
        handler: |r| r.to(followers),
    },
    ApiRoute {
        method: Method::GET,
        path: "/users/{id}/following",
        handler: |r| r.to(following),
    },
    ApiRoute {
        method: Method::GET,
        path: "/users/{id}/posts",
        handler: |r| r.to(profile),
    },
    ApiRoute {
        method: Method::GET,
        path: "/timeline",
        handler: |r| r.to(timeline),
    },
    ApiRoute {
        method: Method::POST,
        path: "/posts",
        handler: |r| r.to(create_post),
    },
    ApiRoute {
        method: Method::GET,
        path: "/posts/{id}",
        handler: |r| r.to(get_post),
    },
    ApiRoute {
        method: Method::DELETE,
        path: "/posts/{id}",
        handler: |r| r.to(delete_post),
    },
    ApiRoute {
        method: Method::POST,
        path: "/posts/{id}/like",
        handler: |r| r.to(like),
    },
    ApiRoute {
        method: Method::DELETE,
        path: "/posts/{id}/like",
        handler: |r| r.to(unlike),
    },
    ApiRoute {
        method: Method::POST,
        path: "/posts/{id}/comments",
        handler: |r| r.to(comment),
    },
    ApiRoute {
        method: Method::GET,
        path: "/posts/{id}/comments",
        handler: |r| r.to(comments),
    },
];

fn social(err: corral_actors::ports::SocialError) -> ApiError {
    corral_protocol::ErrorBody::from(err).into()
}

/// `?before=&limit=` of every paged route.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Keyset cursor: the `next_before` of the previous page.
    pub before: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: u32,
}

fn default_limit() -> u32 {
    corral_protocol::ops::feed::DEFAULT_PAGE
}

/// A user and their follow counts.
#[derive(Serialize, ToSchema)]
struct Profile {
    #[schema(value_type = i64)]
    user_id: UserId,
    username: String,
    /// Shown to the user itself and to admins, and for merchants (public businesses): other
    /// roles are nobody else's business (listing admins helps an attacker).
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<corral_protocol::Role>,
    followers: u64,
    following: u64,
}

/// A user profile with follower/following counts
#[utoipa::path(
    get,
    path = "/users/{id}",
    operation_id = "getUser",
    tag = "feeds",
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "The profile", body = Profile),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn user(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<UserId>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let record = state
        .repos
        .accounts
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::new(corral_protocol::ErrorCode::NotFound, "no such user"))?;
    let counts = state.hub.social.follow_counts(id).await.map_err(social)?;
    Ok(HttpResponse::Ok().json(Profile {
        user_id: record.id,
        username: record.username,
        role: (caller.0.user_id == record.id
            || caller.0.role == corral_protocol::Role::Admin
            || record.role == corral_protocol::Role::Merchant)
            .then_some(record.role),
        followers: counts.followers,
        following: counts.following,
    }))
}

/// Follow a user
#[utoipa::path(
    post,
    path = "/users/{id}/follow",
    operation_id = "followUser",
    tag = "feeds",
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "Following (again, harmlessly, if already)", body = Done),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn follow(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<UserId>,
) -> Result<HttpResponse, ApiError> {
    let done = feeds::follow(&state.hub, caller.0.user_id, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(done))
}

/// Unfollow a user
#[utoipa::path(
    delete,
    path = "/users/{id}/follow",
    operation_id = "unfollowUser",
    tag = "feeds",
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "Not following", body = Done),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn unfollow(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<UserId>,
) -> Result<HttpResponse, ApiError> {
    let done = feeds::unfollow(&state.hub, caller.0.user_id, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(done))
}

/// A page of user ids, newest follow first.
#[derive(Serialize, ToSchema)]
struct Users {
    #[schema(value_type = Vec<i64>)]
    users: Vec<UserId>,
    /// The `before` of the next page; null on the last page.
    #[schema(value_type = Option<i64>, required = true)]
    next_before: Option<UserId>,
}

/// Answers a page of user ids.
fn users_page(
    page: Result<corral_actors::ports::UserPage, corral_actors::ports::SocialError>,
) -> Result<HttpResponse, ApiError> {
    let page = page.map_err(social)?;
    Ok(HttpResponse::Ok().json(Users {
        users: page.users,
        next_before: page.next_before,
    }))
}

/// Followers of a user (paged)
#[utoipa::path(
    get,
    path = "/users/{id}/followers",
    operation_id = "listFollowers",
    tag = "feeds",
    params(("id" = i64, Path, description = "User id"), Paging),
    responses(
        (status = 200, description = "A page of user ids", body = Users),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn followers(
    state: web::Data<AppState>,
    _caller: Caller,
    id: web::Path<UserId>,
    paging: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    let limit = feeds::page_limit(paging.limit)?;
    users_page(
        state
            .hub
            .social
            .followers(id.into_inner(), paging.before, limit)
            .await,
    )
}

/// Who a user follows (paged)
#[utoipa::path(
    get,
    path = "/users/{id}/following",
    operation_id = "listFollowing",
    tag = "feeds",
    params(("id" = i64, Path, description = "User id"), Paging),
    responses(
        (status = 200, description = "A page of user ids", body = Users),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn following(
    state: web::Data<AppState>,
    _caller: Caller,
    id: web::Path<UserId>,
    paging: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    let limit = feeds::page_limit(paging.limit)?;
    users_page(
        state
            .hub
            .social
            .following(id.into_inner(), paging.before, limit)
            .await,
    )
}

/// A user's posts (paged, newest first)
#[utoipa::path(
    get,
    path = "/users/{id}/posts",
    operation_id = "listUserPosts",
    tag = "feeds",
    params(("id" = i64, Path, description = "User id"), Paging),
    responses(
        (status = 200, description = "A page of posts", body = PostsPage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn profile(
    state: web::Data<AppState>,
    _caller: Caller,
    id: web::Path<UserId>,
    paging: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    let page = feeds::profile(&state.hub, id.into_inner(), paging.before, paging.limit).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// The caller's timeline (keyset paged, newest first)
#[utoipa::path(
    get,
    path = "/timeline",
    operation_id = "timeline",
    tag = "feeds",
    params(Paging),
    responses(
        (status = 200, description = "A page of posts", body = PostsPage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn timeline(
    state: web::Data<AppState>,
    caller: Caller,
    paging: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    let page = feeds::timeline(&state.hub, caller.0.user_id, paging.before, paging.limit).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Publish a post
#[utoipa::path(
    post,
    path = "/posts",
    operation_id = "createPost",
    tag = "feeds",
    request_body = FeedPostParams,
    responses(
        (status = 201, description = "Published; online followers get `feed.post`", body = Post),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn create_post(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<FeedPostParams>,
) -> Result<HttpResponse, ApiError> {
    let post = feeds::publish(&state.hub, caller.0, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(post))
}

/// A post
#[utoipa::path(
    get,
    path = "/posts/{id}",
    operation_id = "getPost",
    tag = "feeds",
    params(("id" = i64, Path, description = "Post id")),
    responses(
        (status = 200, description = "The post", body = Post),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn get_post(
    state: web::Data<AppState>,
    _caller: Caller,
    id: web::Path<PostId>,
) -> Result<HttpResponse, ApiError> {
    let post = state
        .hub
        .social
        .post(id.into_inner())
        .await
        .map_err(social)?;
    Ok(HttpResponse::Ok().json(post))
}

/// Delete own post
#[utoipa::path(
    delete,
    path = "/posts/{id}",
    operation_id = "deletePost",
    tag = "feeds",
    params(("id" = i64, Path, description = "Post id")),
    responses(
        (status = 200, description = "Deleted", body = Done),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
        (status = 403, response = Forbidden),
    )
)]
pub async fn delete_post(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<PostId>,
) -> Result<HttpResponse, ApiError> {
    let done = feeds::delete(&state.hub, caller.0.user_id, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(done))
}

/// Like a post
#[utoipa::path(
    post,
    path = "/posts/{id}/like",
    operation_id = "likePost",
    tag = "feeds",
    params(("id" = i64, Path, description = "Post id")),
    responses(
        (status = 200, description = "The post's likes after it", body = LikeOk),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn like(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<PostId>,
) -> Result<HttpResponse, ApiError> {
    let ok = feeds::like(&state.hub, caller.0.user_id, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(ok))
}

/// Remove a like
#[utoipa::path(
    delete,
    path = "/posts/{id}/like",
    operation_id = "unlikePost",
    tag = "feeds",
    params(("id" = i64, Path, description = "Post id")),
    responses(
        (status = 200, description = "The post's likes after it", body = LikeOk),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn unlike(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<PostId>,
) -> Result<HttpResponse, ApiError> {
    let ok = feeds::unlike(&state.hub, caller.0.user_id, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(ok))
}

/// `POST /posts/{id}/comments` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    /// The comment.
    pub text: String,
}

/// Comment on a post
#[utoipa::path(
    post,
    path = "/posts/{id}/comments",
    operation_id = "commentPost",
    tag = "feeds",
    params(("id" = i64, Path, description = "Post id")),
    request_body = CommentBody,
    responses(
        (status = 201, description = "Commented", body = CommentOk),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn comment(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<PostId>,
    body: web::Json<CommentBody>,
) -> Result<HttpResponse, ApiError> {
    let ok = feeds::comment(
        &state.hub,
        caller.0.user_id,
        id.into_inner(),
        body.into_inner().text,
    )
    .await?;
    Ok(HttpResponse::Created().json(ok))
}

/// A page of comments.
#[derive(Serialize, ToSchema)]
struct Comments {
    comments: Vec<Comment>,
    /// The `before` of the next page; null on the last page.
    #[schema(required = true)]
    next_before: Option<i64>,
}

/// A post's comments (paged)
#[utoipa::path(
    get,
    path = "/posts/{id}/comments",
    operation_id = "listComments",
    tag = "feeds",
    params(("id" = i64, Path, description = "Post id"), Paging),
    responses(
        (status = 200, description = "A page of comments, newest first", body = Comments),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn comments(
    state: web::Data<AppState>,
    _caller: Caller,
    id: web::Path<PostId>,
    paging: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    let limit = feeds::page_limit(paging.limit)?;
    let post = id.into_inner();
    state.hub.social.post(post).await.map_err(social)?;
    let comments = state
        .hub
        .social
        .comments(post, paging.before, limit)
        .await
        .map_err(social)?;
    let next_before = if comments.len() == limit as usize {
        comments.last().map(|c| c.comment_id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(Comments {
        comments,
        next_before,
    }))
}

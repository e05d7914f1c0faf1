//! Feed routes under `/api/v1`: follows, profiles, posts, likes, comments and the timeline.
//! They apply the same rules as the WebSocket ops (`corral_actors::feeds`), pushes included.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use corral_actors::feeds::{self, FeedError};
use corral_protocol::UserId;
use corral_protocol::ops::{Comment, FeedPostParams, PostId};
use serde::{Deserialize, Serialize};

use crate::http::ApiError;
use crate::http::extract::Caller;
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

impl From<FeedError> for ApiError {
    fn from(err: FeedError) -> Self {
        ApiError::new(err.code, err.message)
    }
}

fn social(err: corral_actors::ports::SocialError) -> ApiError {
    FeedError::from(err).into()
}

/// `?before=&limit=` of every paged route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    /// Keyset cursor: the `next_before` of the previous page.
    pub before: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    #[serde(default = "default_limit")]
    pub limit: u32,
}

fn default_limit() -> u32 {
    20
}

#[derive(Serialize)]
struct Profile {
    user_id: UserId,
    username: String,
    /// Shown to the user itself and to admins, and for merchants (public businesses): other
    /// roles are nobody else's business (listing admins helps an attacker).
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<corral_protocol::Role>,
    followers: u64,
    following: u64,
}

async fn user(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<UserId>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let record = state
        .db
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

async fn follow(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<UserId>,
) -> Result<HttpResponse, ApiError> {
    let done = feeds::follow(&state.hub, caller.0.user_id, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(done))
}

async fn unfollow(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<UserId>,
) -> Result<HttpResponse, ApiError> {
    let done = feeds::unfollow(&state.hub, caller.0.user_id, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(done))
}

#[derive(Serialize)]
struct Users {
    users: Vec<UserId>,
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

async fn followers(
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

async fn following(
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

async fn profile(
    state: web::Data<AppState>,
    _caller: Caller,
    id: web::Path<UserId>,
    paging: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    let page = feeds::profile(&state.hub, id.into_inner(), paging.before, paging.limit).await?;
    Ok(HttpResponse::Ok().json(page))
}

async fn timeline(
    state: web::Data<AppState>,
    caller: Caller,
    paging: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    let page = feeds::timeline(&state.hub, caller.0.user_id, paging.before, paging.limit).await?;
    Ok(HttpResponse::Ok().json(page))
}

async fn create_post(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<FeedPostParams>,
) -> Result<HttpResponse, ApiError> {
    let post = feeds::publish(&state.hub, caller.0, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(post))
}

async fn get_post(
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

async fn delete_post(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<PostId>,
) -> Result<HttpResponse, ApiError> {
    let done = feeds::delete(&state.hub, caller.0.user_id, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(done))
}

async fn like(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<PostId>,
) -> Result<HttpResponse, ApiError> {
    let ok = feeds::like(&state.hub, caller.0.user_id, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(ok))
}

async fn unlike(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<PostId>,
) -> Result<HttpResponse, ApiError> {
    let ok = feeds::unlike(&state.hub, caller.0.user_id, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(ok))
}

/// `POST /posts/{id}/comments` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    /// The comment.
    pub text: String,
}

async fn comment(
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

#[derive(Serialize)]
struct Comments {
    comments: Vec<Comment>,
    next_before: Option<i64>,
}

async fn comments(
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

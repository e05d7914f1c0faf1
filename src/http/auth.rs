//! `POST /api/v1/auth/register` and `POST /api/v1/auth/login`.

use std::time::Duration;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use corral_actors::metric_catalogue as metric;
use corral_protocol::{ErrorCode, Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::password::HashError;
use crate::auth::throttle::Throttled;
use crate::http::ApiError;
use crate::http::responses::{
    BadRequest, Conflict, Forbidden, RateLimited, TooLarge, Unauthenticated, Unavailable,
};
use crate::http::table::ApiRoute;
use crate::state::AppState;
use crate::store::sql::users::RegisterError;

/// The auth routes, under `/api/v1`.
pub const ROUTES: &[ApiRoute] = &[
    ApiRoute {
        method: Method::POST,
        path: "/auth/register",
        handler: |r| r.to(register),
    },
    ApiRoute {
        method: Method::POST,
        path: "/auth/login",
        handler: |r| r.to(login),
    },
];

/// Register and login bodies.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// 3 to 32 characters: letters, digits, `_`, `-`, `.`.
    #[schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_.-]+$")]
    pub username: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

/// Register body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// 3 to 32 characters: letters, digits, `_`, `-`, `.`.
    #[schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_.-]+$")]
    pub username: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    /// The invite code of the friend who invited this user (shown in their profile, `GET
    /// /me`): they are credited with the new account. Unknown codes are refused.
    #[serde(default)]
    #[schema(max_length = 32)]
    pub invite_code: Option<String>,
}

/// The new user, signed in: the token works like login's (the app need not log in again).
#[derive(Serialize, ToSchema)]
struct Registered {
    #[schema(value_type = i64)]
    user_id: UserId,
    token: String,
    role: Role,
}

/// A bearer token and who it is for.
#[derive(Serialize, ToSchema)]
struct LoggedIn {
    token: String,
    #[schema(value_type = i64)]
    user_id: UserId,
    role: Role,
}

fn validate(username: &str, password: &str) -> Result<(), ApiError> {
    let name_ok = (3..=32).contains(&username.chars().count())
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !name_ok {
        return Err(ApiError::bad_request(
            "username must be 3-32 characters of letters, digits, '_', '-' or '.'",
        ));
    }
    if !crate::auth::password::PASSWORD_CHARS.contains(&password.chars().count()) {
        return Err(ApiError::bad_request("password must be 8-128 characters"));
    }
    Ok(())
}

fn throttled(t: Throttled) -> ApiError {
    ApiError::new(
        ErrorCode::RateLimited,
        "too many attempts; retry after the time in Retry-After",
    )
    .with_status(429)
    .with_retry_after(t.retry_after)
}

fn hash_error(err: HashError) -> ApiError {
    match err {
        HashError::Busy => ApiError::new(
            ErrorCode::Unavailable,
            "too many logins in progress; retry shortly",
        )
        .with_retry_after(Duration::from_secs(1)),
        other => ApiError::internal(other),
    }
}

/// Create an account
#[utoipa::path(
    post,
    path = "/auth/register",
    operation_id = "register",
    tag = "auth",
    security(()),
    request_body = Registration,
    responses(
        (status = 201, description = "Created", body = Registered),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Registration>,
) -> Result<HttpResponse, ApiError> {
    let creds = body.into_inner();
    validate(&creds.username, &creds.password)?;
    let invite_code = match creds.invite_code.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(code) if code.len() > 32 => {
            return Err(ApiError::bad_request(
                "invite_code: no account has this invite code",
            ));
        }
        Some(code) => Some(code.to_string()),
    };
    state
        .edge
        .login_limits
        .register(state.client_ip(&req))
        .map_err(throttled)?;
    let hash = state
        .edge
        .hasher
        .hash(creds.password)
        .await
        .map_err(hash_error)?;
    let (user_id, inviter) = state
        .repos
        .accounts
        .register_user(
            &creds.username,
            &hash,
            invite_code.as_deref(),
            corral_actors::clock::now_ms(),
        )
        .await
        .map_err(|e| match e {
            RegisterError::UnknownInvite => {
                ApiError::bad_request("invite_code: no account has this invite code")
            }
            RegisterError::Store(e) => match ApiError::from(e) {
                err if err.error.code == ErrorCode::Conflict => {
                    ApiError::new(ErrorCode::Conflict, "username is taken")
                }
                err => err,
            },
        })?;
    // `invited` requirements of the inviter's promotions count the new account.
    if let Some(inviter) = inviter {
        state.hub.claims.facts_changed(inviter);
    }
    let token = state
        .keys
        .issue(user_id, Role::User)
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Created().json(Registered {
        user_id,
        token,
        role: Role::User,
    }))
}

/// Log in and get a bearer token
#[utoipa::path(
    post,
    path = "/auth/login",
    operation_id = "login",
    tag = "auth",
    security(()),
    request_body = Credentials,
    responses(
        (status = 200, description = "Logged in", body = LoggedIn),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 413, response = TooLarge),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let creds = body.into_inner();
    let refused = || {
        metrics::counter!(metric::AUTH_FAILURES, "reason" => "login").increment(1);
        ApiError::unauthenticated("invalid username or password")
    };
    // Longer than any stored password: refused without hashing a megabyte.
    if creds.password.len() > 4 * 128 {
        return Err(refused());
    }
    state
        .edge
        .login_limits
        .login(state.client_ip(&req), &creds.username)
        .map_err(throttled)?;
    let user = state.repos.accounts.user_by_name(&creds.username).await?;
    // An unknown name is checked against a dummy hash: refusing it costs the same.
    let matches = state
        .edge
        .hasher
        .verify(
            creds.password,
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await
        .map_err(hash_error)?;
    let Some(user) = user.filter(|_| matches) else {
        return Err(refused());
    };
    if user.disabled {
        return Err(ApiError::forbidden("this account is disabled"));
    }
    // The token is issued under the stored version (this node may not have heard of a change
    // made elsewhere yet).
    state.hub.apply_standing(user.id, user.standing());
    let token = state
        .keys
        .issue(user.id, user.role)
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(LoggedIn {
        token,
        user_id: user.id,
        role: user.role,
    }))
}

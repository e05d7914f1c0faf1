//! `PATCH /api/v1/admin/users/{id}`: an admin changes an account's role or disables it. The
//! account's token version goes up, so every token issued before stops working at once on
//! every node, and its open sockets are closed.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use corral_actors::clock::now_ms;
use corral_protocol::{ErrorCode, Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::ApiError;
use crate::http::extract::Caller;
use crate::http::responses::{BadRequest, Forbidden, NotFound, Unauthenticated};
use crate::http::table::ApiRoute;
use crate::state::AppState;

/// The account routes, under `/api/v1`.
pub const ROUTES: &[ApiRoute] = &[ApiRoute {
    method: Method::PATCH,
    path: "/admin/users/{id}",
    handler: |r| r.to(change),
}];

/// `PATCH /admin/users/{id}` body: what to change (at least one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The new role.
    pub role: Option<Role>,
    /// Disable (or enable again) the account.
    pub disabled: Option<bool>,
}

/// The account as it now is.
#[derive(Serialize, ToSchema)]
struct Changed {
    #[schema(value_type = i64)]
    user_id: UserId,
    role: Role,
    disabled: bool,
    /// Raised by every change: tokens issued under an older version are refused.
    token_version: i64,
}

/// Change an account's role or disable it (admin); its earlier tokens stop working and its sockets close
#[utoipa::path(
    patch,
    path = "/admin/users/{id}",
    operation_id = "changeUser",
    tag = "admin",
    params(("id" = i64, Path, description = "The account's user id")),
    request_body = Change,
    responses(
        (status = 200, description = "The account as it now is", body = Changed),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub async fn change(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<UserId>,
    body: web::Json<Change>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let Change { role, disabled } = body.into_inner();
    if role.is_none() && disabled.is_none() {
        return Err(ApiError::bad_request("give `role` and/or `disabled`"));
    }
    let user = path.into_inner();
    let record = state
        .repos
        .accounts
        .change_standing(caller.0.user_id, user, role, disabled, now_ms())
        .await
        .map_err(|e| match ApiError::from(e) {
            err if err.error.code == ErrorCode::NotFound => {
                ApiError::new(ErrorCode::NotFound, "no such user")
            }
            err => err,
        })?;
    state.hub.standing_changed(user, record.standing());
    Ok(HttpResponse::Ok().json(Changed {
        user_id: user,
        role: record.role,
        disabled: record.disabled,
        token_version: record.token_version,
    }))
}

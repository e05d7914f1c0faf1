//! Merchant accounts and admin actions: `POST /api/v1/merchants` (apply, approved at once when
//! `merchants.auto_approve`), `POST /api/v1/admin/merchants/{id}/approve` and
//! `GET /api/v1/admin/audit`. Every merchant and admin action writes an audit row.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use corral_actors::clock::now_ms;
use corral_protocol::{ErrorCode, Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::ApiError;
use crate::http::extract::Caller;
use crate::http::responses::{BadRequest, Conflict, Forbidden, NotFound, Unauthenticated};
use crate::http::table::ApiRoute;
use crate::state::AppState;
use crate::store::sql::promotions::AuditEntry;

/// The merchant and admin routes, under `/api/v1`.
pub const ROUTES: &[ApiRoute] = &[
    ApiRoute {
        method: Method::POST,
        path: "/merchants",
        handler: |r| r.to(apply),
    },
    ApiRoute {
        method: Method::POST,
        path: "/admin/merchants/{id}/approve",
        handler: |r| r.to(approve),
    },
    ApiRoute {
        method: Method::GET,
        path: "/admin/audit",
        handler: |r| r.to(audit),
    },
];

/// `POST /merchants` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// The shop or farm name, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

/// The application, approved or waiting for an admin.
#[derive(Serialize, ToSchema)]
#[schema(as = MerchantApplied)]
struct Applied {
    #[schema(value_type = i64)]
    merchant_id: UserId,
    name: String,
    approved: bool,
    /// A token carrying the merchant role; `null` until an admin approves (then log in again).
    #[schema(required = true)]
    token: Option<String>,
}

/// Apply to become a merchant
///
/// Approved at once when `merchants.auto_approve` is true (the default); the reply then
/// carries a token with the merchant role. Otherwise the application waits for an admin
/// (`token` is null; log in again after approval).
#[utoipa::path(
    post,
    path = "/merchants",
    operation_id = "applyMerchant",
    tag = "merchants",
    request_body = Application,
    responses(
        (status = 201, description = "Applied", body = Applied),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 409, response = Conflict),
    )
)]
pub async fn apply(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<Application>,
) -> Result<HttpResponse, ApiError> {
    let name = body.name.trim();
    if !(1..=100).contains(&name.chars().count()) {
        return Err(ApiError::bad_request("name must be 1-100 characters"));
    }
    let user = caller.0.user_id;
    let approved = state.settings.merchants.auto_approve;
    let merchant = state
        .repos
        .merchants
        .apply_merchant(user, name, approved, now_ms())
        .await
        .map_err(|e| match ApiError::from(e) {
            err if err.error.code == ErrorCode::Conflict => {
                ApiError::new(ErrorCode::Conflict, "this user already applied")
            }
            err => err,
        })?;
    let token = if approved {
        let role = match caller.0.role {
            Role::Admin => Role::Admin,
            _ => Role::Merchant,
        };
        promoted(&state, user, role);
        Some(state.keys.issue(user, role).map_err(ApiError::internal)?)
    } else {
        None
    };
    Ok(HttpResponse::Created().json(Applied {
        merchant_id: user,
        name: merchant.name,
        approved,
        token,
    }))
}

/// An approved application.
#[derive(Serialize, ToSchema)]
struct Approved {
    #[schema(value_type = i64)]
    merchant_id: UserId,
    approved: bool,
}

/// Approve a merchant application (admin)
#[utoipa::path(
    post,
    path = "/admin/merchants/{id}/approve",
    operation_id = "approveMerchant",
    tag = "admin",
    params(("id" = i64, Path, description = "The applicant's user id")),
    responses(
        (status = 200, description = "Approved", body = Approved),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub async fn approve(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<UserId>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let merchant = path.into_inner();
    state
        .repos
        .merchants
        .approve_merchant(caller.0.user_id, merchant, now_ms())
        .await
        .map_err(|e| match ApiError::from(e) {
            err if err.error.code == ErrorCode::NotFound => {
                ApiError::new(ErrorCode::NotFound, "no merchant application for this user")
            }
            err => err,
        })?;
    if state.hub.revocations.current(merchant).role == Role::User {
        promoted(&state, merchant, Role::Merchant);
    }
    Ok(HttpResponse::Ok().json(Approved {
        merchant_id: merchant,
        approved: true,
    }))
}

/// Tells every node that `user` now has `role`, so tokens carrying it are accepted at once.
fn promoted(state: &AppState, user: UserId, role: Role) {
    let standing = corral_actors::Standing {
        role,
        ..state.hub.revocations.current(user)
    };
    state.hub.standing_changed(user, standing);
}

/// `GET /admin/audit` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only rows about this subject, e.g. `activity:7`, `animal:3`, `merchant:12`.
    pub subject: Option<String>,
    /// At most this many rows (1-1000, default 100), newest first.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<i64>,
}

/// Audit rows, newest first.
#[derive(Serialize, ToSchema)]
struct AuditPage {
    entries: Vec<AuditEntry>,
}

/// Read the audit log (admin), newest first
#[utoipa::path(
    get,
    path = "/admin/audit",
    operation_id = "readAudit",
    tag = "admin",
    params(AuditQuery),
    responses(
        (status = 200, description = "Audit rows", body = AuditPage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
    )
)]
pub async fn audit(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let entries = state
        .repos
        .audit
        .audit_log(query.subject.as_deref(), limit)
        .await?;
    Ok(HttpResponse::Ok().json(AuditPage { entries }))
}

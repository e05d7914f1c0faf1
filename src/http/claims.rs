//! `GET /api/v1/activities/{id}/claims`: the merchant's view of an activity's claims, with a
//! summary by status (its merchant or an admin only).

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use corral_protocol::ops::ClaimStatus;
use corral_protocol::{ErrorCode, Role};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::ApiError;
use crate::http::extract::Caller;
use crate::http::responses::{Forbidden, NotFound, Unauthenticated};
use crate::http::table::ApiRoute;
use crate::state::AppState;

/// The claims routes, under `/api/v1`.
pub const ROUTES: &[ApiRoute] = &[ApiRoute {
    method: Method::GET,
    path: "/activities/{id}/claims",
    handler: |r| r.to(list),
}];

/// One claim of the activity.
#[derive(Serialize, ToSchema)]
#[schema(as = ActivityClaim)]
struct ClaimView {
    claim_id: i64,
    /// The claimant.
    user_id: i64,
    /// The activity item claimed.
    item: i64,
    status: ClaimStatus,
    /// Unix epoch milliseconds.
    expires_at: i64,
    /// Unix epoch milliseconds.
    created_at: i64,
    /// A coupon promotion's code given with the claim, while held or confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    coupon_code: Option<String>,
}

/// Counts by status, and the activity's slots.
#[derive(Serialize, Default, ToSchema)]
#[schema(as = ClaimSummary)]
struct Summary {
    slots: i64,
    held: i64,
    confirmed: i64,
    expired: i64,
    cancelled: i64,
    refund_due: i64,
}

/// Every claim of an activity, with the summary.
#[derive(Serialize, ToSchema)]
#[schema(as = ActivityClaims)]
struct ClaimsView {
    activity_id: i64,
    claims: Vec<ClaimView>,
    summary: Summary,
}

/// Every claim of a promotion with a summary by status (its merchant or an admin)
#[utoipa::path(
    get,
    path = "/activities/{id}/claims",
    operation_id = "listActivityClaims",
    tag = "claims",
    params(("id" = i64, Path, description = "Activity id")),
    responses(
        (status = 200, description = "Claims and summary", body = ClaimsView),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Merchant, Role::Admin])?;
    let activity = path.into_inner();
    let (merchant, slots) = state
        .repos
        .claims
        .activity_owner_and_slots(activity)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such activity"))?;
    if caller.0.role != Role::Admin && caller.0.user_id != merchant {
        return Err(ApiError::forbidden("this is another merchant's activity"));
    }
    let mut summary = Summary {
        slots,
        ..Summary::default()
    };
    let claims = state
        .repos
        .claims
        .claims_of_activity(activity)
        .await?
        .into_iter()
        .map(|c| {
            *match c.status {
                ClaimStatus::Held => &mut summary.held,
                ClaimStatus::Confirmed => &mut summary.confirmed,
                ClaimStatus::Expired => &mut summary.expired,
                ClaimStatus::Cancelled => &mut summary.cancelled,
                ClaimStatus::RefundDue => &mut summary.refund_due,
            } += 1;
            ClaimView {
                claim_id: c.claim_id,
                user_id: c.user,
                item: c.item,
                status: c.status,
                expires_at: c.expires_at,
                created_at: c.created_at,
                coupon_code: c.coupon_code,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(ClaimsView {
        activity_id: activity,
        claims,
        summary,
    }))
}

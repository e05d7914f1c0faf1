//! `GET /api/v1/activities/{id}/claims`: the merchant's view of an activity's claims, with a
//! summary by status (its merchant or an admin only).

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use corral_protocol::ops::ClaimStatus;
use corral_protocol::{ErrorCode, Role};
use serde::Serialize;

use crate::http::ApiError;
use crate::http::extract::Caller;
use crate::http::table::ApiRoute;
use crate::state::AppState;

/// The claims routes, under `/api/v1`.
pub const ROUTES: &[ApiRoute] = &[ApiRoute {
    method: Method::GET,
    path: "/activities/{id}/claims",
    handler: |r| r.to(list),
}];

#[derive(Serialize)]
struct ClaimView {
    claim_id: i64,
    user_id: i64,
    item: i64,
    status: ClaimStatus,
    expires_at: i64,
    created_at: i64,
}

/// Counts by status, and the activity's slots.
#[derive(Serialize, Default)]
struct Summary {
    slots: i64,
    held: i64,
    confirmed: i64,
    expired: i64,
    cancelled: i64,
    refund_due: i64,
}

#[derive(Serialize)]
struct ClaimsView {
    activity_id: i64,
    claims: Vec<ClaimView>,
    summary: Summary,
}

async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Merchant, Role::Admin])?;
    let activity = path.into_inner();
    let (merchant, slots) = state
        .db
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
        .db
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
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(ClaimsView {
        activity_id: activity,
        claims,
        summary,
    }))
}

//! Coupon pools over HTTP: `POST /api/v1/activities/{id}/coupons` adds codes to a coupon
//! promotion's pool before it starts (its merchant or an admin). The codes pass
//! `coupon_codes::clean`; the pool's counts are also shown in `GET /activities/{id}`. The
//! promotion's slots are capped by the codes loaded (`ActivityRecord::cap_slots`), so the claim
//! desk is told to reload after an upload, as after an edit.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use corral_actors::clock::now_ms;
use corral_protocol::ops::ActivityId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::ApiError;
use crate::http::activities::owned_activity;
use crate::http::coupon_codes::{self, MAX_CODES_PER_ACTIVITY};
use crate::http::extract::Caller;
use crate::http::responses::{BadRequest, Conflict, Forbidden, NotFound, Unauthenticated};
use crate::http::table::ApiRoute;
use crate::state::AppState;
use crate::store::sql::coupons::PoolCounts;

/// The coupon routes, under `/api/v1`.
pub const ROUTES: &[ApiRoute] = &[ApiRoute {
    method: Method::POST,
    path: "/activities/{id}/coupons",
    handler: |r| r.to(upload),
}];

/// `POST /activities/{id}/coupons` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CouponUpload)]
pub struct UploadBody {
    /// 1-5000 codes, each 1-64 characters once trimmed (no control characters).
    #[schema(min_items = 1, max_items = 5000)]
    pub codes: Vec<String>,
}

/// What an upload did.
#[derive(Serialize, ToSchema)]
#[schema(as = CouponsAdded)]
struct UploadView {
    #[schema(value_type = i64)]
    activity_id: ActivityId,
    /// Codes added to the pool.
    added: i64,
    /// Codes of the upload left out because they were already in the pool or repeated in
    /// the upload (each named once).
    duplicates: Vec<String>,
    /// The pool after the upload.
    pool: PoolCounts,
}

/// Add coupon codes to a coupon promotion's pool (its merchant or an admin), before it starts
///
/// Each winner takes exactly one code, in the transaction that makes their hold durable; an
/// expired or cancelled hold's code goes back to the pool. The promotion offers at most as
/// many slots as codes loaded (its items' slots are capped in item order), so no winner is
/// ever without a code. Codes already in the pool are reported and left as they are.
#[utoipa::path(
    post,
    path = "/activities/{id}/coupons",
    operation_id = "uploadCoupons",
    tag = "activities",
    params(("id" = i64, Path, description = "Activity id")),
    request_body = UploadBody,
    responses(
        (status = 200, description = "Codes added", body = UploadView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub async fn upload(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<ActivityId>,
    body: web::Json<UploadBody>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let record = owned_activity(&state, &caller, id).await?;
    if !record.gives_coupons() {
        return Err(ApiError::bad_request(
            "this promotion's reward is a slot; set rules.reward to {\"kind\":\"coupon\"} first",
        ));
    }
    let clean = coupon_codes::clean(&body.codes).map_err(ApiError::bad_request)?;
    // A clear 400 for the usual case; the upload's transaction holds the bound under races.
    let loaded = state.repos.coupons.counts(id).await?.loaded;
    if loaded + clean.codes.len() as i64 > MAX_CODES_PER_ACTIVITY {
        return Err(ApiError::bad_request(format!(
            "a promotion holds at most {MAX_CODES_PER_ACTIVITY} codes; {loaded} are loaded"
        )));
    }
    let uploaded = state
        .repos
        .coupons
        .upload(
            caller.0.user_id,
            id,
            &clean.codes,
            MAX_CODES_PER_ACTIVITY,
            now_ms(),
        )
        .await?;
    state.hub.activity_changed(id);
    let mut duplicates = clean.repeated;
    for code in uploaded.already_loaded {
        if !duplicates.contains(&code) {
            duplicates.push(code);
        }
    }
    Ok(HttpResponse::Ok().json(UploadView {
        activity_id: id,
        added: uploaded.added,
        duplicates,
        pool: uploaded.pool,
    }))
}

//! Promotions over HTTP: `POST /api/v1/activities`, `GET/PUT /api/v1/activities/{id}`,
//! `POST /api/v1/activities/{id}/cancel` and `POST /api/v1/activities/{id}/broadcast`.
//! Changes are written (with their audit row) first, then the activity's actor is told to
//! reload, so its timers always follow the database.

use std::collections::HashSet;

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use bytestring::ByteString;
use corral_actors::broadcasts;
use corral_actors::clock::now_ms;
use corral_actors::{ActivityError, ActivityRecord, ActivitySnapshot};
use corral_protocol::ops::{ActivityId, ActivityState};
use corral_protocol::{EpochMs, ErrorCode, Push, Role, UserId, reply};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::http::extract::Caller;
use crate::http::table::ApiRoute;
use crate::http::{ApiError, epoch_ms};
use crate::state::AppState;
use crate::store::promotions::{ActivityInput, Audit};

/// The activity routes, under `/api/v1`.
pub const ROUTES: &[ApiRoute] = &[
    ApiRoute {
        method: Method::POST,
        path: "/activities",
        handler: |r| r.to(create),
    },
    ApiRoute {
        method: Method::GET,
        path: "/activities/{id}",
        handler: |r| r.to(get),
    },
    ApiRoute {
        method: Method::PUT,
        path: "/activities/{id}",
        handler: |r| r.to(update),
    },
    ApiRoute {
        method: Method::POST,
        path: "/activities/{id}/cancel",
        handler: |r| r.to(cancel),
    },
    ApiRoute {
        method: Method::POST,
        path: "/activities/{id}/broadcast",
        handler: |r| r.to(broadcast),
    },
];

/// Most items per activity.
const MAX_ITEMS: usize = 100;
/// Longest broadcast text, in characters.
const MAX_BROADCAST_CHARS: usize = 1000;

/// One item of a create or update body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemBody {
    /// One of the merchant's animals, not retired.
    pub animal_id: i64,
    /// Claim slots offered, 1 to the animal's own slots.
    pub slots: i64,
}

/// Create and update body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityBody {
    /// 1-200 characters.
    pub title: String,
    /// In the future (server clock).
    pub starts_at: EpochMs,
    /// After `starts_at`.
    pub ends_at: EpochMs,
    /// 1-100 items, each animal once.
    pub items: Vec<ItemBody>,
    /// Claims per user, >= 1.
    pub per_user_limit: i64,
    /// Hold lifetime, 1-86400 seconds.
    pub hold_seconds: i64,
}

impl ActivityBody {
    /// Checks the body against the clock and `merchant`'s catalogue.
    async fn validate(self, state: &AppState, merchant: UserId) -> Result<ActivityInput, ApiError> {
        let title = self.title.trim();
        if !(1..=200).contains(&title.chars().count()) {
            return Err(ApiError::bad_request("title must be 1-200 characters"));
        }
        epoch_ms::require_ms("starts_at", self.starts_at)?;
        epoch_ms::require_ms("ends_at", self.ends_at)?;
        if self.starts_at <= now_ms() {
            return Err(ApiError::bad_request("starts_at must be in the future"));
        }
        if self.ends_at <= self.starts_at {
            return Err(ApiError::bad_request("ends_at must be after starts_at"));
        }
        if self.per_user_limit < 1 {
            return Err(ApiError::bad_request("per_user_limit must be >= 1"));
        }
        if !(1..=86_400).contains(&self.hold_seconds) {
            return Err(ApiError::bad_request("hold_seconds must be 1-86400"));
        }
        if self.items.is_empty() || self.items.len() > MAX_ITEMS {
            return Err(ApiError::bad_request("items must hold 1-100 animals"));
        }
        let mut seen = HashSet::new();
        for item in &self.items {
            if !seen.insert(item.animal_id) {
                return Err(ApiError::bad_request(format!(
                    "animal {} is listed twice",
                    item.animal_id
                )));
            }
            if item.slots < 1 {
                return Err(ApiError::bad_request("item slots must be >= 1"));
            }
            let animal = state.db.animal(item.animal_id).await?.ok_or_else(|| {
                ApiError::bad_request(format!("animal {} does not exist", item.animal_id))
            })?;
            if animal.merchant_id != merchant {
                return Err(ApiError::forbidden(format!(
                    "animal {} belongs to another merchant",
                    item.animal_id
                )));
            }
            if animal.retired {
                return Err(ApiError::bad_request(format!(
                    "animal {} is retired",
                    item.animal_id
                )));
            }
            if item.slots > animal.input.slots {
                return Err(ApiError::bad_request(format!(
                    "animal {} has only {} slots",
                    item.animal_id, animal.input.slots
                )));
            }
        }
        Ok(ActivityInput {
            title: title.to_string(),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            per_user_limit: self.per_user_limit,
            hold_seconds: self.hold_seconds,
            items: self.items.iter().map(|i| (i.animal_id, i.slots)).collect(),
        })
    }
}

#[derive(Serialize)]
struct ItemView {
    item_id: i64,
    animal_id: i64,
    slots: i64,
}

/// `GET /activities/{id}`.
#[derive(Serialize)]
struct ActivityView {
    activity_id: ActivityId,
    merchant_id: UserId,
    title: String,
    state: ActivityState,
    starts_at: EpochMs,
    ends_at: EpochMs,
    per_user_limit: i64,
    hold_seconds: i64,
    items: Vec<ItemView>,
    slots: i64,
    stock_left: i64,
    server_time: EpochMs,
}

impl From<ActivitySnapshot> for ActivityView {
    fn from(s: ActivitySnapshot) -> Self {
        let r = s.record;
        ActivityView {
            activity_id: r.id,
            merchant_id: r.merchant_id,
            slots: r.total_slots(),
            title: r.title,
            state: s.state,
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            per_user_limit: r.per_user_limit,
            hold_seconds: r.hold_seconds,
            items: r
                .items
                .into_iter()
                .map(|i| ItemView {
                    item_id: i.item_id,
                    animal_id: i.animal_id,
                    slots: i.slots,
                })
                .collect(),
            stock_left: s.stock_left,
            server_time: s.server_time,
        }
    }
}

fn activity_error(err: ActivityError) -> ApiError {
    match err {
        ActivityError::NotFound => ApiError::new(ErrorCode::NotFound, "no such activity"),
        other => ApiError::new(other.code(), other.to_string()),
    }
}

/// The activity `id`, which `caller` must run (or be an admin) to change.
async fn owned_activity(
    state: &AppState,
    caller: &Caller,
    id: ActivityId,
) -> Result<ActivityRecord, ApiError> {
    caller.require(&[Role::Merchant, Role::Admin])?;
    let record = state
        .db
        .activity_record(id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such activity"))?;
    caller.require_owner(record.merchant_id)?;
    Ok(record)
}

async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<ActivityBody>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Merchant, Role::Admin])?;
    let me = caller.0.user_id;
    let input = body.into_inner().validate(&state, me).await?;
    let id = state.db.create_activity(me, me, &input, now_ms()).await?;
    state.hub.activity_changed(id);
    Ok(HttpResponse::Created().json(json!({ "activity_id": id })))
}

async fn get(
    state: web::Data<AppState>,
    _caller: Caller,
    path: web::Path<ActivityId>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state
        .hub
        .activities
        .snapshot(path.into_inner())
        .await
        .map_err(activity_error)?;
    Ok(HttpResponse::Ok().json(ActivityView::from(snapshot)))
}

async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<ActivityId>,
    body: web::Json<ActivityBody>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let record = owned_activity(&state, &caller, id).await?;
    let input = body
        .into_inner()
        .validate(&state, record.merchant_id)
        .await?;
    state
        .db
        .update_activity(caller.0.user_id, id, &input, now_ms())
        .await?;
    state.hub.activity_changed(id);
    Ok(HttpResponse::Ok().json(json!({ "activity_id": id })))
}

async fn cancel(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<ActivityId>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    owned_activity(&state, &caller, id).await?;
    state
        .db
        .cancel_activity(caller.0.user_id, id, now_ms())
        .await?;
    state.hub.activity_changed(id);
    Ok(HttpResponse::Ok().json(json!({ "activity_id": id, "state": ActivityState::Cancelled })))
}

/// `POST /activities/{id}/broadcast` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BroadcastBody {
    /// 1-1000 characters.
    pub text: String,
}

async fn broadcast(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<ActivityId>,
    body: web::Json<BroadcastBody>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let text = body.into_inner().text;
    if text.trim().is_empty() || text.chars().count() > MAX_BROADCAST_CHARS {
        return Err(ApiError::bad_request("text must be 1-1000 characters"));
    }
    let record = owned_activity(&state, &caller, id).await?;
    let ts = now_ms();
    if let state @ (ActivityState::Ended | ActivityState::Cancelled) = record.state_at(ts) {
        return Err(activity_error(ActivityError::Over(state)));
    }
    state
        .db
        .record_audit(&Audit {
            actor_id: caller.0.user_id,
            action: "activity.broadcast",
            subject: format!("activity:{id}"),
            detail: json!({ "text": text }),
            at: ts,
        })
        .await?;
    // Encoded once; every subscriber's queue gets the same bytes.
    let frame = ByteString::from(reply::push(&Push::ActivityBroadcast {
        activity: id,
        text,
        ts,
    }));
    let delivered = broadcasts::broadcast(&state.hub, id, record.merchant_id, frame)
        .await
        .map_err(activity_error)?;
    Ok(HttpResponse::Accepted()
        .json(json!({ "activity_id": id, "ts": ts, "delivered": delivered })))
}

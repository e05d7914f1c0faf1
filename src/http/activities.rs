//! Promotions over HTTP: `POST /api/v1/activities`, `GET/PUT /api/v1/activities/{id}`,
//! `POST /api/v1/activities/{id}/cancel`, `POST /api/v1/activities/{id}/broadcast` and
//! `GET /api/v1/activities/{id}/funnel`. A promotion's `rules` (SPEC section 13) are checked
//! by `ActivityRules::parse`, which names the offending field; a coupon promotion's codes are
//! uploaded through `coupons.rs`.
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
use corral_protocol::rules::{ActivityRules, RuleKey};
use corral_protocol::{EpochMs, ErrorBody, ErrorCode, Push, Role, UserId, reply};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::http::extract::Caller;
use crate::http::responses::{BadRequest, Conflict, Forbidden, NotFound, Unauthenticated};
use crate::http::table::ApiRoute;
use crate::http::{ApiError, epoch_ms};
use crate::state::AppState;
use crate::store::sql::coupons::PoolCounts;
use crate::store::sql::promotions::{ActivityInput, Audit};

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
    ApiRoute {
        method: Method::GET,
        path: "/activities/{id}/funnel",
        handler: |r| r.to(funnel),
    },
];

/// Most items per activity.
const MAX_ITEMS: usize = 100;
/// Longest broadcast text, in characters.
const MAX_BROADCAST_CHARS: usize = 1000;

/// One item of a create or update body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ItemInput)]
pub struct ItemBody {
    /// One of the merchant's animals, not retired.
    pub animal_id: i64,
    /// Claim slots offered, 1 to the animal's own slots.
    #[schema(minimum = 1)]
    pub slots: i64,
}

/// Create and update body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ActivityInput)]
pub struct ActivityBody {
    /// 1-200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// In the future (server clock), Unix epoch milliseconds.
    #[schema(value_type = i64)]
    pub starts_at: EpochMs,
    /// After `starts_at`, Unix epoch milliseconds.
    #[schema(value_type = i64)]
    pub ends_at: EpochMs,
    /// 1-100 items, each animal once.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<ItemBody>,
    /// Claims per user, >= 1.
    #[schema(minimum = 1)]
    pub per_user_limit: i64,
    /// Hold lifetime, 1-86400 seconds.
    #[schema(minimum = 1, maximum = 86_400)]
    pub hold_seconds: i64,
    /// Who may claim, what they must have done, what they get (absent or null: everyone, a
    /// slot). Replaced as a whole by an update; frozen once the promotion starts.
    #[serde(default)]
    #[schema(value_type = Option<ActivityRules>)]
    pub rules: serde_json::Value,
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
        let rules = ActivityRules::parse(&self.rules)
            .map_err(|err| ApiError::bad_request(err.to_string()))?;
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
            let animal = state
                .repos
                .animals
                .animal(item.animal_id)
                .await?
                .ok_or_else(|| {
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
            rules,
        })
    }
}

/// One item of an activity: an animal and the slots it offers.
#[derive(Serialize, ToSchema)]
#[schema(as = ActivityItem)]
struct ItemView {
    item_id: i64,
    animal_id: i64,
    slots: i64,
}

/// `GET /activities/{id}`.
#[derive(Serialize, ToSchema)]
#[schema(as = Activity)]
struct ActivityView {
    #[schema(value_type = i64)]
    activity_id: ActivityId,
    #[schema(value_type = i64)]
    merchant_id: UserId,
    title: String,
    /// By the server clock.
    state: ActivityState,
    /// Unix epoch milliseconds.
    #[schema(value_type = i64)]
    starts_at: EpochMs,
    /// Unix epoch milliseconds.
    #[schema(value_type = i64)]
    ends_at: EpochMs,
    per_user_limit: i64,
    hold_seconds: i64,
    items: Vec<ItemView>,
    /// Who may claim, what they must have done, what they get.
    rules: ActivityRules,
    /// Total over the items (a coupon promotion's capped by the codes loaded).
    slots: i64,
    /// A coupon promotion's pool of codes (absent for a slot reward).
    #[serde(skip_serializing_if = "Option::is_none")]
    coupons: Option<PoolCounts>,
    /// Slots neither held nor confirmed.
    stock_left: i64,
    /// Unix epoch milliseconds.
    #[schema(value_type = i64)]
    server_time: EpochMs,
}

/// The activity a change was made to.
#[derive(Serialize, ToSchema)]
struct ActivityChanged {
    #[schema(value_type = i64)]
    activity_id: ActivityId,
}

/// A cancelled activity.
#[derive(Serialize, ToSchema)]
struct ActivityCancelled {
    #[schema(value_type = i64)]
    activity_id: ActivityId,
    /// Always `cancelled`.
    state: ActivityState,
}

/// A broadcast queued to the activity's watchers.
#[derive(Serialize, ToSchema)]
struct BroadcastQueued {
    #[schema(value_type = i64)]
    activity_id: ActivityId,
    /// Unix epoch milliseconds.
    #[schema(value_type = i64)]
    ts: EpochMs,
    /// Subscriber sessions on the receiving node that took the frame at once (followers, and
    /// the other nodes of a cluster, are reached asynchronously).
    delivered: usize,
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
            rules: r.rules,
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
            coupons: None,
            server_time: s.server_time,
        }
    }
}

/// The activity `id`, which `caller` must run (or be an admin) to change.
pub(crate) async fn owned_activity(
    state: &AppState,
    caller: &Caller,
    id: ActivityId,
) -> Result<ActivityRecord, ApiError> {
    caller.require(&[Role::Merchant, Role::Admin])?;
    let record = state
        .repos
        .activities
        .activity_record(id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such activity"))?;
    caller.require_owner(record.merchant_id)?;
    Ok(record)
}

/// Create a promotion (merchant)
///
/// `starts_at` must be in the future by the server clock, `ends_at` after it; every item is
/// one of the caller's animals, not retired, offering at most the animal's slots.
#[utoipa::path(
    post,
    path = "/activities",
    operation_id = "createActivity",
    tag = "activities",
    request_body = ActivityBody,
    responses(
        (status = 201, description = "Created; its countdown runs from now", body = ActivityChanged),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<ActivityBody>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Merchant, Role::Admin])?;
    let me = caller.0.user_id;
    let input = body.into_inner().validate(&state, me).await?;
    let id = state
        .repos
        .activities
        .create_activity(me, me, &input, now_ms())
        .await?;
    state.hub.activity_changed(id);
    Ok(HttpResponse::Created().json(ActivityChanged { activity_id: id }))
}

/// A promotion's state and stock
#[utoipa::path(
    get,
    path = "/activities/{id}",
    operation_id = "getActivity",
    tag = "activities",
    params(("id" = i64, Path, description = "Activity id")),
    responses(
        (status = 200, description = "The activity", body = ActivityView),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<ActivityId>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let snapshot = state
        .hub
        .activities
        .snapshot(id)
        .await
        .map_err(ErrorBody::from)?;
    // A user opening the promotion is the top of its funnel (its merchant is not).
    if caller.0.user_id != snapshot.record.merchant_id
        && let Err(err) = state
            .repos
            .rules
            .viewed(id, caller.0.user_id, now_ms())
            .await
    {
        tracing::warn!(%err, activity = id, "recording a view failed");
    }
    let coupons = match snapshot.record.gives_coupons() {
        true => Some(state.repos.coupons.counts(id).await?),
        false => None,
    };
    Ok(HttpResponse::Ok().json(ActivityView {
        coupons,
        ..ActivityView::from(snapshot)
    }))
}

/// Replace a promotion's fields and items (its merchant or an admin), only before it starts
#[utoipa::path(
    put,
    path = "/activities/{id}",
    operation_id = "updateActivity",
    tag = "activities",
    params(("id" = i64, Path, description = "Activity id")),
    request_body = ActivityBody,
    responses(
        (status = 200, description = "Updated; timers re-armed", body = ActivityChanged),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub async fn update(
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
        .repos
        .activities
        .update_activity(caller.0.user_id, id, &input, now_ms())
        .await?;
    state.hub.activity_changed(id);
    Ok(HttpResponse::Ok().json(ActivityChanged { activity_id: id }))
}

/// Cancel a promotion that is not over (its merchant or an admin)
///
/// Subscribers get `activity.ended {reason: "cancelled"}`.
#[utoipa::path(
    post,
    path = "/activities/{id}/cancel",
    operation_id = "cancelActivity",
    tag = "activities",
    params(("id" = i64, Path, description = "Activity id")),
    responses(
        (status = 200, description = "Cancelled", body = ActivityCancelled),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub async fn cancel(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<ActivityId>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    owned_activity(&state, &caller, id).await?;
    state
        .repos
        .activities
        .cancel_activity(caller.0.user_id, id, now_ms())
        .await?;
    state.hub.activity_changed(id);
    Ok(HttpResponse::Ok().json(ActivityCancelled {
        activity_id: id,
        state: ActivityState::Cancelled,
    }))
}

/// `POST /activities/{id}/broadcast` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastBody {
    /// 1-1000 characters.
    #[schema(min_length = 1, max_length = 1000)]
    pub text: String,
}

/// Push a message to a promotion's watchers (its merchant or an admin)
///
/// Every session subscribed to the activity gets `activity.broadcast {activity, text, ts}`
/// (encoded once), and so do the merchant's online followers.
#[utoipa::path(
    post,
    path = "/activities/{id}/broadcast",
    operation_id = "broadcastActivity",
    tag = "activities",
    params(("id" = i64, Path, description = "Activity id")),
    request_body = BroadcastBody,
    responses(
        (status = 202, description = "Queued to the subscribers", body = BroadcastQueued),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub async fn broadcast(
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
        return Err(ErrorBody::from(ActivityError::Over(state)).into());
    }
    state
        .repos
        .audit
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
        .map_err(ErrorBody::from)?;
    Ok(HttpResponse::Accepted().json(BroadcastQueued {
        activity_id: id,
        ts,
        delivered,
    }))
}

/// `GET /activities/{id}/funnel`: how far the promotion's audience got.
#[derive(Serialize, ToSchema)]
#[schema(as = Funnel)]
struct FunnelView {
    #[schema(value_type = i64)]
    activity_id: ActivityId,
    /// Users who opened the promotion (viewed it, subscribed or claimed).
    viewers: i64,
    /// Users who subscribed to its countdown.
    subscribers: i64,
    /// Users eligible under its rules when last checked.
    eligible: i64,
    /// Users with at least one claim.
    claimed: i64,
    /// Claims confirmed (paid).
    confirmed: i64,
    /// Holds that expired unpaid.
    expired: i64,
    /// For each rule of the promotion, how many users it stopped when last checked.
    #[schema(value_type = Object)]
    stopped_by: std::collections::BTreeMap<RuleKey, i64>,
    /// Unix epoch milliseconds.
    #[schema(value_type = i64)]
    server_time: EpochMs,
}

/// A promotion's funnel (its merchant or an admin)
///
/// Viewers, subscribers, eligible users, claimants, confirmed and expired claims, and per
/// rule of the promotion how many users it stopped. Read live from the store: the console
/// polls it while the promotion runs.
#[utoipa::path(
    get,
    path = "/activities/{id}/funnel",
    operation_id = "activityFunnel",
    tag = "activities",
    params(("id" = i64, Path, description = "Activity id")),
    responses(
        (status = 200, description = "The funnel", body = FunnelView),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub async fn funnel(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<ActivityId>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let record = owned_activity(&state, &caller, id).await?;
    let funnel = state.repos.rules.funnel(id).await?;
    let rules = record.rules.keys();
    Ok(HttpResponse::Ok().json(FunnelView {
        activity_id: id,
        viewers: funnel.viewers,
        subscribers: funnel.subscribers,
        eligible: funnel.eligible,
        claimed: funnel.claimed,
        confirmed: funnel.confirmed,
        expired: funnel.expired,
        stopped_by: funnel
            .stopped_by
            .into_iter()
            .filter(|(key, _)| rules.contains(key))
            .collect(),
        server_time: now_ms(),
    }))
}

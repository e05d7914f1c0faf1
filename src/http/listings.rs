//! What the user app and the merchant console browse, under `/api/v1`: promotions by state
//! and merchant (`GET /activities`), public rooms and the caller's private rooms and DMs
//! (`GET /rooms`), the caller's account and claims (`GET /me`, `GET /me/claims`), merchants
//! (`GET /merchants`, the pending ones for admins) and a user looked up by name
//! (`GET /usernames/{name}`). Every list is paged newest first: `?before=&limit=`, answered
//! with `next_before` (absent on the last page).

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use corral_actors::clock::now_ms;
use corral_actors::feeds;
use corral_protocol::ops::{ActivityId, ActivityState};
use corral_protocol::{EpochMs, ErrorCode, Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::ApiError;
use crate::http::extract::Caller;
use crate::http::responses::{BadRequest, Forbidden, NotFound, Unauthenticated};
use crate::http::table::ApiRoute;
use crate::state::AppState;
use crate::store::sql::listings::{ActivityFilter, ListedActivity, ListedClaim, ListedRoom};

/// The listing routes, under `/api/v1`.
pub const ROUTES: &[ApiRoute] = &[
    ApiRoute {
        method: Method::GET,
        path: "/activities",
        handler: |r| r.to(activities),
    },
    ApiRoute {
        method: Method::GET,
        path: "/rooms",
        handler: |r| r.to(rooms),
    },
    ApiRoute {
        method: Method::GET,
        path: "/me",
        handler: |r| r.to(me),
    },
    ApiRoute {
        method: Method::GET,
        path: "/me/claims",
        handler: |r| r.to(my_claims),
    },
    ApiRoute {
        method: Method::GET,
        path: "/merchants",
        handler: |r| r.to(merchants),
    },
    ApiRoute {
        method: Method::GET,
        path: "/usernames/{name}",
        handler: |r| r.to(username),
    },
];

/// `?state=` of `GET /activities`.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateParam {
    /// Not started yet.
    Upcoming,
    /// Running now.
    Live,
    /// Ended or cancelled.
    Ended,
}

/// `GET /activities` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// upcoming: not started; live: running; ended: ended or cancelled (all when absent).
    #[param(inline)]
    pub state: Option<StateParam>,
    /// Only this merchant's promotions.
    #[param(value_type = Option<i64>)]
    pub merchant: Option<UserId>,
    /// Keyset cursor: the `next_before` of the previous page.
    pub before: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
}

/// `?scope=` of `GET /rooms`.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoomScope {
    /// Every public room.
    #[default]
    Public,
    /// The private rooms and DMs the caller owns or belongs to.
    Mine,
}

/// `GET /rooms` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RoomQuery {
    /// Public rooms (default) or the caller's own.
    #[serde(default)]
    #[param(inline, default = json!("public"))]
    pub scope: RoomScope,
    /// Keyset cursor: the `next_before` of the previous page.
    pub before: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
}

/// `GET /me/claims` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Keyset cursor: the `next_before` of the previous page.
    pub before: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
}

/// `?status=` of `GET /merchants`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MerchantStatus {
    /// Approved merchants (anyone may list them).
    #[default]
    Approved,
    /// Applications waiting for an admin.
    Pending,
}

/// `GET /merchants` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MerchantQuery {
    /// Approved (default) or pending (admins only).
    #[serde(default)]
    #[param(inline, default = json!("approved"))]
    pub status: MerchantStatus,
    /// Keyset cursor: the `next_before` of the previous page.
    pub before: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
}

/// A checked page size: 1 to 100, 20 when absent.
fn page_size(limit: Option<u32>) -> Result<i64, ApiError> {
    Ok(i64::from(feeds::page_limit(limit.unwrap_or(20))?))
}

/// The cursor of the next page: the last id when the page is full.
fn next_before(ids: impl Iterator<Item = i64>, len: usize, limit: i64) -> Option<i64> {
    if len as i64 == limit {
        ids.last()
    } else {
        None
    }
}

/// An item of a listed promotion, with its animal.
#[derive(Serialize, ToSchema)]
#[schema(as = ListedItem)]
struct ListedItemView {
    item_id: i64,
    animal_id: i64,
    slots: i64,
    animal_name: String,
    species: String,
    price_cents: i64,
}

/// A promotion as the listings show it.
#[derive(Serialize, ToSchema)]
#[schema(as = ListedActivity)]
struct ListedActivityView {
    #[schema(value_type = i64)]
    activity_id: ActivityId,
    #[schema(value_type = i64)]
    merchant_id: UserId,
    merchant_name: String,
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
    slots: i64,
    items: Vec<ListedItemView>,
    /// Who may claim, what they must have done, what they get.
    rules: corral_protocol::rules::ActivityRules,
}

impl ListedActivityView {
    fn new(listed: ListedActivity, now: EpochMs) -> ListedActivityView {
        let state = listed.record.state_at(now);
        let slots = listed.record.total_slots();
        let r = listed.record;
        ListedActivityView {
            activity_id: r.id,
            merchant_id: r.merchant_id,
            merchant_name: listed.merchant_name,
            title: r.title,
            state,
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            per_user_limit: r.per_user_limit,
            hold_seconds: r.hold_seconds,
            slots,
            rules: r.rules,
            items: r
                .items
                .into_iter()
                .zip(listed.animals)
                .map(|(item, animal)| ListedItemView {
                    item_id: item.item_id,
                    animal_id: item.animal_id,
                    slots: item.slots,
                    animal_name: animal.name,
                    species: animal.species,
                    price_cents: animal.price_cents,
                })
                .collect(),
        }
    }
}

/// A page of promotions.
#[derive(Serialize, ToSchema)]
struct ActivityPage {
    activities: Vec<ListedActivityView>,
    /// The `before` of the next page; null on the last page.
    #[schema(required = true)]
    next_before: Option<i64>,
    /// Unix epoch milliseconds.
    #[schema(value_type = i64)]
    server_time: EpochMs,
}

/// List promotions, newest first, by state and merchant
#[utoipa::path(
    get,
    path = "/activities",
    operation_id = "listActivities",
    tag = "activities",
    params(ActivityQuery),
    responses(
        (status = 200, description = "A page", body = ActivityPage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
    )
)]
pub async fn activities(
    state: web::Data<AppState>,
    _caller: Caller,
    query: web::Query<ActivityQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_size(query.limit)?;
    let filter = match query.state {
        None => ActivityFilter::All,
        Some(StateParam::Upcoming) => ActivityFilter::Upcoming,
        Some(StateParam::Live) => ActivityFilter::Live,
        Some(StateParam::Ended) => ActivityFilter::Ended,
    };
    let now = now_ms();
    let listed = state
        .repos
        .listings
        .list_activities(filter, query.merchant, query.before, limit, now)
        .await?;
    let next = next_before(listed.iter().map(|a| a.record.id), listed.len(), limit);
    Ok(HttpResponse::Ok().json(ActivityPage {
        activities: listed
            .into_iter()
            .map(|a| ListedActivityView::new(a, now))
            .collect(),
        next_before: next,
        server_time: now,
    }))
}

/// A room as the listings show it.
#[derive(Serialize, ToSchema)]
#[schema(as = ListedRoom)]
struct RoomView {
    room_id: i64,
    name: String,
    #[schema(value_type = i64)]
    owner_id: UserId,
    private: bool,
    /// For a DM: the other member (absent for other rooms).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    dm_with: Option<UserId>,
    /// The newest message's seq (0 for none).
    last_seq: i64,
    /// Unix epoch milliseconds.
    #[schema(value_type = i64)]
    created_at: EpochMs,
}

impl From<ListedRoom> for RoomView {
    fn from(r: ListedRoom) -> Self {
        RoomView {
            room_id: r.room_id,
            name: r.name,
            owner_id: r.owner_id,
            private: r.private,
            dm_with: r.dm_with,
            last_seq: r.last_seq,
            created_at: r.created_at,
        }
    }
}

/// A page of rooms.
#[derive(Serialize, ToSchema)]
struct RoomPage {
    rooms: Vec<RoomView>,
    /// The `before` of the next page; null on the last page.
    #[schema(required = true)]
    next_before: Option<i64>,
}

/// List public rooms, or the caller's private rooms and DMs, newest first
#[utoipa::path(
    get,
    path = "/rooms",
    operation_id = "listRooms",
    tag = "rooms",
    params(RoomQuery),
    responses(
        (status = 200, description = "A page", body = RoomPage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
    )
)]
pub async fn rooms(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<RoomQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_size(query.limit)?;
    let listed = match query.scope {
        RoomScope::Public => {
            state
                .repos
                .listings
                .public_rooms(query.before, limit)
                .await?
        }
        RoomScope::Mine => {
            state
                .repos
                .listings
                .rooms_of(caller.0.user_id, query.before, limit)
                .await?
        }
    };
    let next = next_before(listed.iter().map(|r| r.room_id), listed.len(), limit);
    Ok(HttpResponse::Ok().json(RoomPage {
        rooms: listed.into_iter().map(RoomView::from).collect(),
        next_before: next,
    }))
}

/// A merchant (approved, or an application waiting for an admin).
#[derive(Serialize, ToSchema)]
#[schema(as = Merchant)]
struct MerchantView {
    #[schema(value_type = i64)]
    merchant_id: UserId,
    name: String,
    approved: bool,
    /// Unix epoch milliseconds.
    #[schema(value_type = i64)]
    created_at: EpochMs,
}

impl From<crate::store::sql::promotions::MerchantRecord> for MerchantView {
    fn from(m: crate::store::sql::promotions::MerchantRecord) -> Self {
        MerchantView {
            merchant_id: m.user_id,
            name: m.name,
            approved: m.approved,
            created_at: m.created_at,
        }
    }
}

/// The caller's account.
#[derive(Serialize, ToSchema)]
struct Me {
    #[schema(value_type = i64)]
    user_id: UserId,
    username: String,
    /// The role stored now (a token issued before a change still carries the old one).
    role: Role,
    /// The caller's merchant application, if any.
    #[schema(required = true)]
    merchant: Option<MerchantView>,
    /// The caller's invite code: friends who register with it (`POST /auth/register
    /// {invite_code}`) count towards promotions that ask for invitations.
    invite_code: String,
    /// Unix epoch milliseconds.
    #[schema(value_type = i64)]
    server_time: EpochMs,
}

/// The caller's account: stored role, merchant application and invite code
#[utoipa::path(
    get,
    path = "/me",
    operation_id = "me",
    tag = "auth",
    responses(
        (status = 200, description = "The account", body = Me),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let id = caller.0.user_id;
    let user = state
        .repos
        .accounts
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such user"))?;
    let merchant = state
        .repos
        .merchants
        .merchant(id)
        .await?
        .map(MerchantView::from);
    let invite_code = state.repos.accounts.invite_code(id).await?;
    Ok(HttpResponse::Ok().json(Me {
        user_id: user.id,
        username: user.username,
        role: user.role,
        merchant,
        invite_code,
        server_time: now_ms(),
    }))
}

/// One of the caller's claims, with its promotion and animal.
#[derive(Serialize, ToSchema)]
#[schema(as = ListedClaim)]
struct ClaimView {
    claim_id: i64,
    activity_id: i64,
    /// The promotion's title.
    title: String,
    item_id: i64,
    animal_id: i64,
    animal_name: String,
    /// `held`, `confirmed`, `expired`, `cancelled` or `refund_due`.
    status: String,
    /// Unix epoch milliseconds.
    #[schema(value_type = i64)]
    expires_at: EpochMs,
    /// Unix epoch milliseconds.
    #[schema(value_type = i64)]
    created_at: EpochMs,
    /// A coupon promotion's code, while the claim is held or confirmed (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    coupon_code: Option<String>,
}

impl From<ListedClaim> for ClaimView {
    fn from(c: ListedClaim) -> Self {
        ClaimView {
            claim_id: c.claim_id,
            activity_id: c.activity_id,
            title: c.title,
            item_id: c.item_id,
            animal_id: c.animal_id,
            animal_name: c.animal_name,
            status: c.status,
            expires_at: c.expires_at,
            created_at: c.created_at,
            coupon_code: c.coupon_code,
        }
    }
}

/// A page of the caller's claims.
#[derive(Serialize, ToSchema)]
struct ClaimPage {
    claims: Vec<ClaimView>,
    /// The `before` of the next page; null on the last page.
    #[schema(required = true)]
    next_before: Option<i64>,
    /// Unix epoch milliseconds.
    #[schema(value_type = i64)]
    server_time: EpochMs,
}

/// The caller's claims with their promotion and animal, newest first
#[utoipa::path(
    get,
    path = "/me/claims",
    operation_id = "listMyClaims",
    tag = "claims",
    params(PageQuery),
    responses(
        (status = 200, description = "A page", body = ClaimPage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
    )
)]
pub async fn my_claims(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_size(query.limit)?;
    let listed = state
        .repos
        .listings
        .claims_of_user(caller.0.user_id, query.before, limit)
        .await?;
    let next = next_before(listed.iter().map(|c| c.claim_id), listed.len(), limit);
    Ok(HttpResponse::Ok().json(ClaimPage {
        claims: listed.into_iter().map(ClaimView::from).collect(),
        next_before: next,
        server_time: now_ms(),
    }))
}

/// A page of merchants.
#[derive(Serialize, ToSchema)]
struct MerchantPage {
    merchants: Vec<MerchantView>,
    /// The `before` of the next page; null on the last page.
    #[schema(required = true)]
    next_before: Option<i64>,
}

/// List approved merchants (anyone) or pending applications (admins), newest first
#[utoipa::path(
    get,
    path = "/merchants",
    operation_id = "listMerchants",
    tag = "merchants",
    params(MerchantQuery),
    responses(
        (status = 200, description = "A page", body = MerchantPage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
    )
)]
pub async fn merchants(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<MerchantQuery>,
) -> Result<HttpResponse, ApiError> {
    if query.status == MerchantStatus::Pending {
        caller.require(&[Role::Admin])?;
    }
    let limit = page_size(query.limit)?;
    let approved = query.status == MerchantStatus::Approved;
    let listed = state
        .repos
        .listings
        .list_merchants(approved, query.before, limit)
        .await?;
    let next = next_before(listed.iter().map(|m| m.user_id), listed.len(), limit);
    Ok(HttpResponse::Ok().json(MerchantPage {
        merchants: listed.into_iter().map(MerchantView::from).collect(),
        next_before: next,
    }))
}

/// A user found by name.
#[derive(Serialize, ToSchema)]
struct UserView {
    #[schema(value_type = i64)]
    user_id: UserId,
    username: String,
    role: Role,
}

/// Look a user up by username
#[utoipa::path(
    get,
    path = "/usernames/{name}",
    operation_id = "findUsername",
    tag = "feeds",
    params(("name" = String, Path, description = "The exact username")),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn username(
    state: web::Data<AppState>,
    _caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .repos
        .accounts
        .user_by_name(&name)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no user with this name"))?;
    Ok(HttpResponse::Ok().json(UserView {
        user_id: user.id,
        username: user.username,
        role: user.role,
    }))
}

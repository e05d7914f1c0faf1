//! `POST /api/v1/rooms` (create a public or private room) and
//! `POST /api/v1/rooms/{id}/members` (the owner adds a member to a private room).

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use corral_protocol::ops::RoomId;
use corral_protocol::{ErrorCode, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::ApiError;
use crate::http::extract::Caller;
use crate::http::responses::{BadRequest, Conflict, Forbidden, NotFound, Unauthenticated};
use crate::http::table::ApiRoute;
use crate::state::AppState;
use crate::store::sql::chat::AddMemberError;

/// Longest room name, in characters.
const MAX_NAME_CHARS: usize = 100;

/// The room routes, under `/api/v1`.
pub const ROUTES: &[ApiRoute] = &[
    ApiRoute {
        method: Method::POST,
        path: "/rooms",
        handler: |r| r.to(create),
    },
    ApiRoute {
        method: Method::POST,
        path: "/rooms/{id}/members",
        handler: |r| r.to(add_member),
    },
];

/// `POST /rooms` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoom {
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Only members (added by the owner) may join, read and write.
    #[serde(default)]
    pub private: bool,
}

/// `POST /rooms/{id}/members` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// The user to add.
    #[schema(value_type = i64)]
    pub user_id: UserId,
}

/// The new room.
#[derive(Serialize, ToSchema)]
#[schema(as = RoomCreated)]
struct Created {
    #[schema(value_type = i64)]
    room_id: RoomId,
}

/// A member of a private room.
#[derive(Serialize, ToSchema)]
#[schema(as = MemberAdded)]
struct Added {
    #[schema(value_type = i64)]
    room_id: RoomId,
    #[schema(value_type = i64)]
    user_id: UserId,
}

/// Create a chat room
///
/// The caller owns the room. A private room's owner is its first member and adds the others;
/// anyone may join a public room.
#[utoipa::path(
    post,
    path = "/rooms",
    operation_id = "createRoom",
    tag = "rooms",
    request_body = NewRoom,
    responses(
        (status = 201, description = "Created", body = Created),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<NewRoom>,
) -> Result<HttpResponse, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request("name must be 1-100 characters"));
    }
    let room_id = state
        .repos
        .rooms
        .create_room(
            caller.0.user_id,
            name,
            body.private,
            corral_actors::clock::now_ms(),
        )
        .await?;
    Ok(HttpResponse::Created().json(Created { room_id }))
}

/// Add a member to a private room
///
/// Only the room's owner; adding a member twice is harmless. DM rooms take no members (403);
/// public rooms need none (409). Beyond `chat.members_per_room`: `limit_reached` (409).
#[utoipa::path(
    post,
    path = "/rooms/{id}/members",
    operation_id = "addRoomMember",
    tag = "rooms",
    params(("id" = i64, Path, description = "Room id")),
    request_body = NewMember,
    responses(
        (status = 200, description = "Added", body = Added),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub async fn add_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<RoomId>,
    body: web::Json<NewMember>,
) -> Result<HttpResponse, ApiError> {
    let room = path.into_inner();
    let user = body.user_id;
    state
        .repos
        .rooms
        .add_member(
            room,
            caller.0.user_id,
            user,
            state.settings.chat.members_per_room,
            corral_actors::clock::now_ms(),
        )
        .await
        .map_err(|err| match err {
            AddMemberError::NotFound => ApiError::new(ErrorCode::NotFound, err.to_string()),
            AddMemberError::Forbidden => ApiError::forbidden(err.to_string()),
            AddMemberError::Public => ApiError::new(ErrorCode::Conflict, err.to_string()),
            AddMemberError::Full => ApiError::new(ErrorCode::LimitReached, err.to_string()),
            AddMemberError::Store(err) => err.into(),
        })?;
    state.hub.rooms.member_added(room, user);
    Ok(HttpResponse::Ok().json(Added {
        room_id: room,
        user_id: user,
    }))
}

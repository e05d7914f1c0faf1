//! A merchant's catalogue: `POST/GET /api/v1/animals`, `GET/PUT/DELETE /api/v1/animals/{id}`
//! (DELETE retires). Only the owning merchant or an admin changes an animal.

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
use crate::store::sql::promotions::{AnimalInput, AnimalRecord};

/// The animal routes, under `/api/v1`.
pub const ROUTES: &[ApiRoute] = &[
    ApiRoute {
        method: Method::POST,
        path: "/animals",
        handler: |r| r.to(create),
    },
    ApiRoute {
        method: Method::GET,
        path: "/animals",
        handler: |r| r.to(list),
    },
    ApiRoute {
        method: Method::GET,
        path: "/animals/{id}",
        handler: |r| r.to(get),
    },
    ApiRoute {
        method: Method::PUT,
        path: "/animals/{id}",
        handler: |r| r.to(update),
    },
    ApiRoute {
        method: Method::DELETE,
        path: "/animals/{id}",
        handler: |r| r.to(retire),
    },
];

/// Most image URLs an animal may have.
const MAX_IMAGES: usize = 10;

/// Create and update body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AnimalInput)]
pub struct AnimalBody {
    /// 1-100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// 1-64 characters.
    #[schema(min_length = 1, max_length = 64)]
    pub species: String,
    /// Up to 4000 characters.
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub description: String,
    /// Up to 10 absolute http(s) URLs.
    #[serde(default)]
    #[schema(max_items = 10)]
    pub image_urls: Vec<String>,
    /// Price of a claim in cents, >= 0.
    #[schema(minimum = 0)]
    pub price_cents: i64,
    /// Claim slots, >= 1 (default 1).
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 1_000_000, default = 1)]
    pub slots: i64,
}

fn one() -> i64 {
    1
}

fn valid_image_url(raw: &str) -> bool {
    raw.len() <= 2048
        && url::Url::parse(raw)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

impl AnimalBody {
    fn validate(self) -> Result<AnimalInput, ApiError> {
        let len = |s: &str| s.trim().chars().count();
        if !(1..=100).contains(&len(&self.name)) {
            return Err(ApiError::bad_request("name must be 1-100 characters"));
        }
        if !(1..=64).contains(&len(&self.species)) {
            return Err(ApiError::bad_request("species must be 1-64 characters"));
        }
        if self.description.chars().count() > 4000 {
            return Err(ApiError::bad_request(
                "description must be at most 4000 characters",
            ));
        }
        if self.image_urls.len() > MAX_IMAGES {
            return Err(ApiError::bad_request("at most 10 image URLs"));
        }
        if let Some(bad) = self.image_urls.iter().find(|u| !valid_image_url(u)) {
            return Err(ApiError::bad_request(format!(
                "image URL {bad:?} is not an absolute http(s) URL"
            )));
        }
        if self.price_cents < 0 {
            return Err(ApiError::bad_request("price_cents must be >= 0"));
        }
        if !(1..=1_000_000).contains(&self.slots) {
            return Err(ApiError::bad_request("slots must be 1-1000000"));
        }
        Ok(AnimalInput {
            name: self.name.trim().to_string(),
            species: self.species.trim().to_string(),
            description: self.description,
            image_urls: self.image_urls,
            price_cents: self.price_cents,
            slots: self.slots,
        })
    }
}

/// An animal as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Animal)]
struct AnimalView {
    animal_id: i64,
    #[schema(value_type = i64)]
    merchant_id: UserId,
    name: String,
    species: String,
    description: String,
    image_urls: Vec<String>,
    price_cents: i64,
    slots: i64,
    retired: bool,
    /// Unix epoch milliseconds.
    created_at: i64,
    /// Unix epoch milliseconds.
    updated_at: i64,
}

/// A new animal's id.
#[derive(Serialize, ToSchema)]
struct AnimalCreated {
    animal_id: i64,
}

/// A merchant's catalogue, in id order.
#[derive(Serialize, ToSchema)]
struct Catalogue {
    animals: Vec<AnimalView>,
}

/// A retired animal.
#[derive(Serialize, ToSchema)]
struct AnimalRetired {
    animal_id: i64,
    retired: bool,
}

impl From<AnimalRecord> for AnimalView {
    fn from(a: AnimalRecord) -> Self {
        AnimalView {
            animal_id: a.id,
            merchant_id: a.merchant_id,
            name: a.input.name,
            species: a.input.species,
            description: a.input.description,
            image_urls: a.input.image_urls,
            price_cents: a.input.price_cents,
            slots: a.input.slots,
            retired: a.retired,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// The animal `id`, which `caller` must own (or be an admin) to change.
async fn owned_animal(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<AnimalRecord, ApiError> {
    caller.require(&[Role::Merchant, Role::Admin])?;
    let animal = state
        .repos
        .animals
        .animal(id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such animal"))?;
    caller.require_owner(animal.merchant_id)?;
    Ok(animal)
}

/// Add an animal to the caller's catalogue (merchant)
#[utoipa::path(
    post,
    path = "/animals",
    operation_id = "createAnimal",
    tag = "animals",
    request_body = AnimalBody,
    responses(
        (status = 201, description = "Created", body = AnimalCreated),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<AnimalBody>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Merchant, Role::Admin])?;
    let input = body.into_inner().validate()?;
    let me = caller.0.user_id;
    let id = state
        .repos
        .animals
        .create_animal(me, me, &input, now_ms())
        .await?;
    Ok(HttpResponse::Created().json(AnimalCreated { animal_id: id }))
}

/// `GET /animals` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Whose catalogue (default: the caller's).
    #[param(value_type = Option<i64>)]
    pub merchant_id: Option<UserId>,
    /// Include retired animals (default false).
    #[serde(default)]
    #[param(default = false)]
    pub include_retired: bool,
}

/// List a merchant's animals
#[utoipa::path(
    get,
    path = "/animals",
    operation_id = "listAnimals",
    tag = "animals",
    params(ListQuery),
    responses(
        (status = 200, description = "The catalogue, in id order", body = Catalogue),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let merchant = query.merchant_id.unwrap_or(caller.0.user_id);
    let animals = state
        .repos
        .animals
        .animals_of(merchant, query.include_retired)
        .await?;
    let animals: Vec<AnimalView> = animals.into_iter().map(AnimalView::from).collect();
    Ok(HttpResponse::Ok().json(Catalogue { animals }))
}

/// One animal
#[utoipa::path(
    get,
    path = "/animals/{id}",
    operation_id = "getAnimal",
    tag = "animals",
    params(("id" = i64, Path, description = "Animal id")),
    responses(
        (status = 200, description = "The animal", body = AnimalView),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    _caller: Caller,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let animal = state
        .repos
        .animals
        .animal(path.into_inner())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such animal"))?;
    Ok(HttpResponse::Ok().json(AnimalView::from(animal)))
}

/// Replace an animal's fields (its merchant or an admin)
#[utoipa::path(
    put,
    path = "/animals/{id}",
    operation_id = "updateAnimal",
    tag = "animals",
    params(("id" = i64, Path, description = "Animal id")),
    request_body = AnimalBody,
    responses(
        (status = 200, description = "The updated animal", body = AnimalView),
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
    path: web::Path<i64>,
    body: web::Json<AnimalBody>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let animal = owned_animal(&state, &caller, id).await?;
    if animal.retired {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "a retired animal cannot change",
        ));
    }
    let input = body.into_inner().validate()?;
    state
        .repos
        .animals
        .update_animal(caller.0.user_id, id, &input, now_ms())
        .await?;
    let animal = state
        .repos
        .animals
        .animal(id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such animal"))?;
    Ok(HttpResponse::Ok().json(AnimalView::from(animal)))
}

/// Retire an animal (its merchant or an admin); the row stays for past activities
#[utoipa::path(
    delete,
    path = "/animals/{id}",
    operation_id = "retireAnimal",
    tag = "animals",
    params(("id" = i64, Path, description = "Animal id")),
    responses(
        (status = 200, description = "Retired", body = AnimalRetired),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub async fn retire(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let animal = owned_animal(&state, &caller, id).await?;
    if animal.retired {
        return Err(ApiError::new(ErrorCode::Conflict, "already retired"));
    }
    state
        .repos
        .animals
        .retire_animal(caller.0.user_id, id, now_ms())
        .await?;
    Ok(HttpResponse::Ok().json(AnimalRetired {
        animal_id: id,
        retired: true,
    }))
}

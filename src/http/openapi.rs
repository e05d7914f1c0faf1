//! `GET /api/v1/openapi.json`: the OpenAPI 3 document of the HTTP API (a static file kept
//! beside this module; a test checks it lists every route in the route tables).

use actix_web::HttpResponse;
use actix_web::http::Method;

use crate::http::table::ApiRoute;

/// The document.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// The route serving it, under `/api/v1`.
pub const ROUTES: &[ApiRoute] = &[ApiRoute {
    method: Method::GET,
    path: "/openapi.json",
    handler: |r| r.to(document),
}];

async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI_JSON)
}

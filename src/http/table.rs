//! Routes declared as data: each module lists its routes in a table that both registers them
//! and feeds [`super::documented_routes`], which a test checks against the OpenAPI document.

use actix_web::http::Method;
use actix_web::{Route, web};

/// One route: method, path (relative to where its table is registered) and handler.
pub struct ApiRoute {
    /// The HTTP method.
    pub method: Method,
    /// The path pattern (actix syntax, which is also OpenAPI's: `/animals/{id}`).
    pub path: &'static str,
    /// Attaches the handler to a route already guarded by `method`.
    pub handler: fn(Route) -> Route,
}

/// Registers the routes of `table` that `keep` accepts.
pub fn register(
    cfg: &mut web::ServiceConfig,
    table: &[ApiRoute],
    keep: impl Fn(&ApiRoute) -> bool,
) {
    for route in table.iter().filter(|r| keep(r)) {
        cfg.route(
            route.path,
            (route.handler)(web::route().method(route.method.clone())),
        );
    }
}

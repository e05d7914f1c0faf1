//! The error responses the OpenAPI document shares between operations: one named response per
//! status, each with the one error body ([`ErrorEnvelope`], the schema `Error`), referenced by
//! the handlers' `#[utoipa::path]` as `(status = 404, response = NotFound)`.

use utoipa::openapi::{
    ContentBuilder, Header, HeaderBuilder, ObjectBuilder, Ref, RefOr, Response, ResponseBuilder,
    Type,
};
use utoipa::{ToResponse, ToSchema};

use crate::http::error::ErrorEnvelope;

/// `Retry-After` on a response: whole seconds to wait before trying again.
fn retry_after(when: &str) -> Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        )
        .description(Some(format!("Seconds to wait before retrying; {when}")))
        .build()
}

/// A response whose body is the error shape.
fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(ErrorEnvelope::name())))
            .build(),
    )
}

/// Declares a named error response: a unit type whose `ToResponse` is `$body` (a builder).
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident => $body:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), $body.build().into())
            }
        }
    )*};
}

error_responses! {
    /// 400 `bad_request`.
    BadRequest => error_response("Invalid body, path or query (`bad_request`)");
    /// 401 `unauthenticated`.
    Unauthenticated => error_response("Missing or bad token (`unauthenticated`)");
    /// 403 `forbidden`.
    Forbidden => error_response(
        "The caller's role or ownership does not allow this (`forbidden`)",
    );
    /// 404 `not_found`.
    NotFound => error_response("No such thing (`not_found`)");
    /// 409 `conflict` (or `ended`).
    Conflict => error_response(
        "Conflicts with the current state (`conflict`, or `ended` for an activity that is over)",
    );
    /// 413 `too_large`.
    TooLarge => error_response("The body is over the limit (`too_large`)");
    /// 429, always with `Retry-After`.
    RateLimited => error_response(
        "Too many requests or connections (`rate_limited`, `limit_reached`)",
    )
    .header("Retry-After", retry_after("always sent with a 429"));
    /// 503 `unavailable`, with `Retry-After` when the node knows how long to wait.
    Unavailable => error_response("Shedding load or shutting down (`unavailable`)")
        .header("Retry-After", retry_after("sent when the node knows how long to wait"));
}

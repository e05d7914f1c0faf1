//! Request extractors: the caller's identity from `Authorization: Bearer <token>`.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use corral_actors::metric_catalogue as metric;
use corral_actors::{Identity, TokenVerifier};
use corral_protocol::Role;

use crate::http::error::ApiError;
use crate::state::AppState;

/// The bearer token of a request, if it has one (the scheme name is case-insensitive,
/// RFC 9110 section 11.1).
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// An authenticated caller.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Identity);

impl Caller {
    /// Refuses callers without one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role",
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )))
        }
    }
}

impl Caller {
    /// Refuses callers other than `owner` itself and admins (for changes to a merchant's
    /// animals and activities).
    pub fn require_owner(&self, owner: corral_protocol::UserId) -> Result<(), ApiError> {
        if self.0.role == Role::Admin || (self.0.user_id == owner && self.0.role == Role::Merchant)
        {
            Ok(())
        } else {
            Err(ApiError::forbidden("this belongs to another merchant"))
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(caller(req))
    }
}

fn caller(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("app state missing"))?;
    let token =
        bearer_token(req).ok_or_else(|| ApiError::unauthenticated("missing bearer token"))?;
    state.keys.verify(token).map(Caller).map_err(|e| {
        let reason = e.label();
        metrics::counter!(metric::AUTH_FAILURES, "reason" => reason).increment(1);
        ApiError::unauthenticated(e.to_string())
    })
}

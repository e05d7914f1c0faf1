//! `POST /api/v1/payments/webhook`: the payment provider confirms a claim (docs/payments.md).
//!
//! Checks, in order: the HMAC-SHA256 signature over `timestamp.nonce.body`, the timestamp's
//! freshness, the claim's existence and the amount against its animal's price (an unknown
//! claim or a wrong amount changes nothing), the nonce (a replay is
//! refused), then the event id (a second delivery of an event is answered with the first
//! outcome and changes nothing). The event is recorded `pending` before it is applied, so a
//! delivery that failed halfway is applied again when the provider retries it.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use corral_actors::metric_catalogue as metric;
use corral_actors::ports::claims::PaymentOutcome;
use corral_protocol::ErrorCode;
use corral_protocol::ops::ClaimStatus;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use crate::http::ApiError;
use crate::http::responses::{
    BadRequest, Conflict, NotFound, TooLarge, Unauthenticated, Unavailable,
};
use crate::http::table::ApiRoute;
use crate::state::AppState;

/// Header carrying the call's time (epoch ms).
pub const TIMESTAMP_HEADER: &str = "X-Corral-Timestamp";
/// Header carrying the call's unique nonce.
pub const NONCE_HEADER: &str = "X-Corral-Nonce";
/// Header carrying hex HMAC-SHA256(secret, timestamp + "." + nonce + "." + body).
pub const SIGNATURE_HEADER: &str = "X-Corral-Signature";

/// The webhook route, under `/api/v1`.
pub const ROUTES: &[ApiRoute] = &[ApiRoute {
    method: Method::POST,
    path: "/payments/webhook",
    handler: |r| r.to(webhook),
}];

/// The webhook body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PaymentEvent {
    /// The provider's unique event id (deliveries of one event are applied once).
    #[schema(min_length = 1, max_length = 128)]
    pub event_id: String,
    /// The claim paid for.
    pub claim_id: i64,
    /// The amount paid.
    pub amount_cents: i64,
}

/// What the event did.
#[derive(Serialize, ToSchema)]
#[schema(as = PaymentApplied)]
struct Applied {
    event_id: String,
    claim_id: i64,
    /// The claim's status after the event (`confirmed`, `refund_due`, or `ignored` for a
    /// claim the payment could not change).
    status: String,
    /// Whether this event id had been applied before (nothing changed now).
    duplicate: bool,
    /// Whether this call changed the claim (false for a claim already confirmed or
    /// refund_due, e.g. a second payment with another event id).
    changed: bool,
}

/// Hex HMAC-SHA256 of `timestamp.nonce.body` under `secret`.
pub fn sign(secret: &[u8], timestamp: &str, nonce: &str, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, nonce, body).finalize().into_bytes())
}

fn mac(secret: &[u8], timestamp: &str, nonce: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(nonce.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Result<&'a str, ApiError> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .ok_or_else(|| ApiError::unauthenticated(format!("missing or malformed {name} header")))
}

/// Payment provider confirms a claim (signed; see docs/payments.md)
///
/// X-Corral-Signature = hex HMAC-SHA256(secret, timestamp + "." + nonce + "." + body). Stale
/// timestamps and replayed nonces are refused; an event id is applied once; a payment for a
/// lapsed hold re-takes a free slot or is recorded refund_due.
#[utoipa::path(
    post,
    path = "/payments/webhook",
    operation_id = "paymentWebhook",
    tag = "payments",
    security(()),
    params(
        ("X-Corral-Timestamp" = String, Header, description = "Epoch ms when the call was sent"),
        ("X-Corral-Nonce" = String, Header, description = "Unique per call, 1-128 bytes"),
        ("X-Corral-Signature" = String, Header, description = "Hex HMAC-SHA256 of timestamp.nonce.body"),
    ),
    request_body = PaymentEvent,
    responses(
        (status = 200, description = "Applied (or a duplicate event)", body = Applied),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 503, response = Unavailable),
    )
)]
pub async fn webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let settings = &state.settings.payments;
    if settings.webhook_secret.expose_secret().is_empty() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "the payment webhook is not configured on this node",
        ));
    }
    let timestamp = header(&req, TIMESTAMP_HEADER)?;
    let nonce = header(&req, NONCE_HEADER)?;
    let signature = hex::decode(header(&req, SIGNATURE_HEADER)?)
        .map_err(|_| ApiError::unauthenticated("the signature is not hex"))?;
    let secret = settings.webhook_secret.expose_secret().as_bytes();
    if mac(secret, timestamp, nonce, &body)
        .verify_slice(&signature)
        .is_err()
    {
        metrics::counter!(metric::WEBHOOK_REFUSED, "reason" => "signature").increment(1);
        return Err(ApiError::unauthenticated("bad signature"));
    }
    let now = corral_actors::clock::now_ms();
    let window = settings.stale_window_ms();
    // `abs_diff`: a timestamp near i64::MIN or MAX must not wrap into the window.
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|ts| now.abs_diff(ts) <= window.unsigned_abs());
    if !fresh {
        metrics::counter!(metric::WEBHOOK_REFUSED, "reason" => "stale").increment(1);
        let seconds = timestamp
            .parse::<i64>()
            .is_ok_and(crate::http::epoch_ms::looks_like_seconds);
        return Err(ApiError::unauthenticated(if seconds {
            "X-Corral-Timestamp looks like seconds: it is milliseconds since the Unix epoch"
        } else {
            "stale or malformed timestamp (epoch ms, within the configured window)"
        }));
    }
    let event: PaymentEvent =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    if event.event_id.is_empty() || event.event_id.len() > 128 {
        return Err(ApiError::bad_request("event_id must be 1 to 128 bytes"));
    }
    let payments = &state.repos.payments;
    let Some(price) = payments.claim_price(event.claim_id).await? else {
        return Err(ApiError::new(ErrorCode::NotFound, "no such claim"));
    };
    // Checked before the nonce and the event are recorded: a wrong amount changes nothing.
    if event.amount_cents != price {
        metrics::counter!(metric::WEBHOOK_REFUSED, "reason" => "amount").increment(1);
        return Err(ApiError::bad_request(format!(
            "amount_cents {} does not match the claim's price of {price}",
            event.amount_cents
        )));
    }
    if !payments.use_nonce(nonce, now, 2 * window).await? {
        metrics::counter!(metric::WEBHOOK_REFUSED, "reason" => "replay").increment(1);
        return Err(ApiError::new(ErrorCode::Conflict, "replayed nonce"));
    }
    if let Some(previous) = payments
        .record_event(&event.event_id, event.claim_id, event.amount_cents, now)
        .await?
    {
        if previous.0 != event.claim_id {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "this event id was used for another claim",
            ));
        }
        if previous.1 != "pending" {
            return Ok(HttpResponse::Ok().json(Applied {
                event_id: event.event_id,
                claim_id: event.claim_id,
                status: previous.1,
                duplicate: true,
                changed: false,
            }));
        }
    }
    let outcome = state
        .hub
        .claims
        .clone()
        .pay(event.claim_id)
        .await
        .map_err(ApiError::from)?;
    let status = match &outcome {
        PaymentOutcome::Confirmed(c)
        | PaymentOutcome::RefundDue(c)
        | PaymentOutcome::Unchanged(c) => c.status,
    };
    let recorded = match status {
        ClaimStatus::Confirmed | ClaimStatus::RefundDue => status.as_str(),
        _ => "ignored",
    };
    payments.settle_event(&event.event_id, recorded).await?;
    Ok(HttpResponse::Ok().json(Applied {
        event_id: event.event_id,
        claim_id: event.claim_id,
        status: status.as_str().to_string(),
        duplicate: false,
        changed: !matches!(outcome, PaymentOutcome::Unchanged(_)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_documented_example() {
        // docs/payments.md, "Worked example".
        let body = br#"{"event_id":"evt_1001","claim_id":42,"amount_cents":1999}"#;
        let sig = sign(b"whsec_example", "1795000000000", "n-7f3a9c", body);
        assert_eq!(
            sig,
            "568aa9a9560df8ef3d5a653b0f929c73e32cc33d213ab8fa8fd00af0edd13ed8"
        );
        assert!(
            mac(b"whsec_example", "1795000000000", "n-7f3a9c", body)
                .verify_slice(&hex::decode(&sig).unwrap_or_default())
                .is_ok()
        );
        assert_ne!(sig, sign(b"other", "1795000000000", "n-7f3a9c", body));
    }
}

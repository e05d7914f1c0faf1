//! The server's public HTTP API (`/api/v1`) as the load generator uses it: creating what a
//! scenario needs (public rooms, animals, an activity and its coupon codes) and reading an activity and its
//! merchant view of claims afterwards. The shapes are the ones `src/http/*.rs` serves and
//! `GET /api/v1/openapi.json` documents; unknown fields are ignored.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::LoadError;
use crate::checks::LedgerRow;

/// Most codes the server takes in one coupon upload.
pub const CODES_PER_UPLOAD: usize = 5_000;

/// A bearer-token client for one server.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// `GET /activities/{id}` (the fields the load generator reads).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ActivityView {
    /// Its id.
    pub activity_id: i64,
    /// The merchant running it.
    pub merchant_id: i64,
    /// `scheduled`, `live`, `ended`, `cancelled`.
    pub state: String,
    /// Opening instant, epoch ms (server clock).
    pub starts_at: i64,
    /// Closing instant, epoch ms.
    pub ends_at: i64,
    /// Active claims one user may hold.
    pub per_user_limit: u64,
    /// Its items.
    pub items: Vec<ItemView>,
}

/// One item of an activity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ItemView {
    /// The item id (what `claim` replies name as `item`).
    pub item_id: i64,
    /// Slots offered.
    pub slots: u64,
}

/// `GET /activities/{id}/claims`: every claim and the counts by status.
#[derive(Debug, Clone, Deserialize)]
pub struct ClaimsView {
    /// Every claim of the activity.
    pub claims: Vec<LedgerRow>,
    /// Counts by status, and the activity's slots.
    pub summary: ClaimsSummary,
}

/// The merchant view's `summary`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClaimsSummary {
    /// Slots over all items.
    pub slots: u64,
    /// Active holds.
    pub held: u64,
    /// Paid claims.
    pub confirmed: u64,
    /// Holds that lapsed.
    pub expired: u64,
    /// Holds given back.
    pub cancelled: u64,
    /// Payments for lapsed holds with no slot free.
    pub refund_due: u64,
}

/// What a created activity offers.
#[derive(Debug, Clone)]
pub struct NewActivity {
    /// Title.
    pub title: String,
    /// Opening instant, epoch ms.
    pub starts_at: i64,
    /// Closing instant, epoch ms.
    pub ends_at: i64,
    /// `(animal_id, slots)` per item.
    pub items: Vec<(i64, u64)>,
    /// Claims per user.
    pub per_user_limit: u64,
    /// Hold lifetime.
    pub hold_seconds: u64,
    /// Audience, requirements and reward (`None`: anyone may claim, and the field is left
    /// out, so a node without rules accepts the body).
    pub rules: Option<Value>,
}

impl Api {
    /// A client for the server at `base` (`http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Result<Api, LoadError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| LoadError::Http(e.to_string()))?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<T, LoadError> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method.clone(), &url).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| LoadError::Http(format!("{method} {url}: {e}")))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| LoadError::Http(format!("{method} {url}: {e}")))?;
        if !status.is_success() {
            return Err(LoadError::Http(format!("{method} {url}: {status}: {text}")));
        }
        serde_json::from_str(&text)
            .map_err(|e| LoadError::Http(format!("{method} {url}: unexpected body ({e}): {text}")))
    }

    /// `GET /metrics` (Prometheus text), when the node serves it on this address.
    pub async fn metrics(&self) -> Option<String> {
        let resp = self
            .http
            .get(format!("{}/metrics", self.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.text().await.ok()
    }

    /// `POST /rooms {name, private: false}` -> the room id.
    pub async fn create_room(&self, token: &str, name: &str) -> Result<i64, LoadError> {
        #[derive(Deserialize)]
        struct Created {
            room_id: i64,
        }
        let body = json!({ "name": name, "private": false });
        let created: Created = self
            .call(reqwest::Method::POST, "/rooms", token, Some(body))
            .await?;
        Ok(created.room_id)
    }

    /// `POST /animals {name, species, price_cents, slots}` (a merchant) -> the animal id.
    pub async fn create_animal(
        &self,
        token: &str,
        name: &str,
        slots: u64,
    ) -> Result<i64, LoadError> {
        #[derive(Deserialize)]
        struct Created {
            animal_id: i64,
        }
        let body =
            json!({ "name": name, "species": "load test", "price_cents": 0, "slots": slots });
        let created: Created = self
            .call(reqwest::Method::POST, "/animals", token, Some(body))
            .await?;
        Ok(created.animal_id)
    }

    /// `POST /activities` (a merchant) -> the activity id.
    pub async fn create_activity(&self, token: &str, new: &NewActivity) -> Result<i64, LoadError> {
        #[derive(Deserialize)]
        struct Created {
            activity_id: i64,
        }
        let items: Vec<Value> = new
            .items
            .iter()
            .map(|(animal_id, slots)| json!({ "animal_id": animal_id, "slots": slots }))
            .collect();
        let mut body = json!({
            "title": new.title,
            "starts_at": new.starts_at,
            "ends_at": new.ends_at,
            "items": items,
            "per_user_limit": new.per_user_limit,
            "hold_seconds": new.hold_seconds,
        });
        if let Some(rules) = &new.rules {
            body["rules"] = rules.clone();
        }
        let created: Created = self
            .call(reqwest::Method::POST, "/activities", token, Some(body))
            .await?;
        Ok(created.activity_id)
    }

    /// `POST /activities/{id}/coupons` in uploads of at most [`CODES_PER_UPLOAD`] codes (a
    /// coupon promotion, before its start) -> the codes loaded.
    pub async fn upload_coupons(
        &self,
        token: &str,
        id: i64,
        codes: &[String],
    ) -> Result<i64, LoadError> {
        #[derive(Deserialize)]
        struct Pool {
            loaded: i64,
        }
        #[derive(Deserialize)]
        struct Uploaded {
            pool: Pool,
        }
        let mut loaded = 0;
        for part in codes.chunks(CODES_PER_UPLOAD) {
            let uploaded: Uploaded = self
                .call(
                    reqwest::Method::POST,
                    &format!("/activities/{id}/coupons"),
                    token,
                    Some(json!({ "codes": part })),
                )
                .await?;
            loaded = uploaded.pool.loaded;
        }
        Ok(loaded)
    }

    /// `GET /activities/{id}`.
    pub async fn activity(&self, token: &str, id: i64) -> Result<ActivityView, LoadError> {
        self.call(
            reqwest::Method::GET,
            &format!("/activities/{id}"),
            token,
            None,
        )
        .await
    }

    /// `GET /activities/{id}/claims` (its merchant, or an admin).
    pub async fn claims(&self, token: &str, id: i64) -> Result<ClaimsView, LoadError> {
        self.call(
            reqwest::Method::GET,
            &format!("/activities/{id}/claims"),
            token,
            None,
        )
        .await
    }
}

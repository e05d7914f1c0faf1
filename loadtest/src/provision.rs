//! Self-provisioning: before any client connects, creates through the public HTTP API what
//! the scenario needs and does not name, and writes the ids into the scenario (so
//! `result.json` says what was used): chat-storm's public rooms and soak's room (created with
//! the first account's token), and a promotion with the merchant's token, for a flash crowd
//! or a soak that mixes claims in: its animals and activity, starting after the expected end
//! of the connect phase (a flash crowd's with the scenario's rules; the merchant's id is
//! recorded for the clients that follow it; a coupon reward gets one generated code per slot
//! uploaded before the start). Feed-burst and the soak's feed need nothing here: followers
//! follow over the WebSocket during setup.

use crate::LoadError;
use crate::api::{ActivityView, Api, NewActivity};
use crate::scenario::{Kind, Scenario};
use crate::stats::now_us;
use crate::tokens;

/// The promotion clients claim in (a flash crowd's, a soak's) as the server describes it, and
/// the merchant's token.
#[derive(Debug, Clone)]
pub struct Promotion {
    /// `GET /activities/{id}` before the run.
    pub activity: ActivityView,
    /// The merchant's bearer token (it reads the claims view afterwards).
    pub merchant_token: String,
}

/// Creates what `scenario` needs; returns the promotion its clients claim in, if any.
pub async fn provision(scenario: &mut Scenario) -> Result<Option<Promotion>, LoadError> {
    let needs_room = match scenario.kind {
        Kind::ChatStorm => scenario
            .broadcast
            .as_ref()
            .is_some_and(|b| b.room_ids.is_none()),
        Kind::Soak => scenario.soak.as_ref().is_some_and(|s| s.room.is_none()),
        _ => false,
    };
    let api = Api::new(&scenario.http_base()?)?;
    if needs_room {
        let path = scenario
            .tokens
            .clone()
            .ok_or_else(|| LoadError::Scenario("creating rooms needs `tokens`".into()))?;
        let token = first_token(&path, "user")?;
        let count = scenario.broadcast.as_ref().map_or(1, |b| b.rooms);
        let mut ids = Vec::new();
        for k in 0..count {
            let name = format!("loadtest {} {k}", scenario.name);
            ids.push(api.create_room(&token, &name).await?);
        }
        if let Some(b) = &mut scenario.broadcast
            && scenario.kind == Kind::ChatStorm
        {
            b.room_ids = Some(ids);
        } else if let Some(s) = &mut scenario.soak {
            s.room = ids.first().copied();
        }
    }
    // Clients are connected about this long after now (the ramp): a promotion must not open
    // before.
    let connect_estimate_ms = match scenario.connect.ramp_per_sec {
        0 => 0,
        ramp => scenario.connect.clients as u64 * 1000 / ramp,
    };
    let now_ms = now_us() / 1000;
    let name = scenario.name.clone();
    if let Some(crowd) = &mut scenario.crowd
        && scenario.kind == Kind::FlashCrowd
    {
        let starts_at =
            (now_ms + connect_estimate_ms + crowd.start_margin_seconds.max(1) * 1000) as i64;
        let offer = Offer {
            name: &name,
            items: crowd.items,
            slots_per_item: crowd.slots_per_item,
            starts_at,
            ends_at: starts_at + ((crowd.seconds + 60) * 1000) as i64,
            per_user_limit: crowd.per_user_limit,
            hold_seconds: crowd.hold_seconds,
            rules: crowd.rules.clone(),
        };
        let promotion = promotion(&api, &crowd.merchant_tokens, crowd.activity, offer).await?;
        crowd.activity = Some(promotion.activity.activity_id);
        crowd.merchant = Some(promotion.activity.merchant_id);
        return Ok(Some(promotion));
    }
    let max_seconds = scenario.max_seconds;
    if let Some(claims) = scenario.soak.as_mut().and_then(|s| s.claims.as_mut())
        && scenario.kind == Kind::Soak
    {
        // Open as the clients finish connecting (they claim from `starts_at` on), close
        // after the run's bound.
        let starts_at = (now_ms + connect_estimate_ms + 1000) as i64;
        let offer = Offer {
            name: &name,
            items: claims.items,
            slots_per_item: claims.slots_per_item,
            starts_at,
            ends_at: (now_ms + (max_seconds + 60) * 1000) as i64,
            per_user_limit: claims.per_user_limit,
            hold_seconds: claims.hold_seconds,
            rules: None,
        };
        let promotion = promotion(&api, &claims.merchant_tokens, claims.activity, offer).await?;
        claims.activity = Some(promotion.activity.activity_id);
        return Ok(Some(promotion));
    }
    Ok(None)
}

/// What a created promotion offers.
struct Offer<'a> {
    /// The scenario's name (in the animals' and the activity's names).
    name: &'a str,
    items: u64,
    slots_per_item: u64,
    starts_at: i64,
    ends_at: i64,
    per_user_limit: u64,
    hold_seconds: u64,
    rules: Option<serde_json::Value>,
}

/// The merchant's promotion: `existing`, or one created as `offer` says (its animals first,
/// and a coupon reward's codes, one per slot, before the start). Returns it as the server
/// describes it, with the merchant's token.
async fn promotion(
    api: &Api,
    merchant_tokens: &std::path::Path,
    existing: Option<i64>,
    offer: Offer<'_>,
) -> Result<Promotion, LoadError> {
    let token = first_token(merchant_tokens, "merchant")?;
    let id = match existing {
        Some(id) => id,
        None => {
            let mut items = Vec::new();
            for k in 0..offer.items {
                let name = format!("{} animal {k}", offer.name);
                let animal = api
                    .create_animal(&token, &name, offer.slots_per_item)
                    .await?;
                items.push((animal, offer.slots_per_item));
            }
            let new = NewActivity {
                title: format!("loadtest {}", offer.name),
                starts_at: offer.starts_at,
                ends_at: offer.ends_at,
                items,
                per_user_limit: offer.per_user_limit,
                hold_seconds: offer.hold_seconds,
                rules: offer.rules,
            };
            let id = api.create_activity(&token, &new).await?;
            if gives_coupons(new.rules.as_ref()) {
                // One code per slot, so every slot can be won.
                let slots = offer.items * offer.slots_per_item;
                api.upload_coupons(&token, id, &coupon_codes(id, slots))
                    .await?;
            }
            id
        }
    };
    let activity = api.activity(&token, id).await?;
    Ok(Promotion {
        activity,
        merchant_token: token,
    })
}

/// Whether `rules` give each winner a coupon code.
fn gives_coupons(rules: Option<&serde_json::Value>) -> bool {
    rules.is_some_and(|r| r["reward"]["kind"] == "coupon")
}

/// `n` distinct codes for activity `id`.
fn coupon_codes(id: i64, n: u64) -> Vec<String> {
    (0..n).map(|k| format!("LOAD-{id}-{k:06}")).collect()
}

fn first_token(path: &std::path::Path, role: &str) -> Result<String, LoadError> {
    tokens::load(path, 1, role)?
        .into_iter()
        .next()
        .map(|a| a.token)
        .ok_or_else(|| LoadError::Scenario(format!("{}: no account", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coupon_reward_gets_one_distinct_code_per_slot() {
        let coupon = serde_json::json!({"reward": {"kind": "coupon"}});
        let slot = serde_json::json!({"reward": {"kind": "slot"}});
        assert!(gives_coupons(Some(&coupon)));
        assert!(!gives_coupons(Some(&slot)));
        assert!(!gives_coupons(None));
        let codes = coupon_codes(7, 1_000);
        let distinct: std::collections::HashSet<&String> = codes.iter().collect();
        assert_eq!((codes.len(), distinct.len()), (1_000, 1_000));
        assert_eq!(codes[0], "LOAD-7-000000");
    }
}

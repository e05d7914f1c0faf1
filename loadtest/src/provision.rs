//! Self-provisioning: before any client connects, creates through the public HTTP API what
//! the scenario needs and does not name, and writes the ids into the scenario (so
//! `result.json` says what was used): chat-storm's public rooms and soak's room (created with
//! the first account's token), flash-crowd's animals and activity (created with the
//! merchant's token and the scenario's rules, starting after the expected end of the connect
//! phase; the merchant's id is recorded for the clients that follow it; a coupon reward gets
//! one generated code per slot uploaded before the start). Feed-burst needs
//! nothing here: its followers follow the authors over the WebSocket during setup.

use crate::LoadError;
use crate::api::{ActivityView, Api, NewActivity};
use crate::scenario::{Kind, Scenario};
use crate::stats::now_us;
use crate::tokens;

/// The flash crowd's activity as the server describes it, and the merchant's token.
#[derive(Debug, Clone)]
pub struct Promotion {
    /// `GET /activities/{id}` before the run.
    pub activity: ActivityView,
    /// The merchant's bearer token (it reads the claims view afterwards).
    pub merchant_token: String,
}

/// Creates what `scenario` needs; returns the flash crowd's activity.
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
    if scenario.kind != Kind::FlashCrowd {
        return Ok(None);
    }
    let connect_estimate_ms = match scenario.connect.ramp_per_sec {
        0 => 0,
        ramp => scenario.connect.clients as u64 * 1000 / ramp,
    };
    let Some(crowd) = &mut scenario.crowd else {
        return Ok(None);
    };
    let token = first_token(&crowd.merchant_tokens, "merchant")?;
    let id = match crowd.activity {
        Some(id) => id,
        None => {
            let mut items = Vec::new();
            for k in 0..crowd.items {
                let name = format!("{} animal {k}", scenario.name);
                let animal = api
                    .create_animal(&token, &name, crowd.slots_per_item)
                    .await?;
                items.push((animal, crowd.slots_per_item));
            }
            let starts_at = (now_us() / 1000
                + connect_estimate_ms
                + crowd.start_margin_seconds.max(1) * 1000) as i64;
            let new = NewActivity {
                title: format!("loadtest {}", scenario.name),
                starts_at,
                ends_at: starts_at + ((crowd.seconds + 60) * 1000) as i64,
                items,
                per_user_limit: crowd.per_user_limit,
                hold_seconds: crowd.hold_seconds,
                rules: crowd.rules.clone(),
            };
            let id = api.create_activity(&token, &new).await?;
            if gives_coupons(new.rules.as_ref()) {
                // One code per slot, so every slot can be won.
                let slots = crowd.items * crowd.slots_per_item;
                api.upload_coupons(&token, id, &coupon_codes(id, slots))
                    .await?;
            }
            crowd.activity = Some(id);
            id
        }
    };
    let activity = api.activity(&token, id).await?;
    crowd.merchant = Some(activity.merchant_id);
    Ok(Some(Promotion {
        activity,
        merchant_token: token,
    }))
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

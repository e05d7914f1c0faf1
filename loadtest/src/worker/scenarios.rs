//! What each scenario has a client do: its setup after authenticating (join a room, follow an
//! author, subscribe to the activity) and its active phase, one file per scenario family —
//! [`broadcast`] (raw-broadcast, chat-storm, feed-burst), [`crowd`] (flash-crowd), [`soak`],
//! and [`rejoin`] (coming back after a drop, for chat members and the soak).

pub(super) mod broadcast;
pub(super) mod crowd;
pub(super) mod rejoin;
pub(super) mod soak;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use self::broadcast::{author_of, publish, room_of};
use self::crowd::crowd;
use self::soak::{followee_of, soak, soak_activity, soak_room, timeline_floor};
use super::claim_book::ClaimBook;
use super::client::{Client, request, subscribe, sync_clock};
use super::ctx::Ctx;
use crate::checks::{Stream, Tally};
use crate::client::{self, ClientError, Conn};
use crate::scenario::{Kind, Scenario};
use crate::stats::{h, now_us, t};

/// Connects, authenticates and does the scenario's setup.
pub(super) async fn setup(ctx: &Ctx, n: usize) -> Result<Client, ClientError> {
    let scenario = ctx.scenario();
    let raw = scenario.raw();
    let started = now_us();
    let ws = client::connect(
        &ctx.target,
        ctx.addr,
        scenario.source_addr(n),
        (!raw).then_some(corral_protocol::SUBPROTOCOL),
        Duration::from_secs(20),
    )
    .await?;
    ctx.rec.with(|s, bin| {
        s.record(h::CONNECT, now_us().saturating_sub(started));
        s.count(t::CONNECTS, bin, 1);
    });
    let (activity, retries) = claim_terms(scenario);
    let mut client = Client {
        n,
        conn: Conn::new(ws),
        user_id: 0,
        raw,
        tallies: HashMap::new(),
        starts_at_ms: None,
        clock_offset_us: 0,
        claims: ClaimBook::new(format!("lt-{}-{n}", ctx.plan.epoch_us), activity, retries),
        follows: None,
    };
    if raw {
        if let Some(b) = &scenario.broadcast {
            // Every client receives every publisher's stream.
            for p in 0..b.publishers {
                client
                    .tallies
                    .insert(Stream::Publisher(p as u64), Tally::default());
            }
        }
        return Ok(client);
    }
    let account = ctx
        .accounts
        .get(n)
        .ok_or_else(|| ClientError::new("no_token", format!("no account for client {n}")))?;
    client.user_id = account.id;
    request(ctx, &mut client, "auth", &json!({ "token": account.token })).await?;
    match scenario.kind {
        Kind::ChatStorm | Kind::Soak => {
            let room = match scenario.kind {
                Kind::Soak => soak_room(scenario),
                _ => room_of(scenario, n),
            };
            let ok = request(ctx, &mut client, "room.join", &json!({ "room": room })).await?;
            // Every message after the join's `last_seq` is this member's to receive.
            let last_seq = ok.get("last_seq").and_then(Value::as_u64).unwrap_or(0);
            client
                .tallies
                .insert(Stream::Room(room), Tally::after(last_seq));
            if scenario.kind == Kind::Soak {
                soak_setup(ctx, &mut client).await?;
            }
        }
        Kind::FeedBurst => {
            if let Some(author) = author_of(ctx, n) {
                request(ctx, &mut client, "follow", &json!({ "user": author })).await?;
                client
                    .tallies
                    .insert(Stream::Feed(author), Tally::default());
            }
        }
        Kind::FlashCrowd => {
            if let Some(crowd) = &scenario.crowd {
                // A followers-only promotion's audience follows the merchant first (its facts
                // are read when it subscribes).
                if let Some(merchant) = crowd.merchant
                    && ((n % 1000) as f64) < crowd.followers_share * 1000.0
                {
                    request(ctx, &mut client, "follow", &json!({ "user": merchant })).await?;
                }
                subscribe(ctx, &mut client, crowd.activity.unwrap_or_default()).await?;
                client.clock_offset_us = sync_clock(ctx, &mut client).await?;
                let error = client.clock_offset_us.unsigned_abs();
                ctx.rec.with(|s, _| s.record(h::CLOCK_ERROR, error));
            }
        }
        Kind::ConnectCapacity | Kind::RawBroadcast => {}
    }
    Ok(client)
}

/// The promotion a scenario's clients claim in, and the retries of a claim (none for a
/// scenario without claims).
fn claim_terms(scenario: &Scenario) -> (i64, u32) {
    match (scenario.kind, &scenario.crowd, scenario.soak_claims()) {
        (Kind::FlashCrowd, Some(crowd), _) => (crowd.activity.unwrap_or_default(), crowd.retries),
        (Kind::Soak, _, Some(claims)) => (claims.activity.unwrap_or_default(), claims.retries),
        _ => (0, 0),
    }
}

/// A soak client's setup beyond the room: it watches the promotion it will claim in, and
/// follows the author whose posts it will look for in its timeline.
async fn soak_setup(ctx: &Ctx, client: &mut Client) -> Result<(), ClientError> {
    if let Some(activity) = soak_activity(ctx.scenario()) {
        subscribe(ctx, client, activity).await?;
    }
    if let Some(author) = followee_of(ctx, client.n) {
        request(ctx, client, "follow", &json!({ "user": author })).await?;
        client.follows = Some((author, timeline_floor(ctx, client).await?));
    }
    Ok(())
}

/// The scenario's active phase for one client; returns whether the socket is still open.
pub(super) async fn active(ctx: &Ctx, client: &mut Client, at_us: u64) -> bool {
    let scenario = ctx.scenario();
    match scenario.kind {
        Kind::ConnectCapacity => true,
        Kind::RawBroadcast | Kind::ChatStorm | Kind::FeedBurst => publish(ctx, client, at_us).await,
        Kind::FlashCrowd => crowd(ctx, client).await,
        Kind::Soak => soak(ctx, client, at_us).await,
    }
}

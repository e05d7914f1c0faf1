//! The soak: reconnect churn with chat, and feed posts and claims mixed in, for a set time.
//! Every client publishes into the room at a low rate, drops its connection at random times and
//! comes back with `room.join {since}`. With `posts_per_sec` it also posts to its own feed and,
//! at the end, reads its timeline for the posts of the author it follows (a follower offline
//! when a post went out gets no push: the timeline is where an acknowledged post must be).
//! With `[soak.claims]` it watches the promotion (subscribing again after each reconnect),
//! claims now and then with a fresh key through its [`ClaimBook`](crate::worker::claim_book)
//! (retries and claims lost with a socket go again with their keys), and gives some of its
//! holds back with `claim.cancel` while the others expire, so slots churn. At the end every
//! client is connected and caught up.

use std::time::Duration;

use corral_protocol::ops::MAX_PAGE;
use serde_json::{Value, json};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::rejoin::come_back;
use crate::checks::{GivenBack, Stream, Tally};
use crate::client::ClientError;
use crate::scenario::{Scenario, SoakSpec};
use crate::stats::{now_us, t};
use crate::worker::client::{
    Client, account, collect_owed, next_frame, read_until, request, subscribe,
};
use crate::worker::ctx::{Ctx, far_future, instant_of, lock};
use crate::worker::payload::payload;

/// Most timeline pages read at the end (100 posts each).
const MAX_TIMELINE_PAGES: usize = 100;

/// Soak: the room (named or created by provisioning).
pub(in crate::worker) fn soak_room(scenario: &Scenario) -> i64 {
    scenario
        .soak
        .as_ref()
        .and_then(|s| s.room)
        .unwrap_or_default()
}

/// Soak with claims: the promotion (named or created by provisioning).
pub(in crate::worker) fn soak_activity(scenario: &Scenario) -> Option<i64> {
    scenario
        .soak_claims()
        .map(|c| c.activity.unwrap_or_default())
}

/// Soak with posts: the author client `n` follows, the next client's account (none for a
/// client alone: nobody follows themself).
pub(in crate::worker) fn followee_of(ctx: &Ctx, n: usize) -> Option<i64> {
    let soak = ctx.scenario().soak.as_ref()?;
    let clients = ctx.scenario().connect.clients;
    if soak.posts_per_sec <= 0.0 || clients < 2 {
        return None;
    }
    ctx.accounts.get((n + 1) % clients).map(|a| a.id)
}

/// The newest post id of the client's timeline: the author's posts after it are this run's.
pub(in crate::worker) async fn timeline_floor(
    ctx: &Ctx,
    client: &mut Client,
) -> Result<u64, ClientError> {
    let ok = request(ctx, client, "feed.timeline", &json!({ "limit": 1 })).await?;
    Ok(post_ids(&ok, None).first().copied().unwrap_or(0))
}

/// The ids of a timeline page's posts (newest first), of `author`'s only when given.
fn post_ids(page: &Value, author: Option<i64>) -> Vec<u64> {
    page.get("posts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|post| author.is_none_or(|a| post.get("author").and_then(Value::as_i64) == Some(a)))
        .filter_map(|post| post.get("post_id").and_then(Value::as_u64))
        .collect()
}

/// What a client does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Chat,
    Post,
    Claim,
    /// Claims of the book whose instant to go again came.
    Retry,
    /// Holds whose instant to be given back came.
    Cancel,
}

/// One client's clocks through the soak: chat, posts and claims, each at the client's share
/// of its rate, and the holds it will give back.
struct Mix {
    chat: Option<Interval>,
    posts: Option<Interval>,
    claims: Option<Interval>,
    /// Holds to give back, and when.
    cancels: Vec<(Instant, i64)>,
    cancel_share: f64,
    /// Chat messages and posts sent (their payloads' sequence numbers).
    said: u64,
    posted: u64,
}

/// A clock ticking every `1 / per_sec` seconds from a random moment of its first period after
/// `from` (so clients do not act together); none for a rate of 0.
fn every(per_sec: f64, from: Instant) -> Option<Interval> {
    (per_sec > 0.0).then(|| {
        let period = Duration::from_secs_f64(1.0 / per_sec);
        let first = from + period.mul_f64(rand::random::<f64>());
        let mut clock = tokio::time::interval_at(first, period);
        clock.set_missed_tick_behavior(MissedTickBehavior::Delay);
        clock
    })
}

async fn tick(clock: &mut Option<Interval>) {
    match clock {
        Some(clock) => {
            clock.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Mix {
    /// The clocks of one client among `clients`; claims from `claims_from` on.
    fn new(soak: &SoakSpec, clients: usize, claims_from: Instant) -> Mix {
        let now = Instant::now();
        let clients = clients.max(1) as f64;
        Mix {
            chat: every(soak.rate_per_sec, now),
            posts: every(soak.posts_per_sec / clients, now),
            claims: soak
                .claims
                .as_ref()
                .and_then(|c| every(c.per_sec / clients, claims_from)),
            cancels: Vec::new(),
            cancel_share: soak.claims.as_ref().map_or(0.0, |c| c.cancel_share),
            said: 0,
            posted: 0,
        }
    }

    /// Waits for the next thing to do (`due`: when the book's next claim goes again).
    async fn next(&mut self, due: Option<Instant>) -> Act {
        let cancel = self.cancels.iter().map(|(at, _)| *at).min();
        tokio::select! {
            _ = tick(&mut self.chat) => Act::Chat,
            _ = tick(&mut self.posts) => Act::Post,
            _ = tick(&mut self.claims) => Act::Claim,
            _ = tokio::time::sleep_until(due.unwrap_or_else(far_future)), if due.is_some() => {
                Act::Retry
            }
            _ = tokio::time::sleep_until(cancel.unwrap_or_else(far_future)), if cancel.is_some() => {
                Act::Cancel
            }
        }
    }

    /// New holds: a share of them is given back at a random moment in the first half of its
    /// life (`expires_at` on the server clock, which the load generator shares); the others
    /// are left to expire.
    fn won(&mut self, holds: Vec<(i64, i64)>) {
        let now_ms = (now_us() / 1000) as i64;
        for (claim_id, expires_at) in holds {
            if rand::random::<f64>() < self.cancel_share {
                let life = Duration::from_millis(expires_at.saturating_sub(now_ms).max(0) as u64);
                let at = Instant::now() + life.mul_f64(rand::random::<f64>() / 2.0);
                self.cancels.push((at, claim_id));
            }
        }
    }

    /// Does `act`; returns whether the socket is still usable.
    async fn act(&mut self, ctx: &Ctx, client: &mut Client, act: Act, room: i64) -> bool {
        let sent = match act {
            Act::Chat => {
                self.said += 1;
                let text = payload(now_us(), "room", self.said, 64);
                let key = format!("lt-{}-{}-{}", ctx.plan.epoch_us, client.n, self.said);
                let params = json!({ "room": room, "text": text, "client_msg_id": key });
                client.conn.send("room.send", &params).await.map(|_| 1)
            }
            Act::Post => {
                self.posted += 1;
                let text = payload(now_us(), "feed", self.posted, 64);
                client
                    .conn
                    .send("feed.post", &json!({ "text": text }))
                    .await
                    .map(|_| 1)
            }
            Act::Claim => client.claims.claim(&mut client.conn).await.map(|()| 1),
            Act::Retry => client.claims.send_due(&mut client.conn).await.map(|()| 0),
            Act::Cancel => {
                let now = Instant::now();
                let (due, later) = std::mem::take(&mut self.cancels)
                    .into_iter()
                    .partition::<Vec<_>, _>(|(at, _)| *at <= now);
                self.cancels = later;
                let mut result = Ok(0);
                for (_, claim_id) in due {
                    // Live at least until now: the instant check ends its span here.
                    let at_us = now_us();
                    result = client
                        .conn
                        .send("claim.cancel", &json!({ "claim_id": claim_id }))
                        .await
                        .map(|_| 0);
                    if result.is_err() {
                        break;
                    }
                    lock(&ctx.given_back).push(GivenBack { claim_id, at_us });
                }
                result
            }
        };
        match sent {
            Ok(n) => {
                if n > 0 {
                    ctx.rec.with(|s, bin| s.count(t::SENDS, bin, n));
                }
                true
            }
            Err(err) => {
                ctx.error(&err);
                false
            }
        }
    }
}

/// Soak: publish at a low rate (and post, and claim), drop the connection at random times and
/// come back with `room.join {since}`, catching up from the reply's `missed` (and
/// `room.history` when the absence outran the catch-up window), watching the promotion again
/// and sending the claims lost with the socket again. At the end every client is connected
/// and caught up, so the idle phase that follows collects the last messages.
pub(in crate::worker) async fn soak(ctx: &Ctx, client: &mut Client, at_us: u64) -> bool {
    let Some(soak) = ctx.scenario().soak.clone() else {
        return true;
    };
    let room = soak_room(ctx.scenario());
    let activity = soak_activity(ctx.scenario());
    let end = instant_of(at_us) + Duration::from_secs(soak.seconds);
    // The last reconnect (of a client the server dropped near the end) may take this long.
    let grace = end + Duration::from_secs(15);
    let drain = Duration::from_secs(soak.drain_seconds);
    // Claims from the promotion's start on (it opens as the clients finish connecting).
    let opens = client
        .starts_at_ms
        .map_or_else(Instant::now, |ms| instant_of(ms.max(0) as u64 * 1000));
    let mut mix = Mix::new(
        &soak,
        ctx.scenario().connect.clients,
        opens.max(Instant::now()),
    );
    loop {
        let stay = Duration::from_millis(rand::random_range(1..soak.reconnect_every_ms));
        let leave = (Instant::now() + stay).min(end);
        let leave = tokio::time::sleep_until(leave);
        tokio::pin!(leave);
        let mut open = true;
        while open {
            mix.won(client.claims.take_won());
            let due = client.claims.next_due();
            tokio::select! {
                _ = &mut leave => break,
                act = mix.next(due) => open = mix.act(ctx, client, act, room).await,
                frame = next_frame(client) => open = account(ctx, client, frame),
            }
        }
        open = settle(ctx, client, open).await;
        if open && Instant::now() >= end {
            return finish(ctx, client, drain).await;
        }
        // Churn: drop the socket (unless the server did), stay away a moment, come back.
        if open {
            let _ = tokio::time::timeout(Duration::from_secs(1), client.conn.ws.close(None)).await;
            tokio::time::sleep(Duration::from_millis(rand::random_range(50..500))).await;
        }
        if !come_back(ctx, client, room, grace).await {
            return false;
        }
        if let Some(activity) = activity
            && let Err(err) = subscribe(ctx, client, activity).await
        {
            ctx.error(&err);
        }
        if let Err(err) = client.claims.resend_lost(&mut client.conn).await {
            ctx.error(&err);
        }
        if Instant::now() >= end {
            return finish(ctx, client, drain).await;
        }
    }
}

/// Waits for every reply owed (acknowledgements count as published) and for the claims that
/// go again after a backoff, reading meanwhile; returns whether the socket is still open.
async fn settle(ctx: &Ctx, client: &mut Client, mut open: bool) -> bool {
    loop {
        open = collect_owed(ctx, client, open).await;
        let Some(due) = client.claims.next_due() else {
            return open;
        };
        if !open {
            return false;
        }
        if !read_until(ctx, client, tokio::time::sleep_until(due)).await {
            return false;
        }
        if let Err(err) = client.claims.send_due(&mut client.conn).await {
            ctx.error(&err);
            return false;
        }
    }
}

/// The end of the churn: the last replies and claims, the drain, then the timeline check.
async fn finish(ctx: &Ctx, client: &mut Client, drain: Duration) -> bool {
    let open =
        settle(ctx, client, true).await && read_until(ctx, client, tokio::time::sleep(drain)).await;
    if let Some((author, floor)) = client.follows {
        // A follower that could not read its timeline saw none of the posts.
        let tally = match open {
            true => match timeline(ctx, client, author, floor).await {
                Ok(tally) => tally,
                Err(err) => {
                    ctx.error(&err);
                    Tally::default()
                }
            },
            false => Tally::default(),
        };
        lock(&ctx.delivery).receiver(Stream::Feed(author), &tally);
    }
    open
}

/// `author`'s posts after `floor` in the client's timeline, oldest first: pages newest first
/// until one reaches `floor`.
async fn timeline(
    ctx: &Ctx,
    client: &mut Client,
    author: i64,
    floor: u64,
) -> Result<Tally, ClientError> {
    let mut newest_first = Vec::new();
    let mut before: Option<u64> = None;
    for _ in 0..MAX_TIMELINE_PAGES {
        let params = match before {
            Some(before) => json!({ "before": before, "limit": MAX_PAGE }),
            None => json!({ "limit": MAX_PAGE }),
        };
        let page = request(ctx, client, "feed.timeline", &params).await?;
        let all = post_ids(&page, None);
        newest_first.extend(
            post_ids(&page, Some(author))
                .into_iter()
                .filter(|id| *id > floor),
        );
        before = page.get("next_before").and_then(Value::as_u64);
        if all.is_empty() || all.iter().any(|id| *id <= floor) || before.is_none() {
            break;
        }
    }
    let mut tally = Tally::after(floor);
    for id in newest_first.into_iter().rev() {
        tally.see(id);
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_page_gives_its_post_ids_newest_first_by_author() {
        let page = json!({"posts": [
            {"post_id": 9, "author": 2},
            {"post_id": 7, "author": 3},
            {"post_id": 4, "author": 2},
        ], "next_before": 4});
        assert_eq!(post_ids(&page, None), vec![9, 7, 4]);
        assert_eq!(post_ids(&page, Some(2)), vec![9, 4]);
        assert!(post_ids(&json!({}), None).is_empty());
    }

    #[tokio::test]
    async fn clocks_tick_at_the_clients_share_of_the_rate() {
        assert!(every(0.0, Instant::now()).is_none());
        let clock = every(0.5, Instant::now()).expect("a clock");
        assert_eq!(clock.period(), Duration::from_secs(2));
    }
}

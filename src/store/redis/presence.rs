//! Room presence across a cluster in Redis (the `PresenceStore` port): one sorted set per room,
//! `<prefix>presence:<room>`, whose members are `<user>:<node>` scored by when they expire. A
//! node re-announces its own entries every third of [`PRESENCE_TTL`], so the entries of a node
//! that died drop out within one TTL, and readers skip expired ones.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use corral_actors::clock::now_ms;
use corral_actors::metric_catalogue as metric;
use corral_actors::ports::chat::{ChatStoreError, Online, PresenceStore};
use corral_protocol::UserId;
use corral_protocol::ops::RoomId;
use dashmap::DashMap;
use redis::aio::ConnectionManager;

/// How long an entry lives without being re-announced.
pub const PRESENCE_TTL: Duration = Duration::from_secs(30);
/// Entries re-announced in one pipeline.
const REFRESH_PIPELINE: usize = 512;

/// Presence in Redis.
pub struct RedisPresence {
    conn: ConnectionManager,
    prefix: String,
    /// This node's id in the entries it writes.
    node: u64,
    /// This node's entries, re-announced before they expire.
    local: Arc<DashMap<(RoomId, UserId), ()>>,
}

fn failed(err: redis::RedisError) -> ChatStoreError {
    metrics::counter!(metric::REDIS_ERRORS, "area" => "presence").increment(1);
    ChatStoreError::Unavailable(Box::new(err))
}

impl RedisPresence {
    /// Presence under `prefix` over `conn`; starts the re-announcing task (on the current
    /// runtime).
    pub fn start(conn: ConnectionManager, prefix: &str) -> RedisPresence {
        let presence = RedisPresence {
            conn,
            prefix: prefix.to_string(),
            node: rand::random(),
            local: Arc::default(),
        };
        let (conn, prefix, node, local) = (
            presence.conn.clone(),
            presence.prefix.clone(),
            presence.node,
            presence.local.clone(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRESENCE_TTL / 3);
            loop {
                tick.tick().await;
                let entries: Vec<(RoomId, UserId)> = local.iter().map(|e| *e.key()).collect();
                for chunk in entries.chunks(REFRESH_PIPELINE) {
                    let mut pipe = redis::pipe();
                    for &(room, user) in chunk {
                        announce(&mut pipe, &prefix, node, room, user);
                    }
                    let mut conn = conn.clone();
                    if let Err(err) = pipe.query_async::<()>(&mut conn).await {
                        failed(err);
                    }
                }
            }
        });
        presence
    }

    fn key(&self, room: RoomId) -> String {
        key(&self.prefix, room)
    }

    fn send(&self, pipe: redis::Pipeline) {
        let mut conn = self.conn.clone();
        tokio::spawn(async move {
            if let Err(err) = pipe.query_async::<()>(&mut conn).await {
                failed(err);
            }
        });
    }
}

fn key(prefix: &str, room: RoomId) -> String {
    format!("{prefix}presence:{room}")
}

/// Adds (or renews) `user`'s entry for this node; the set itself outlives its newest entry.
fn announce(pipe: &mut redis::Pipeline, prefix: &str, node: u64, room: RoomId, user: UserId) {
    let key = key(prefix, room);
    let ttl = PRESENCE_TTL.as_millis() as i64;
    pipe.cmd("ZADD")
        .arg(&key)
        .arg(now_ms() + ttl)
        .arg(format!("{user}:{node}"))
        .ignore()
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(2 * ttl)
        .ignore();
}

/// The user of an entry `<user>:<node>`.
fn user_of(member: &str) -> Option<UserId> {
    member.split_once(':')?.0.parse().ok()
}

#[async_trait]
impl PresenceStore for RedisPresence {
    fn joined(&self, room: RoomId, user: UserId) {
        self.local.insert((room, user), ());
        let mut pipe = redis::pipe();
        announce(&mut pipe, &self.prefix, self.node, room, user);
        self.send(pipe);
    }

    fn left(&self, room: RoomId, user: UserId) {
        self.local.remove(&(room, user));
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM")
            .arg(self.key(room))
            .arg(format!("{user}:{}", self.node))
            .ignore();
        self.send(pipe);
    }

    async fn online(&self, room: RoomId, limit: usize) -> Result<Online, ChatStoreError> {
        let key = self.key(room);
        let now = now_ms();
        // Twice the cap: a user with sessions on several nodes has several entries.
        let fetch = limit.saturating_mul(2).max(1);
        let mut conn = self.conn.clone();
        let (members, entries): (Vec<String>, usize) = redis::pipe()
            .cmd("ZRANGE")
            .arg(&key)
            .arg("+inf")
            .arg(now)
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(fetch)
            .cmd("ZCOUNT")
            .arg(&key)
            .arg(now)
            .arg("+inf")
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        let mut seen = HashSet::with_capacity(members.len());
        let mut users: Vec<UserId> = members
            .iter()
            .filter_map(|m| user_of(m))
            .filter(|u| seen.insert(*u))
            .collect();
        let all = members.len() >= entries;
        let count = if all { users.len() } else { entries };
        users.truncate(limit);
        Ok(Online { users, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_name_their_user() {
        assert_eq!(user_of("42:981273"), Some(42));
        assert_eq!(user_of("garbage"), None);
    }
}

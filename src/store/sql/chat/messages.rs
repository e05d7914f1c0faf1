//! The SQL `MessageStore`: room lookups, message windows and pages, DM rooms, and appends
//! through the group-commit batcher.

use std::sync::Arc;

use async_trait::async_trait;
use corral_actors::clock::now_ms;
use corral_actors::ports::chat::{Appended, ChatStoreError, MessageStore, NewMessage, RoomInfo};
use corral_protocol::UserId;
use corral_protocol::ops::{ChatMessage, RoomId};
use sqlx::Row;

use super::batcher::Batcher;
use super::rooms::RoomRepo;
use super::row::message_from_row;
use crate::config::BatchConfig;
use crate::store::{Db, StoreError};

/// Chat storage on the node's SQL database.
pub struct SqlMessageStore {
    db: Db,
    rooms: RoomRepo,
    batcher: Batcher,
}

impl SqlMessageStore {
    /// Starts the batcher (on the current runtime) and returns the store.
    pub fn start(db: Db, config: BatchConfig) -> Arc<SqlMessageStore> {
        let batcher = Batcher::start(db.clone(), config);
        let rooms = RoomRepo::new(&db);
        Arc::new(SqlMessageStore { db, rooms, batcher })
    }
}

fn unavailable(err: impl Into<StoreError>) -> ChatStoreError {
    let err = err.into();
    tracing::warn!(%err, "chat store error");
    ChatStoreError::Unavailable(Box::new(err))
}

const MESSAGE_COLUMNS: &str = "room_id, seq, user_id, text, ts, client_msg_id";

#[async_trait]
impl MessageStore for SqlMessageStore {
    async fn room(&self, room: RoomId) -> Result<Option<RoomInfo>, ChatStoreError> {
        self.rooms.room(room).await.map_err(unavailable)
    }

    async fn members(&self, room: RoomId) -> Result<Vec<UserId>, ChatStoreError> {
        let rows = sqlx::query("SELECT user_id FROM room_members WHERE room_id = $1")
            .bind(room)
            .fetch_all(&self.db.pool)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()
            .map_err(unavailable)
    }

    async fn is_member(&self, room: RoomId, user: UserId) -> Result<bool, ChatStoreError> {
        let row =
            sqlx::query("SELECT user_id FROM room_members WHERE room_id = $1 AND user_id = $2")
                .bind(room)
                .bind(user)
                .fetch_optional(&self.db.pool)
                .await
                .map_err(unavailable)?;
        Ok(row.is_some())
    }

    async fn append(&self, message: NewMessage) -> Result<Appended, ChatStoreError> {
        self.batcher.append(message, self.db.deadline).await
    }

    async fn range(
        &self,
        room: RoomId,
        after: u64,
        until: u64,
    ) -> Result<Vec<ChatMessage>, ChatStoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages \
             WHERE room_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(room)
            .bind(after as i64)
            .bind(until as i64)
            .fetch_all(&self.db.pool)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(message_from_row)
            .collect::<Result<_, _>>()
            .map_err(unavailable)
    }

    async fn page(
        &self,
        room: RoomId,
        before: u64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, ChatStoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages \
             WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(room)
            .bind(before as i64)
            .bind(i64::from(limit))
            .fetch_all(&self.db.pool)
            .await
            .map_err(unavailable)?;
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        messages.reverse();
        Ok(messages)
    }

    async fn open_dm(&self, a: UserId, b: UserId) -> Result<RoomId, ChatStoreError> {
        match self.rooms.open_dm(a, b, now_ms()).await {
            Ok(room) => Ok(room),
            Err(StoreError::NotFound) => Err(ChatStoreError::NotFound),
            Err(err) => Err(unavailable(err)),
        }
    }
}

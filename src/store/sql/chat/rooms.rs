//! Rooms: creation and membership (HTTP API), lookups, and DM rooms.

use corral_actors::ports::chat::RoomInfo;
use corral_protocol::UserId;
use corral_protocol::ops::RoomId;
use sqlx::{AnyPool, Row};

use crate::store::sql::users::{AccountRepo, UserRecord};
use crate::store::{Db, StoreError};

/// Why a member could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddMemberError {
    /// No such room, or no such user.
    #[error("no such room or user")]
    NotFound,
    /// The caller does not own the room, or it is a DM.
    #[error("only the room's owner may add members")]
    Forbidden,
    /// The room is public: anyone may join it.
    #[error("the room is public; anyone may join it")]
    Public,
    /// The room has its maximum number of members.
    #[error("the room is full")]
    Full,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AddMemberError {
    fn from(err: sqlx::Error) -> Self {
        AddMemberError::Store(err.into())
    }
}

/// Chat rooms: creation, membership, lookups, DM rooms.
#[derive(Clone)]
pub struct RoomRepo {
    pub(in crate::store) pool: AnyPool,
}

impl RoomRepo {
    /// The repository on `db`'s pool.
    pub fn new(db: &Db) -> RoomRepo {
        RoomRepo {
            pool: db.pool.clone(),
        }
    }
}

impl RoomRepo {
    /// The account `id`: only existing accounts join rooms.
    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        AccountRepo {
            pool: self.pool.clone(),
        }
        .user_by_id(id)
        .await
    }
}

impl RoomRepo {
    /// Creates a room owned by `owner` (a private room's owner is its first member).
    pub async fn create_room(
        &self,
        owner: UserId,
        name: &str,
        private: bool,
        now_ms: i64,
    ) -> Result<RoomId, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO rooms (name, private, owner_id, epoch, created_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING id",
        )
        .bind(name)
        .bind(private)
        .bind(owner)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        let room: RoomId = row.try_get(0)?;
        if private {
            sqlx::query(
                "INSERT INTO room_members (room_id, user_id, added_at) VALUES ($1, $2, $3)",
            )
            .bind(room)
            .bind(owner)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(room)
    }

    /// The room, if it exists.
    pub async fn room(&self, room: RoomId) -> Result<Option<RoomInfo>, StoreError> {
        let row = sqlx::query(
            "SELECT id, CASE WHEN private THEN 1 ELSE 0 END, \
                    CASE WHEN dm_key IS NULL THEN 0 ELSE 1 END, owner_id, epoch, last_seq \
             FROM rooms WHERE id = $1",
        )
        .bind(room)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(RoomInfo {
            id: row.try_get(0)?,
            private: row.try_get::<i64, _>(1)? != 0,
            dm: row.try_get::<i64, _>(2)? != 0,
            owner: row.try_get(3)?,
            epoch: row.try_get(4)?,
            last_seq: row.try_get::<i64, _>(5)? as u64,
        }))
    }

    /// Adds `user` to private room `room` on behalf of `by`, who must own it. Adding a member
    /// twice is harmless.
    pub async fn add_member(
        &self,
        room: RoomId,
        by: UserId,
        user: UserId,
        max_members: usize,
        now_ms: i64,
    ) -> Result<(), AddMemberError> {
        let info = self.room(room).await?.ok_or(AddMemberError::NotFound)?;
        if info.owner != by || info.dm {
            return Err(AddMemberError::Forbidden);
        }
        if !info.private {
            return Err(AddMemberError::Public);
        }
        if self.user_by_id(user).await?.is_none() {
            return Err(AddMemberError::NotFound);
        }
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM room_members WHERE room_id = $1")
            .bind(room)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        if count as usize >= max_members {
            return Err(AddMemberError::Full);
        }
        sqlx::query(
            "INSERT INTO room_members (room_id, user_id, added_at) VALUES ($1, $2, $3) \
             ON CONFLICT (room_id, user_id) DO NOTHING",
        )
        .bind(room)
        .bind(user)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The DM room of `a` and `b`, created with both as members on first use. `NotFound`
    /// when either user does not exist.
    pub async fn open_dm(&self, a: UserId, b: UserId, now_ms: i64) -> Result<RoomId, StoreError> {
        let (lo, hi) = (a.min(b), a.max(b));
        let key = format!("{lo}:{hi}");
        if let Some(room) = self.dm_room(&key).await? {
            return Ok(room);
        }
        if self.user_by_id(lo).await?.is_none() || self.user_by_id(hi).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pool.begin().await?;
        let created = sqlx::query(
            "INSERT INTO rooms (name, private, owner_id, dm_key, epoch, created_at) \
             VALUES ($1, $2, $3, $1, $4, $4) ON CONFLICT (dm_key) DO NOTHING RETURNING id",
        )
        .bind(key.as_str())
        .bind(true)
        .bind(lo)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = created {
            let room: RoomId = row.try_get(0)?;
            for user in [lo, hi] {
                sqlx::query(
                    "INSERT INTO room_members (room_id, user_id, added_at) VALUES ($1, $2, $3)",
                )
                .bind(room)
                .bind(user)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            return Ok(room);
        }
        tx.commit().await?;
        // Another request created it meanwhile.
        self.dm_room(&key).await?.ok_or(StoreError::NotFound)
    }

    async fn dm_room(&self, key: &str) -> Result<Option<RoomId>, StoreError> {
        let row = sqlx::query("SELECT id FROM rooms WHERE dm_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }
}

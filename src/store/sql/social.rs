//! The SQL adapter of the `SocialStore` port: follows, posts, likes, comments, animal follows
//! and the feed's audience queries, one query text for SQLite and PostgreSQL.
//!
//! Like and comment counters live on the post row and change in the same transaction as the
//! like/comment row; each transaction starts with its write so SQLite takes the write lock
//! up front (no read-to-write upgrade that could fail under concurrency).

use async_trait::async_trait;
use corral_actors::ports::{
    CommentAdded, FollowCounts, LikeChange, NewPost, SocialError, SocialStore, UserPage,
};
use corral_protocol::ops::{AnimalId, Comment, Post, PostId};
use corral_protocol::{EpochMs, UserId};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::users::{AccountRepo, UserRecord};
use super::{Db, StoreError};

const POST_COLUMNS: &str =
    "SELECT id, author_id, text, media, animal_id, likes, comments, created_at FROM posts";

impl From<StoreError> for SocialError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => SocialError::NotFound,
            other => SocialError::Storage(Box::new(other)),
        }
    }
}

fn sql(err: sqlx::Error) -> SocialError {
    StoreError::from(err).into()
}

/// Keyset cursors: "strictly below `before`", everything when absent.
fn below(before: Option<i64>) -> i64 {
    before.unwrap_or(i64::MAX)
}

fn post_from_row(row: &AnyRow) -> Result<Post, SocialError> {
    let media: String = row.try_get("media").map_err(sql)?;
    Ok(Post {
        post_id: row.try_get("id").map_err(sql)?,
        author: row.try_get("author_id").map_err(sql)?,
        text: row.try_get("text").map_err(sql)?,
        media: serde_json::from_str(&media).unwrap_or_default(),
        animal: row.try_get("animal_id").map_err(sql)?,
        likes: row.try_get::<i64, _>("likes").map_err(sql)?.max(0) as u64,
        comments: row.try_get::<i64, _>("comments").map_err(sql)?.max(0) as u64,
        created_at: row.try_get("created_at").map_err(sql)?,
    })
}

fn ids(rows: &[AnyRow]) -> Result<Vec<i64>, SocialError> {
    rows.iter()
        .map(|r| r.try_get::<i64, _>(0).map_err(sql))
        .collect()
}

fn user_page(users: Vec<UserId>, limit: u32) -> UserPage {
    let next_before = if users.len() == limit as usize {
        users.last().copied()
    } else {
        None
    };
    UserPage { users, next_before }
}

/// `$first, $first+1, ...` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Follows, posts, likes, comments: the `SocialStore` port on SQL.
#[derive(Clone)]
pub struct SocialRepo {
    pub(in crate::store) pool: AnyPool,
}

impl SocialRepo {
    /// The repository on `db`'s pool.
    pub fn new(db: &Db) -> SocialRepo {
        SocialRepo {
            pool: db.pool.clone(),
        }
    }
}

impl SocialRepo {
    /// The account `id`: a follow needs its followee to exist.
    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        AccountRepo {
            pool: self.pool.clone(),
        }
        .user_by_id(id)
        .await
    }

    async fn user_ids(
        &self,
        query: &'static str,
        user: UserId,
        before: Option<UserId>,
        limit: u32,
    ) -> Result<UserPage, SocialError> {
        let rows = sqlx::query(query)
            .bind(user)
            .bind(below(before))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(sql)?;
        Ok(user_page(ids(&rows)?, limit))
    }

    async fn posts(
        &self,
        query: &'static str,
        key: i64,
        before: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<Post>, SocialError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{POST_COLUMNS} {query}")))
            .bind(key)
            .bind(below(before))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(sql)?;
        rows.iter().map(post_from_row).collect()
    }

    /// The post's author, when the post is live.
    async fn live_post_author(&self, post: PostId) -> Result<Option<UserId>, SocialError> {
        let row = sqlx::query("SELECT author_id FROM posts WHERE id = $1 AND deleted_at IS NULL")
            .bind(post)
            .fetch_optional(&self.pool)
            .await
            .map_err(sql)?;
        row.map(|r| r.try_get::<i64, _>(0).map_err(sql)).transpose()
    }
}

fn counter(row: &AnyRow) -> Result<(UserId, u64), SocialError> {
    Ok((
        row.try_get::<i64, _>(0).map_err(sql)?,
        row.try_get::<i64, _>(1).map_err(sql)?.max(0) as u64,
    ))
}

#[async_trait]
impl SocialStore for SocialRepo {
    async fn follow(
        &self,
        follower: UserId,
        followee: UserId,
        now: EpochMs,
    ) -> Result<bool, SocialError> {
        if follower == followee {
            return Err(SocialError::Invalid("you cannot follow yourself".into()));
        }
        let done = sqlx::query(
            "INSERT INTO follows (follower_id, followee_id, created_at) \
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(follower)
        .bind(followee)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(sql)?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        match self.user_by_id(followee).await? {
            Some(_) => Ok(false),
            None => Err(SocialError::NotFound),
        }
    }

    async fn unfollow(&self, follower: UserId, followee: UserId) -> Result<bool, SocialError> {
        let done = sqlx::query("DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2")
            .bind(follower)
            .bind(followee)
            .execute(&self.pool)
            .await
            .map_err(sql)?;
        Ok(done.rows_affected() > 0)
    }

    async fn follow_counts(&self, user: UserId) -> Result<FollowCounts, SocialError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM follows WHERE followee_id = $1), \
                    (SELECT COUNT(*) FROM follows WHERE follower_id = $1) \
             FROM users WHERE id = $1",
        )
        .bind(user)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql)?
        .ok_or(SocialError::NotFound)?;
        Ok(FollowCounts {
            followers: row.try_get::<i64, _>(0).map_err(sql)?.max(0) as u64,
            following: row.try_get::<i64, _>(1).map_err(sql)?.max(0) as u64,
        })
    }

    async fn followers(
        &self,
        user: UserId,
        before: Option<UserId>,
        limit: u32,
    ) -> Result<UserPage, SocialError> {
        self.user_ids(
            "SELECT follower_id FROM follows WHERE followee_id = $1 AND follower_id < $2 \
             ORDER BY follower_id DESC LIMIT $3",
            user,
            before,
            limit,
        )
        .await
    }

    async fn following(
        &self,
        user: UserId,
        before: Option<UserId>,
        limit: u32,
    ) -> Result<UserPage, SocialError> {
        self.user_ids(
            "SELECT followee_id FROM follows WHERE follower_id = $1 AND followee_id < $2 \
             ORDER BY followee_id DESC LIMIT $3",
            user,
            before,
            limit,
        )
        .await
    }

    async fn follow_animal(
        &self,
        user: UserId,
        animal: AnimalId,
        now: EpochMs,
    ) -> Result<bool, SocialError> {
        let done = sqlx::query(
            "INSERT INTO animal_follows (user_id, animal_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(user)
        .bind(animal)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(sql)?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_post(&self, post: NewPost) -> Result<Post, SocialError> {
        if let Some(animal) = post.animal {
            // Animals never change hands, so checking before the insert is enough.
            let owner: Option<i64> =
                sqlx::query_scalar("SELECT merchant_id FROM animals WHERE id = $1")
                    .bind(animal)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(sql)?;
            match owner {
                None => return Err(SocialError::NotFound),
                Some(owner) if owner != post.author => return Err(SocialError::Forbidden),
                Some(_) => {}
            }
        }
        let media = serde_json::to_string(&post.media).unwrap_or_else(|_| "[]".into());
        let row = sqlx::query(
            "INSERT INTO posts (author_id, text, media, animal_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(post.author)
        .bind(&post.text)
        .bind(media)
        .bind(post.animal)
        .bind(post.created_at)
        .fetch_one(&self.pool)
        .await
        .map_err(sql)?;
        Ok(Post {
            post_id: row.try_get(0).map_err(sql)?,
            author: post.author,
            text: post.text,
            media: post.media,
            animal: post.animal,
            likes: 0,
            comments: 0,
            created_at: post.created_at,
        })
    }

    async fn post(&self, post: PostId) -> Result<Post, SocialError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{POST_COLUMNS} WHERE id = $1 AND deleted_at IS NULL"
        )))
        .bind(post)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql)?
        .ok_or(SocialError::NotFound)?;
        post_from_row(&row)
    }

    async fn delete_post(
        &self,
        post: PostId,
        by: UserId,
        now: EpochMs,
    ) -> Result<Post, SocialError> {
        let row = sqlx::query(
            "UPDATE posts SET deleted_at = $3 \
             WHERE id = $1 AND author_id = $2 AND deleted_at IS NULL \
             RETURNING id, author_id, text, media, animal_id, likes, comments, created_at",
        )
        .bind(post)
        .bind(by)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql)?;
        match row {
            Some(row) => post_from_row(&row),
            None => match self.live_post_author(post).await? {
                Some(_) => Err(SocialError::Forbidden),
                None => Err(SocialError::NotFound),
            },
        }
    }

    async fn timeline(
        &self,
        user: UserId,
        before: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<Post>, SocialError> {
        self.posts(
            "WHERE deleted_at IS NULL AND id < $2 AND (author_id = $1 \
               OR author_id IN (SELECT followee_id FROM follows WHERE follower_id = $1) \
               OR animal_id IN (SELECT animal_id FROM animal_follows WHERE user_id = $1)) \
             ORDER BY id DESC LIMIT $3",
            user,
            before,
            limit,
        )
        .await
    }

    async fn profile(
        &self,
        author: UserId,
        before: Option<PostId>,
        limit: u32,
    ) -> Result<Vec<Post>, SocialError> {
        self.posts(
            "WHERE author_id = $1 AND deleted_at IS NULL AND id < $2 ORDER BY id DESC LIMIT $3",
            author,
            before,
            limit,
        )
        .await
    }

    async fn like(
        &self,
        user: UserId,
        post: PostId,
        now: EpochMs,
    ) -> Result<LikeChange, SocialError> {
        let mut tx = self.pool.begin().await.map_err(sql)?;
        let inserted = sqlx::query(
            "INSERT INTO post_likes (post_id, user_id, created_at) SELECT $1, $2, $3 \
             WHERE EXISTS (SELECT 1 FROM posts WHERE id = $1 AND deleted_at IS NULL) \
             ON CONFLICT DO NOTHING",
        )
        .bind(post)
        .bind(user)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(sql)?
        .rows_affected()
            == 1;
        settle_likes(
            tx,
            post,
            inserted,
            "UPDATE posts SET likes = likes + 1 WHERE id = $1 RETURNING author_id, likes",
        )
        .await
    }

    async fn unlike(&self, user: UserId, post: PostId) -> Result<LikeChange, SocialError> {
        let mut tx = self.pool.begin().await.map_err(sql)?;
        let removed = sqlx::query("DELETE FROM post_likes WHERE post_id = $1 AND user_id = $2")
            .bind(post)
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(sql)?
            .rows_affected()
            == 1;
        settle_likes(
            tx,
            post,
            removed,
            "UPDATE posts SET likes = likes - 1 WHERE id = $1 RETURNING author_id, likes",
        )
        .await
    }

    async fn comment(
        &self,
        user: UserId,
        post: PostId,
        text: &str,
        now: EpochMs,
    ) -> Result<CommentAdded, SocialError> {
        let mut tx = self.pool.begin().await.map_err(sql)?;
        let row = sqlx::query(
            "INSERT INTO post_comments (post_id, author_id, text, created_at) \
             SELECT $1, $2, $3, $4 \
             WHERE EXISTS (SELECT 1 FROM posts WHERE id = $1 AND deleted_at IS NULL) \
             RETURNING id",
        )
        .bind(post)
        .bind(user)
        .bind(text)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql)?
        .ok_or(SocialError::NotFound)?;
        let comment_id: i64 = row.try_get(0).map_err(sql)?;
        let row = sqlx::query(
            "UPDATE posts SET comments = comments + 1 WHERE id = $1 RETURNING author_id, comments",
        )
        .bind(post)
        .fetch_one(&mut *tx)
        .await
        .map_err(sql)?;
        let (author, comments) = counter(&row)?;
        tx.commit().await.map_err(sql)?;
        Ok(CommentAdded {
            author,
            comment_id,
            comments,
        })
    }

    async fn comments(
        &self,
        post: PostId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Comment>, SocialError> {
        let rows = sqlx::query(
            "SELECT id, post_id, author_id, text, created_at FROM post_comments \
             WHERE post_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(post)
        .bind(below(before))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(sql)?;
        rows.iter()
            .map(|row| {
                Ok(Comment {
                    comment_id: row.try_get("id").map_err(sql)?,
                    post: row.try_get("post_id").map_err(sql)?,
                    author: row.try_get("author_id").map_err(sql)?,
                    text: row.try_get("text").map_err(sql)?,
                    created_at: row.try_get("created_at").map_err(sql)?,
                })
            })
            .collect()
    }

    async fn audience_size(
        &self,
        author: UserId,
        animal: Option<AnimalId>,
    ) -> Result<u64, SocialError> {
        let row = match animal {
            None => sqlx::query("SELECT COUNT(*) FROM follows WHERE followee_id = $1").bind(author),
            Some(animal) => sqlx::query(
                "SELECT (SELECT COUNT(*) FROM follows WHERE followee_id = $1) \
                      + (SELECT COUNT(*) FROM animal_follows WHERE animal_id = $2)",
            )
            .bind(author)
            .bind(animal),
        }
        .fetch_one(&self.pool)
        .await
        .map_err(sql)?;
        Ok(row.try_get::<i64, _>(0).map_err(sql)?.max(0) as u64)
    }

    async fn audience_page(
        &self,
        author: UserId,
        animal: Option<AnimalId>,
        after: UserId,
        limit: u32,
    ) -> Result<Vec<UserId>, SocialError> {
        let query = match animal {
            None => sqlx::query(
                "SELECT follower_id FROM follows WHERE followee_id = $1 AND follower_id > $2 \
                 ORDER BY follower_id LIMIT $3",
            ),
            Some(_) => sqlx::query(
                "SELECT u FROM (SELECT follower_id AS u FROM follows WHERE followee_id = $1 \
                   UNION SELECT user_id AS u FROM animal_follows WHERE animal_id = $4) t \
                 WHERE u > $2 ORDER BY u LIMIT $3",
            ),
        }
        .bind(author)
        .bind(after)
        .bind(i64::from(limit));
        let query = match animal {
            Some(animal) => query.bind(animal),
            None => query,
        };
        ids(&query.fetch_all(&self.pool).await.map_err(sql)?)
    }

    async fn audience_among(
        &self,
        author: UserId,
        animal: Option<AnimalId>,
        candidates: &[UserId],
    ) -> Result<Vec<UserId>, SocialError> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let (text, animal) = match animal {
            None => (
                format!(
                    "SELECT follower_id FROM follows WHERE followee_id = $1 \
                     AND follower_id IN ({})",
                    placeholders(2, candidates.len())
                ),
                None,
            ),
            Some(animal) => {
                let list = placeholders(3, candidates.len());
                (
                    format!(
                        "SELECT follower_id FROM follows WHERE followee_id = $1 \
                           AND follower_id IN ({list}) \
                         UNION SELECT user_id FROM animal_follows WHERE animal_id = $2 \
                           AND user_id IN ({list})"
                    ),
                    Some(animal),
                )
            }
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(text)).bind(author);
        if let Some(animal) = animal {
            query = query.bind(animal);
        }
        for user in candidates {
            query = query.bind(*user);
        }
        ids(&query.fetch_all(&self.pool).await.map_err(sql)?)
    }
}

/// Ends a like or unlike: moves the post's counter with `update` when the like row `changed`
/// (else just reads it), in the same transaction, and commits. `NotFound` for a missing or
/// deleted post.
async fn settle_likes(
    mut tx: sqlx::Transaction<'static, sqlx::Any>,
    post: PostId,
    changed: bool,
    update: &'static str,
) -> Result<LikeChange, SocialError> {
    let query = if changed {
        update
    } else {
        "SELECT author_id, likes FROM posts WHERE id = $1 AND deleted_at IS NULL"
    };
    let row = sqlx::query(query)
        .bind(post)
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql)?
        .ok_or(SocialError::NotFound)?;
    let (author, likes) = counter(&row)?;
    tx.commit().await.map_err(sql)?;
    Ok(LikeChange {
        author,
        likes,
        changed,
    })
}

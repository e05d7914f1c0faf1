//! Accounts: creating users, finding them for login, changing roles, and the standings
//! (role, token version, disabled) every node keeps in memory to check tokens.

use std::collections::HashMap;

use corral_actors::Standing;
use corral_protocol::{Role, UserId};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use super::promotions::Audit;

/// Accounts written per `INSERT` statement when seeding: 5 binds a row stays far below both
/// engines' parameter limits, and one statement per batch keeps 50,000 accounts to a few round
/// trips.
const ROWS_PER_INSERT: usize = 1000;
use super::{Db, StoreError};

/// A stored account.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// Its id.
    pub id: UserId,
    /// Its unique name.
    pub username: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// Its role.
    pub role: Role,
    /// Raised when its tokens must stop working.
    pub token_version: i64,
    /// A disabled account cannot log in and its tokens are refused.
    pub disabled: bool,
}

impl UserRecord {
    /// What its tokens are checked against.
    pub fn standing(&self) -> Standing {
        Standing {
            role: self.role,
            version: self.token_version,
            disabled: self.disabled,
        }
    }
}

/// The columns [`user_from_row`] reads (booleans as integers: both engines decode those).
const USER_COLUMNS: &str = "id, username, password_hash, role, token_version, \
     CASE WHEN disabled THEN 1 ELSE 0 END AS disabled";

/// Accounts: users, their roles and standings.
#[derive(Clone)]
pub struct AccountRepo {
    pub(in crate::store) pool: AnyPool,
}

impl AccountRepo {
    /// The repository on `db`'s pool.
    pub fn new(db: &Db) -> AccountRepo {
        AccountRepo {
            pool: db.pool.clone(),
        }
    }
}

/// Characters of invite codes: lower-case letters and digits, without the look-alikes
/// `0`, `o`, `1`, `l` (codes are read aloud and typed from screenshots).
const INVITE_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
/// Length of an invite code (32^10 codes: a guess hits one in 10^15 tries per account).
const INVITE_LEN: usize = 10;

/// A fresh random invite code.
pub fn new_invite_code() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..INVITE_LEN)
        .map(|_| char::from(INVITE_ALPHABET[rng.random_range(0..INVITE_ALPHABET.len())]))
        .collect()
}

/// Why a registration with an invite code was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// No account has this invite code.
    #[error("no account has this invite code")]
    UnknownInvite,
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AccountRepo {
    /// Creates an account (with an invite code of its own); `Conflict` when the name is taken.
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        now_ms: i64,
    ) -> Result<UserId, StoreError> {
        let row = sqlx::query(
            "INSERT INTO users (username, password_hash, role, created_at, invite_code) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(username)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now_ms)
        .bind(new_invite_code())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    /// Registers a user, credited to the owner of `invite_code` when one is given (in one
    /// transaction: the inviter exists before the new account, so no one invites themselves
    /// and invitations never loop). Returns the new id and the inviter's.
    pub async fn register_user(
        &self,
        username: &str,
        password_hash: &str,
        invite_code: Option<&str>,
        now_ms: i64,
    ) -> Result<(UserId, Option<UserId>), RegisterError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let inviter = match invite_code {
            None => None,
            Some(code) => Some(
                sqlx::query("SELECT id FROM users WHERE invite_code = $1")
                    .bind(code.trim().to_ascii_lowercase())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::from)?
                    .ok_or(RegisterError::UnknownInvite)?
                    .try_get::<i64, _>(0)
                    .map_err(StoreError::from)?,
            ),
        };
        let row = sqlx::query(
            "INSERT INTO users (username, password_hash, role, created_at, invite_code, invited_by) \
             VALUES ($1, $2, 'user', $3, $4, $5) RETURNING id",
        )
        .bind(username)
        .bind(password_hash)
        .bind(now_ms)
        .bind(new_invite_code())
        .bind(inviter)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let id = row.try_get::<i64, _>(0).map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok((id, inviter))
    }

    /// The invite code of `user`, giving it one if it has none yet (accounts made before
    /// invitations existed got theirs from the migration; this is the backstop).
    pub async fn invite_code(&self, user: UserId) -> Result<String, StoreError> {
        let code: Option<String> = sqlx::query("SELECT invite_code FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?
            .try_get(0)?;
        if let Some(code) = code {
            return Ok(code);
        }
        let fresh = new_invite_code();
        sqlx::query("UPDATE users SET invite_code = $1 WHERE id = $2 AND invite_code IS NULL")
            .bind(&fresh)
            .bind(user)
            .execute(&self.pool)
            .await?;
        let code: Option<String> = sqlx::query("SELECT invite_code FROM users WHERE id = $1")
            .bind(user)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        code.ok_or(StoreError::NotFound)
    }

    /// Finds an account by name, whatever its case.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE lower(username) = lower($1)"
        )))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| user_from_row(&row)).transpose()
    }

    /// Finds an account by id.
    pub async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| user_from_row(&row)).transpose()
    }

    /// Changes an account's role.
    pub async fn set_role(&self, id: UserId, role: Role) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

/// Ends an account change: the row its `UPDATE ... RETURNING` gave (none: no such account),
/// the audit entry `audit` makes of the changed account, and the commit, in one transaction.
async fn audited(
    mut tx: Transaction<'static, Any>,
    row: Option<AnyRow>,
    audit: impl FnOnce(&UserRecord) -> Audit<'static>,
) -> Result<UserRecord, StoreError> {
    let user = row
        .map(|row| user_from_row(&row))
        .transpose()?
        .ok_or(StoreError::NotFound)?;
    audit(&user).write(&mut tx).await?;
    tx.commit().await?;
    Ok(user)
}

impl AccountRepo {
    /// Changes an account's role and/or disabled flag and raises its token version, so every
    /// token issued before stops working; returns the account as it now is.
    /// `admin` made the change; it is written to the audit log in the same transaction.
    pub async fn change_standing(
        &self,
        admin: UserId,
        id: UserId,
        role: Option<Role>,
        disabled: Option<bool>,
        now: i64,
    ) -> Result<UserRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE users SET role = COALESCE($1, role), disabled = COALESCE($2, disabled), \
             token_version = token_version + 1 WHERE id = $3 RETURNING {USER_COLUMNS}"
        )))
        .bind(role.map(Role::as_str))
        .bind(disabled)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        audited(tx, row, |user| Audit {
            actor_id: admin,
            action: "user.standing",
            subject: format!("user:{id}"),
            detail: serde_json::json!({
                "role": user.role,
                "disabled": user.disabled,
                "token_version": user.token_version,
            }),
            at: now,
        })
        .await
    }

    /// Replaces an account's password hash and raises its token version (whoever had the old
    /// password may hold its tokens too, so they stop working); `actor` is written to the
    /// audit log in the same transaction. Returns the account as it now is.
    pub async fn reset_password(
        &self,
        actor: UserId,
        id: UserId,
        password_hash: &str,
        now: i64,
    ) -> Result<UserRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE users SET password_hash = $1, token_version = token_version + 1 \
             WHERE id = $2 RETURNING {USER_COLUMNS}"
        )))
        .bind(password_hash)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        audited(tx, row, |user| Audit {
            actor_id: actor,
            action: "user.password_reset",
            subject: format!("user:{id}"),
            detail: serde_json::json!({"token_version": user.token_version}),
            at: now,
        })
        .await
    }

    /// The standing of every account that differs from a fresh one (role `user`, version 0,
    /// enabled): merchants, admins, disabled and changed accounts.
    pub async fn standings(&self) -> Result<Vec<(UserId, Standing)>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users \
             WHERE role <> 'user' OR disabled OR token_version > 0"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| user_from_row(row).map(|u| (u.id, u.standing())))
            .collect()
    }
}

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<UserRecord, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(UserRecord {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        role: Role::parse(&role).unwrap_or(Role::User),
        token_version: row.try_get("token_version")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
    })
}

impl AccountRepo {
    /// Creates (or reuses, when the names exist) an account for each of `names`, all with the
    /// password hash `hash` and `role`, in one transaction (`corral admin seed-users`); returns
    /// each name's id and stored role (a reused account keeps its own).
    pub async fn seed(
        &self,
        names: &[String],
        hash: &str,
        role: Role,
        now: i64,
    ) -> Result<HashMap<String, (UserId, Role)>, StoreError> {
        let mut ids: HashMap<String, (UserId, Role)> = HashMap::with_capacity(names.len());
        let mut tx = self.pool.begin().await?;
        for chunk in names.chunks(ROWS_PER_INSERT) {
            let mut sql = String::from(
                "INSERT INTO users (username, password_hash, role, created_at, invite_code) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                let b = i * 5;
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5
                ));
            }
            // The no-op update makes `RETURNING` yield existing rows too, on both engines, so a
            // re-run reuses the accounts (keeping their passwords and roles) instead of failing.
            sql.push_str(
                " ON CONFLICT (username) DO UPDATE SET username = excluded.username \
                 RETURNING id, username, role",
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for name in chunk {
                query = query
                    .bind(name.as_str())
                    .bind(hash)
                    .bind(role.as_str())
                    .bind(now)
                    .bind(new_invite_code());
            }
            for row in query.fetch_all(&mut *tx).await? {
                let id: i64 = row.try_get(0)?;
                let name: String = row.try_get(1)?;
                let stored: String = row.try_get(2)?;
                ids.insert(name, (id, Role::parse(&stored).unwrap_or(Role::User)));
            }
        }
        tx.commit().await?;
        Ok(ids)
    }
}

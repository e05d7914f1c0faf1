//! Read-only listings the user app and the merchant console browse: promotions by state and
//! merchant, public rooms, the private rooms and DMs of a user, a user's claims, and merchant
//! accounts. Every list is a keyset page on the row id, newest first (`before` = the last id
//! of the previous page).

use std::collections::HashMap;

use corral_actors::ActivityRecord;
use corral_protocol::ops::RoomId;
use corral_protocol::{EpochMs, UserId};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::store::sql::promotions::{
    MERCHANT_COLUMNS, MerchantRecord, item_of, merchant_of, record_of,
};
use crate::store::{Db, StoreError};

/// Which promotions a listing keeps, judged on the server clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityFilter {
    /// Every promotion.
    All,
    /// Not cancelled and not started yet.
    Upcoming,
    /// Not cancelled, started and not ended.
    Live,
    /// Ended or cancelled.
    Ended,
}

impl ActivityFilter {
    /// The SQL condition (`$1` = now).
    fn condition(self) -> &'static str {
        match self {
            ActivityFilter::All => "$1 = $1",
            ActivityFilter::Upcoming => "a.status <> 'cancelled' AND a.starts_at > $1",
            ActivityFilter::Live => {
                "a.status <> 'cancelled' AND a.starts_at <= $1 AND a.ends_at > $1"
            }
            ActivityFilter::Ended => "(a.status = 'cancelled' OR a.ends_at <= $1)",
        }
    }
}

/// The animal behind one item of a listed promotion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedAnimal {
    /// Its name.
    pub name: String,
    /// Its species.
    pub species: String,
    /// Its price.
    pub price_cents: i64,
}

/// One promotion of a listing.
#[derive(Debug, Clone)]
pub struct ListedActivity {
    /// The promotion with its items.
    pub record: ActivityRecord,
    /// The running merchant's shop or farm name.
    pub merchant_name: String,
    /// The animal of each item, in the order of `record.items`.
    pub animals: Vec<ListedAnimal>,
}

/// One room of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRoom {
    /// Its id.
    pub room_id: RoomId,
    /// Its name (for a DM room, the `lo:hi` user-id pair).
    pub name: String,
    /// Who created it.
    pub owner_id: UserId,
    /// Whether only members may use it.
    pub private: bool,
    /// For a DM room, the other member.
    pub dm_with: Option<UserId>,
    /// The newest message's seq.
    pub last_seq: i64,
    /// When it was created.
    pub created_at: EpochMs,
}

/// One claim of a user's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedClaim {
    /// Its id.
    pub claim_id: i64,
    /// The promotion.
    pub activity_id: i64,
    /// The promotion's title.
    pub title: String,
    /// The item held.
    pub item_id: i64,
    /// The item's animal.
    pub animal_id: i64,
    /// The animal's name.
    pub animal_name: String,
    /// `held`, `confirmed`, `expired`, `cancelled` or `refund_due`.
    pub status: String,
    /// When a hold lapses.
    pub expires_at: EpochMs,
    /// When it was taken.
    pub created_at: EpochMs,
    /// A coupon promotion's code, while the claim is held or confirmed.
    pub coupon_code: Option<String>,
}

/// Keyset cursor: strictly below `before`, everything when absent.
fn below(before: Option<i64>) -> i64 {
    before.unwrap_or(i64::MAX)
}

fn listed_room(row: &AnyRow, viewer: UserId) -> Result<ListedRoom, StoreError> {
    let dm_key: Option<String> = row.try_get("dm_key")?;
    let dm_with = dm_key.as_deref().and_then(|key| {
        key.split(':')
            .filter_map(|id| id.parse::<UserId>().ok())
            .find(|id| *id != viewer)
    });
    Ok(ListedRoom {
        room_id: row.try_get("id")?,
        name: row.try_get("name")?,
        owner_id: row.try_get("owner_id")?,
        private: row.try_get::<i64, _>("private")? != 0,
        dm_with,
        last_seq: row.try_get("last_seq")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Room columns, with `private` as 0/1 on both engines.
const ROOM_COLUMNS: &str = "r.id, r.name, r.owner_id, r.dm_key, r.last_seq, r.created_at, \
     CASE WHEN r.private THEN 1 ELSE 0 END AS private";

/// The paged lists of the HTTP API: activities, rooms, a user's claims, merchants.
#[derive(Clone)]
pub struct ListingRepo {
    pub(in crate::store) pool: AnyPool,
}

impl ListingRepo {
    /// The repository on `db`'s pool.
    pub fn new(db: &Db) -> ListingRepo {
        ListingRepo {
            pool: db.pool.clone(),
        }
    }
}

impl ListingRepo {
    /// A page of promotions kept by `filter`, of `merchant` only when given, newest first.
    pub async fn list_activities(
        &self,
        filter: ActivityFilter,
        merchant: Option<UserId>,
        before: Option<i64>,
        limit: i64,
        now: EpochMs,
    ) -> Result<Vec<ListedActivity>, StoreError> {
        let sql = format!(
            "SELECT a.id, a.merchant_id, a.title, a.starts_at, a.ends_at, a.per_user_limit, \
             a.hold_seconds, a.status, a.rules, COALESCE(m.name, '') AS merchant_name, \
             (SELECT COUNT(*) FROM coupon_codes k WHERE k.activity_id = a.id) AS coupon_codes \
             FROM activities a LEFT JOIN merchants m ON m.user_id = a.merchant_id \
             WHERE {} AND ($2 = 0 OR a.merchant_id = $2) AND a.id < $3 \
             ORDER BY a.id DESC LIMIT $4",
            filter.condition()
        );
        // `condition()` is one of four constant strings: no input reaches the SQL text.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(merchant.unwrap_or(0))
            .bind(below(before))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut codes = Vec::with_capacity(rows.len());
        let mut listed = rows
            .iter()
            .map(|row| {
                codes.push(row.try_get::<i64, _>("coupon_codes")?);
                Ok(ListedActivity {
                    record: record_of(row, Vec::new())?,
                    merchant_name: row.try_get("merchant_name")?,
                    animals: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let (Some(first), Some(last)) = (listed.first(), listed.last()) else {
            return Ok(listed);
        };
        // One query for the items of the whole page: the page's ids span [last, first].
        let items = sqlx::query(
            "SELECT i.activity_id, i.id, i.animal_id, i.slots, n.name, n.species, n.price_cents \
             FROM activity_items i JOIN animals n ON n.id = i.animal_id \
             WHERE i.activity_id >= $1 AND i.activity_id <= $2 ORDER BY i.id",
        )
        .bind(last.record.id)
        .bind(first.record.id)
        .fetch_all(&self.pool)
        .await?;
        let position: HashMap<i64, usize> = listed
            .iter()
            .enumerate()
            .map(|(i, a)| (a.record.id, i))
            .collect();
        for item in &items {
            let activity: i64 = item.try_get("activity_id")?;
            let Some(&at) = position.get(&activity) else {
                continue;
            };
            let entry = &mut listed[at];
            entry.record.items.push(item_of(item)?);
            entry.animals.push(ListedAnimal {
                name: item.try_get("name")?,
                species: item.try_get("species")?,
                price_cents: item.try_get("price_cents")?,
            });
        }
        // As the catalogue loads it: a coupon promotion offers no more slots than codes.
        for (entry, codes) in listed.iter_mut().zip(codes) {
            if entry.record.gives_coupons() {
                entry.record.cap_slots(codes);
            }
        }
        Ok(listed)
    }

    /// A page of public rooms, newest first.
    pub async fn public_rooms(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ListedRoom>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ROOM_COLUMNS} FROM rooms r \
             WHERE r.private = $1 AND r.dm_key IS NULL AND r.id < $2 ORDER BY r.id DESC LIMIT $3"
        )))
        .bind(false)
        .bind(below(before))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| listed_room(row, 0)).collect()
    }

    /// A page of the private rooms and DM rooms `user` owns or belongs to, newest first.
    pub async fn rooms_of(
        &self,
        user: UserId,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ListedRoom>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ROOM_COLUMNS} FROM rooms r \
             WHERE r.private = $1 AND r.id < $3 AND (r.owner_id = $2 OR EXISTS \
             (SELECT 1 FROM room_members rm WHERE rm.room_id = r.id AND rm.user_id = $2)) \
             ORDER BY r.id DESC LIMIT $4"
        )))
        .bind(true)
        .bind(user)
        .bind(below(before))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| listed_room(row, user)).collect()
    }

    /// A page of `user`'s claims with their promotion and animal, newest first.
    pub async fn claims_of_user(
        &self,
        user: UserId,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ListedClaim>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.id, c.activity_id, a.title, c.item_id, i.animal_id, n.name AS animal_name, \
             c.status, c.expires_at, c.created_at, \
             (SELECT k.code FROM coupon_codes k WHERE k.claim_id = c.id) AS coupon_code \
             FROM claims c JOIN activities a ON a.id = c.activity_id \
             JOIN activity_items i ON i.id = c.item_id JOIN animals n ON n.id = i.animal_id \
             WHERE c.user_id = $1 AND c.id < $2 ORDER BY c.id DESC LIMIT $3",
        )
        .bind(user)
        .bind(below(before))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ListedClaim {
                    claim_id: row.try_get("id")?,
                    activity_id: row.try_get("activity_id")?,
                    title: row.try_get("title")?,
                    item_id: row.try_get("item_id")?,
                    animal_id: row.try_get("animal_id")?,
                    animal_name: row.try_get("animal_name")?,
                    status: row.try_get("status")?,
                    expires_at: row.try_get("expires_at")?,
                    created_at: row.try_get("created_at")?,
                    coupon_code: row.try_get("coupon_code")?,
                })
            })
            .collect()
    }

    /// A page of merchant accounts, approved or waiting for approval, newest first.
    pub async fn list_merchants(
        &self,
        approved: bool,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<MerchantRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MERCHANT_COLUMNS} FROM merchants \
             WHERE approved = $1 AND user_id < $2 ORDER BY user_id DESC LIMIT $3"
        )))
        .bind(approved)
        .bind(below(before))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(merchant_of).collect()
    }
}

//! Animals: a merchant's catalogue. Retiring keeps the row (activities and claims refer to it).

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::Audit;
use crate::store::{Db, StoreError};

/// The writable fields of an animal (validated by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnimalInput {
    /// Its name.
    pub name: String,
    /// Its species.
    pub species: String,
    /// Free text.
    pub description: String,
    /// http(s) image URLs.
    pub image_urls: Vec<String>,
    /// Price of a claim, in cents.
    pub price_cents: i64,
    /// How many claims it can take.
    pub slots: i64,
}

/// A stored animal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnimalRecord {
    /// Its id.
    pub id: i64,
    /// Its merchant.
    pub merchant_id: i64,
    /// Its fields.
    pub input: AnimalInput,
    /// Whether it was retired.
    pub retired: bool,
    /// When created (epoch ms).
    pub created_at: i64,
    /// When last changed (epoch ms).
    pub updated_at: i64,
}

/// The columns [`animal_from_row`] reads (a macro, so queries stay literal strings).
macro_rules! columns {
    () => {
        "id, merchant_id, name, species, description, image_urls, price_cents, slots, \
         CASE WHEN retired THEN 1 ELSE 0 END AS retired, created_at, updated_at"
    };
}

fn animal_from_row(row: &AnyRow) -> Result<AnimalRecord, StoreError> {
    let urls: String = row.try_get("image_urls")?;
    Ok(AnimalRecord {
        id: row.try_get("id")?,
        merchant_id: row.try_get("merchant_id")?,
        input: AnimalInput {
            name: row.try_get("name")?,
            species: row.try_get("species")?,
            description: row.try_get("description")?,
            image_urls: serde_json::from_str(&urls).unwrap_or_default(),
            price_cents: row.try_get("price_cents")?,
            slots: row.try_get("slots")?,
        },
        retired: row.try_get::<i64, _>("retired")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn urls_json(input: &AnimalInput) -> String {
    serde_json::to_string(&input.image_urls).unwrap_or_else(|_| "[]".into())
}

/// Merchants' animals.
#[derive(Clone)]
pub struct AnimalRepo {
    pub(in crate::store) pool: AnyPool,
}

impl AnimalRepo {
    /// The repository on `db`'s pool.
    pub fn new(db: &Db) -> AnimalRepo {
        AnimalRepo {
            pool: db.pool.clone(),
        }
    }
}

impl AnimalRepo {
    /// Adds an animal to `merchant`'s catalogue (done by `actor`).
    pub async fn create_animal(
        &self,
        actor: i64,
        merchant: i64,
        input: &AnimalInput,
        now: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO animals (merchant_id, name, species, description, image_urls, \
             price_cents, slots, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
        )
        .bind(merchant)
        .bind(&input.name)
        .bind(&input.species)
        .bind(&input.description)
        .bind(urls_json(input))
        .bind(input.price_cents)
        .bind(input.slots)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        Audit {
            actor_id: actor,
            action: "animal.create",
            subject: format!("animal:{id}"),
            detail: json!({"merchant_id": merchant, "name": input.name, "slots": input.slots}),
            at: now,
        }
        .write(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// One animal.
    pub async fn animal(&self, id: i64) -> Result<Option<AnimalRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM animals WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(animal_from_row).transpose()
    }

    /// `merchant`'s catalogue in id order, retired animals included when asked.
    pub async fn animals_of(
        &self,
        merchant: i64,
        include_retired: bool,
    ) -> Result<Vec<AnimalRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM animals WHERE merchant_id = $1 AND ($2 = 1 OR retired = FALSE) ORDER BY id"
        ))
        .bind(merchant)
        .bind(i64::from(include_retired))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(animal_from_row).collect()
    }

    /// Replaces an animal's fields (by `actor`); `NotFound` when it does not exist or is retired.
    pub async fn update_animal(
        &self,
        actor: i64,
        id: i64,
        input: &AnimalInput,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE animals SET name = $1, species = $2, description = $3, image_urls = $4, \
             price_cents = $5, slots = $6, updated_at = $7 WHERE id = $8 AND retired = FALSE",
        )
        .bind(&input.name)
        .bind(&input.species)
        .bind(&input.description)
        .bind(urls_json(input))
        .bind(input.price_cents)
        .bind(input.slots)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Audit {
            actor_id: actor,
            action: "animal.update",
            subject: format!("animal:{id}"),
            detail: json!({"name": input.name, "price_cents": input.price_cents, "slots": input.slots}),
            at: now,
        }
        .write(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Retires an animal (by `actor`): it leaves the catalogue and cannot join new activities.
    /// `NotFound` when it does not exist or is already retired.
    pub async fn retire_animal(&self, actor: i64, id: i64, now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE animals SET retired = TRUE, updated_at = $1 WHERE id = $2 AND retired = FALSE",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Audit {
            actor_id: actor,
            action: "animal.retire",
            subject: format!("animal:{id}"),
            detail: json!({}),
            at: now,
        }
        .write(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

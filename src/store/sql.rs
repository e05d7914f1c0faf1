//! The SQL store: one connection pool over SQLite (embedded) or PostgreSQL (cluster), chosen
//! by `database.url` ([`Db`], the engine handle), and the repositories built on it: one struct
//! per area, each holding the pool, implementing the actors' port for its area where the core
//! needs one, and gathered in [`Repos`] for the HTTP handlers and admin commands.
//!
//! Queries are runtime-checked (`sqlx::query` through the `Any` driver) and written once for
//! both engines: `$n` placeholders (SQLite accepts them), `RETURNING`, `ON CONFLICT`, integer
//! epoch-millisecond times. Only the DDL differs, in `migrations/sqlite` and
//! `migrations/postgres`.

pub mod backup;
pub mod chat;
pub mod claims;
pub mod coupons;
pub mod listings;
pub mod payments;
pub mod promotions;
pub mod rules;
pub mod social;
pub mod users;

pub use chat::RoomRepo;
pub use claims::ClaimRepo;
pub use coupons::CouponRepo;
pub use listings::ListingRepo;
pub use payments::PaymentRepo;
pub use promotions::{ActivityRepo, AnimalRepo, AuditRepo, MerchantRepo};
pub use rules::{RulesRepo, SqlRules};
pub use social::SocialRepo;
pub use users::AccountRepo;

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

use crate::config::DatabaseSettings;
use secrecy::ExposeSecret;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Pragmas every embedded connection starts with (the `synchronous` level is appended).
macro_rules! sqlite_pragmas {
    () => {
        "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON; "
    };
}

/// Which SQL engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite in WAL mode.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL names an engine Corral does not speak.
    #[error("unsupported database url scheme (use sqlite:// or postgres://)")]
    UnsupportedUrl,
    /// A uniqueness rule was violated (e.g. a taken username).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// Filesystem trouble preparing the embedded database.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database: {0}")]
    Sql(sqlx::Error),
    /// The PostgreSQL server could not be reached or refused the login at start.
    #[error("cannot connect to PostgreSQL at {at}: {hint}")]
    Unreachable {
        /// Its address (never the password).
        at: String,
        /// What to check.
        hint: &'static str,
        /// What the driver (and under it the OS) said.
        #[source]
        source: sqlx::Error,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_string())
            }
            _ => StoreError::Sql(err),
        }
    }
}

/// The connection pool and what it talks to.
#[derive(Clone)]
pub struct Db {
    /// The pool.
    pub pool: AnyPool,
    /// The engine.
    pub backend: Backend,
    /// How long a caller waits for a write before it is answered `unavailable`
    /// (`database.statement_timeout_ms`). PostgreSQL cancels a statement at the same deadline,
    /// but only a statement it received: a connection that hangs (a stalled network or
    /// server) is bounded by this wait alone.
    pub deadline: Duration,
}

/// Creates `file` (if missing) readable and writable by the owner only, or narrows an existing
/// one to that: it holds password hashes. SQLite gives its `-wal` and `-shm` files the
/// database file's permissions.
fn owner_only(file: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        options.open(file)?;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    options.open(file)?;
    Ok(())
}

/// How long a first connection, or a pooled one later, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens (and closes) one connection to PostgreSQL before the pool is built: the pool retries
/// a refused connection until its acquire timeout and then says only "pool timed out while
/// waiting for an open connection", hiding where it tried and what the OS answered.
async fn reach_postgres(url: &str) -> Result<(), StoreError> {
    let unreachable = |hint, source| StoreError::Unreachable {
        at: postgres_address(url),
        hint,
        source,
    };
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect(url)).await;
    match connected {
        Ok(Ok(conn)) => {
            // Only the answer mattered; a failed goodbye changes nothing.
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(source @ sqlx::Error::Io(_))) => Err(unreachable(
            "is it running and accepting TCP connections there? The address comes from \
             `database.url` (CORRAL_DATABASE__URL)",
            source,
        )),
        Ok(Err(source)) => Err(unreachable(
            "check the user, password and database name in `database.url` \
             (CORRAL_DATABASE__URL)",
            source,
        )),
        Err(_) => Err(unreachable(
            "no answer: is the address right and the port open? It comes from `database.url` \
             (CORRAL_DATABASE__URL)",
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            )),
        )),
    }
}

/// `host:port` of a PostgreSQL URL, for messages: the password never appears.
fn postgres_address(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => format!(
            "{}:{}",
            parsed.host_str().unwrap_or("localhost"),
            parsed.port().unwrap_or(5432)
        ),
        Err(_) => "the configured address".to_string(),
    }
}

impl Db {
    /// Connects to `settings.url`, or to `<data_dir>/corral.db` (created, WAL) when empty.
    pub async fn connect(settings: &DatabaseSettings, data_dir: &Path) -> Result<Db, StoreError> {
        install_default_drivers();
        let url = if settings.url.expose_secret().is_empty() {
            std::fs::create_dir_all(data_dir)?;
            let file = data_dir.join("corral.db");
            owner_only(&file)?;
            format!("sqlite://{}?mode=rwc", file.display())
        } else {
            settings.url.expose_secret().to_string()
        };
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let pragmas = match settings.sqlite_synchronous.as_str() {
            "normal" => concat!(sqlite_pragmas!(), "PRAGMA synchronous=NORMAL;"),
            _ => concat!(sqlite_pragmas!(), "PRAGMA synchronous=FULL;"),
        };
        // PostgreSQL gives up on a statement that runs (or waits for a lock) past the
        // deadline, so a stalled database fails requests instead of holding them; SQLite's
        // lock waits end at its busy timeout.
        let statement_timeout = format!(
            "SET statement_timeout = {}",
            settings.statement_timeout_ms.max(1)
        );
        if backend == Backend::Postgres {
            reach_postgres(&url).await?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(CONNECT_TIMEOUT)
            .after_connect(move |conn, _meta| {
                let statement_timeout = statement_timeout.clone();
                Box::pin(async move {
                    match backend {
                        Backend::Sqlite => conn.execute(pragmas).await?,
                        Backend::Postgres => {
                            sqlx::raw_sql(sqlx::AssertSqlSafe(statement_timeout))
                                .execute(&mut *conn)
                                .await?
                        }
                    };
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        Ok(Db {
            pool,
            backend,
            deadline: Duration::from_millis(settings.statement_timeout_ms.max(1)),
        })
    }

    /// Applies the engine's migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// How many group-commit writers a store runs: one on SQLite (it writes one transaction
    /// at a time anyway); on PostgreSQL, which overlaps commits, `1/share` of the pool and at
    /// most `most`, so reads still find connections.
    pub fn writers(&self, share: u32, most: usize) -> usize {
        match self.backend {
            Backend::Sqlite => 1,
            Backend::Postgres => {
                let pool = self.pool.options().get_max_connections();
                ((pool / share.max(1)) as usize).clamp(1, most.max(1))
            }
        }
    }

    /// A round trip to the database (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// The SQL repositories, one per area, all on one pool: what the HTTP handlers and the admin
/// commands reach storage through (handlers never query `Db` themselves).
#[derive(Clone)]
pub struct Repos {
    /// Accounts, roles, standings.
    pub accounts: AccountRepo,
    /// Chat rooms and their members.
    pub rooms: RoomRepo,
    /// Claim rows as the API reads them.
    pub claims: ClaimRepo,
    /// Coupon pools.
    pub coupons: CouponRepo,
    /// Activities and their items.
    pub activities: ActivityRepo,
    /// Merchants' animals.
    pub animals: AnimalRepo,
    /// Merchant applications and approvals.
    pub merchants: MerchantRepo,
    /// The audit log.
    pub audit: AuditRepo,
    /// The API's paged lists.
    pub listings: ListingRepo,
    /// Payment webhooks.
    pub payments: PaymentRepo,
    /// Promotions' audiences and funnels.
    pub rules: RulesRepo,
}

impl Repos {
    /// Every repository on `db`'s pool.
    pub fn new(db: &Db) -> Repos {
        Repos {
            accounts: AccountRepo::new(db),
            rooms: RoomRepo::new(db),
            claims: ClaimRepo::new(db),
            coupons: CouponRepo::new(db),
            activities: ActivityRepo::new(db),
            animals: AnimalRepo::new(db),
            merchants: MerchantRepo::new(db),
            audit: AuditRepo::new(db),
            listings: ListingRepo::new(db),
            payments: PaymentRepo::new(db),
            rules: RulesRepo::new(db),
        }
    }
}

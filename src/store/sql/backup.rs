//! Copies of the embedded SQLite database: `VACUUM INTO` writes a consistent snapshot while a
//! node keeps writing (it reads one transaction's view, like any reader in WAL mode), and a file
//! offered for a restore is checked to be a Corral database at a migration level this binary
//! knows. PostgreSQL has its own tools for both (`pg_dump`, `pg_restore`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};

use super::SQLITE_MIGRATIONS;

/// How long a backup waits for the node's writers to let it read.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a copy could not be made or checked.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// There is no database file to copy.
    #[error("no database at {}: point --data-dir (or --config) at the node's data directory", .0.display())]
    Missing(PathBuf),
    /// The destination exists; a backup never overwrites one.
    #[error("{} already exists: give the backup a new name", .0.display())]
    Exists(PathBuf),
    /// Creating the destination failed.
    #[error("cannot create {}", .path.display())]
    Create {
        /// The destination.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// SQLite could not open or read the file.
    #[error("{} is not a readable SQLite database", .path.display())]
    NotSqlite {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: sqlx::Error,
    },
    /// `PRAGMA integrity_check` found damage.
    #[error("{} is damaged: {detail}", .path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// SQLite's first complaint.
        detail: String,
    },
    /// The file has no record of Corral's migrations.
    #[error("{} is not a Corral database (it has no _sqlx_migrations table)", .0.display())]
    NotCorral(PathBuf),
    /// The file records a migration this binary does not have, or a different one.
    #[error("{} was migrated by another Corral: its migration {version} ({description}) is {why} this binary; restore it with the Corral that wrote it", .path.display())]
    UnknownMigration {
        /// The file.
        path: PathBuf,
        /// The migration's version.
        version: i64,
        /// Its description.
        description: String,
        /// "unknown to" or "different in".
        why: &'static str,
    },
    /// A migration failed half way when the file was last used.
    #[error("{} has a failed migration ({version}): it is not usable", .path.display())]
    FailedMigration {
        /// The file.
        path: PathBuf,
        /// The migration.
        version: i64,
    },
    /// Any other SQL error while copying or checking.
    #[error("{what} {}", .path.display())]
    Sql {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: sqlx::Error,
    },
}

/// The newest migration a database file records, and how many this binary has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationLevel {
    /// Its version (`0012` is 12).
    pub version: i64,
    /// Its description.
    pub description: String,
    /// The newest version this binary has: a lower level is brought up at the next start.
    pub latest: i64,
}

/// Writes a consistent copy of the SQLite database `db_file` to `out`, which must not exist
/// (it is created readable by its owner only: it holds password hashes). Safe while a node
/// runs on `db_file`. Returns the copy's size in bytes.
pub async fn sqlite_backup(db_file: &Path, out: &Path) -> Result<u64, BackupError> {
    if !db_file.is_file() {
        return Err(BackupError::Missing(db_file.to_path_buf()));
    }
    create_owner_only(out)?;
    let copied = vacuum_into(db_file, out).await;
    if copied.is_err() {
        // Leave no half-written backup that could be mistaken for a good one.
        let _ = std::fs::remove_file(out);
    }
    copied?;
    std::fs::metadata(out)
        .map(|m| m.len())
        .map_err(|source| BackupError::Create {
            path: out.to_path_buf(),
            source,
        })
}

async fn vacuum_into(db_file: &Path, out: &Path) -> Result<(), BackupError> {
    let sql = |what| {
        move |source| BackupError::Sql {
            what,
            path: db_file.to_path_buf(),
            source,
        }
    };
    let mut conn = SqliteConnectOptions::new()
        .filename(db_file)
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT)
        .connect()
        .await
        .map_err(|source| BackupError::NotSqlite {
            path: db_file.to_path_buf(),
            source,
        })?;
    // VACUUM INTO accepts an empty destination file, which keeps the mode set above.
    sqlx::query("VACUUM INTO $1")
        .bind(out.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await
        .map_err(sql("copying"))?;
    conn.close().await.map_err(sql("closing"))
}

fn create_owner_only(path: &Path) -> Result<(), BackupError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(BackupError::Exists(path.to_path_buf()))
        }
        Err(source) => Err(BackupError::Create {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Checks that `file` is an intact Corral SQLite database whose every applied migration is
/// one of this binary's (same version, same checksum); returns the newest one.
pub async fn inspect_sqlite(file: &Path) -> Result<MigrationLevel, BackupError> {
    let not_sqlite = |source| BackupError::NotSqlite {
        path: file.to_path_buf(),
        source,
    };
    if !file.is_file() {
        return Err(BackupError::Missing(file.to_path_buf()));
    }
    let mut conn = SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(false)
        .connect()
        .await
        .map_err(not_sqlite)?;
    // The first read is where a file that is not SQLite at all fails ("file is not a database").
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .map_err(not_sqlite)?;
    if verdict != "ok" {
        return Err(BackupError::Damaged {
            path: file.to_path_buf(),
            detail: verdict,
        });
    }
    let has_table: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(&mut conn)
    .await
    .map_err(not_sqlite)?;
    if has_table.is_none() {
        return Err(BackupError::NotCorral(file.to_path_buf()));
    }
    let rows = sqlx::query(
        "SELECT version, description, success, checksum FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(not_sqlite)?;
    let _ = conn.close().await;
    let latest = SQLITE_MIGRATIONS
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0);
    let mut level = None;
    for row in rows {
        let version: i64 = row.try_get("version").map_err(not_sqlite)?;
        let description: String = row.try_get("description").map_err(not_sqlite)?;
        let success: bool = row.try_get("success").map_err(not_sqlite)?;
        let checksum: Vec<u8> = row.try_get("checksum").map_err(not_sqlite)?;
        if !success {
            return Err(BackupError::FailedMigration {
                path: file.to_path_buf(),
                version,
            });
        }
        let why = match SQLITE_MIGRATIONS.iter().find(|m| m.version == version) {
            None => "unknown to",
            Some(known) if *known.checksum != *checksum => "different in",
            Some(_) => {
                level = Some(MigrationLevel {
                    version,
                    description,
                    latest,
                });
                continue;
            }
        };
        return Err(BackupError::UnknownMigration {
            path: file.to_path_buf(),
            version,
            description,
            why,
        });
    }
    level.ok_or_else(|| BackupError::NotCorral(file.to_path_buf()))
}

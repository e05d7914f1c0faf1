//! `corral admin backup` and `corral admin restore`.
//!
//! On SQLite a backup is an online, consistent copy (`VACUUM INTO`) taken while the node runs;
//! a restore refuses while any process holds the data directory, checks the file is an intact
//! Corral database at a migration level this binary knows, and keeps the database it replaces
//! beside it. On PostgreSQL the backup runs `pg_dump` when it is installed, and otherwise (and
//! for a restore, which needs every node stopped) prints the exact commands to run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::data_lock::{DataDirLock, LockError};
use crate::store::sql::backup::{self, BackupError, MigrationLevel};

/// The embedded database's file name inside the data directory.
const DB_FILE: &str = "corral.db";
/// SQLite's companions of a WAL-mode database, which move with it.
const COMPANIONS: [&str; 2] = ["-wal", "-shm"];

/// Why a backup or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminBackupError {
    /// Copying or checking a SQLite file failed.
    #[error(transparent)]
    Sqlite(#[from] BackupError),
    /// A node (or another restore) holds the data directory.
    #[error("stop the node first: a restore replaces the database it has open")]
    NodeRunning(#[source] LockError),
    /// Taking the data directory failed for another reason.
    #[error(transparent)]
    Lock(LockError),
    /// `pg_dump` is not installed here; nothing was written.
    #[error(
        "pg_dump is not installed here (not on PATH): no backup was made. On a machine with the \
         PostgreSQL client tools run:\n  {dump}\nand restore it, every node stopped, with:\n  {restore}"
    )]
    NoPgDump {
        /// The dump command.
        dump: String,
        /// The restore command.
        restore: String,
    },
    /// `pg_dump` ran and failed.
    #[error("pg_dump failed ({status}): {stderr}")]
    PgDump {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it said.
        stderr: String,
    },
    /// `pg_dump` could not be started.
    #[error("running pg_dump")]
    Spawn(#[source] std::io::Error),
    /// Restores are for the embedded database.
    #[error(
        "restore replaces the embedded SQLite database, and this node uses PostgreSQL: stop every \
         node, then run:\n  {restore}"
    )]
    Postgres {
        /// The restore command.
        restore: String,
    },
    /// The database URL does not parse.
    #[error("database.url is not a URL")]
    BadUrl(#[source] url::ParseError),
    /// Moving or copying files in the data directory failed.
    #[error("{what} {}", .path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// What a backup did.
#[derive(Debug)]
pub enum BackupDone {
    /// SQLite: the copy and its size in bytes.
    Sqlite {
        /// The copy.
        out: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// PostgreSQL: `pg_dump` wrote `out` (custom format); restore it with `restore`.
    PgDump {
        /// The dump.
        out: PathBuf,
        /// The command that restores it.
        restore: String,
    },
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// The database now in place.
    pub db: PathBuf,
    /// Where the one it replaced was moved (none when there was none).
    pub kept: Option<PathBuf>,
    /// The restored file's migration level.
    pub level: MigrationLevel,
}

/// Backs up the node's database to `out`: `database_url` empty means the SQLite file in
/// `data_dir`.
pub async fn backup(
    database_url: &str,
    data_dir: &Path,
    out: &Path,
) -> Result<BackupDone, AdminBackupError> {
    if database_url.is_empty() {
        let bytes = backup::sqlite_backup(&data_dir.join(DB_FILE), out).await?;
        return Ok(BackupDone::Sqlite {
            out: out.to_path_buf(),
            bytes,
        });
    }
    let pg = PgCommands::new(database_url, out)?;
    if out.exists() {
        return Err(BackupError::Exists(out.to_path_buf()).into());
    }
    let Some(pg_dump) = on_path("pg_dump") else {
        return Err(AdminBackupError::NoPgDump {
            dump: pg.dump,
            restore: pg.restore,
        });
    };
    let mut command = Command::new(pg_dump);
    command.args(["--format=custom", "--no-owner", "--file"]);
    command.arg(out).arg("--dbname").arg(&pg.url);
    // The password goes in the environment, where `ps` does not show it.
    if let Some(password) = &pg.password {
        command.env("PGPASSWORD", password);
    }
    let done = command.output().map_err(AdminBackupError::Spawn)?;
    if !done.status.success() {
        return Err(AdminBackupError::PgDump {
            status: done.status,
            stderr: String::from_utf8_lossy(&done.stderr).trim().to_string(),
        });
    }
    Ok(BackupDone::PgDump {
        out: out.to_path_buf(),
        restore: pg.restore,
    })
}

/// Replaces the SQLite database in `data_dir` with `file`, keeping the old one beside it.
pub async fn restore(
    database_url: &str,
    data_dir: &Path,
    file: &Path,
) -> Result<Restored, AdminBackupError> {
    if !database_url.is_empty() {
        let pg = PgCommands::new(database_url, file)?;
        return Err(AdminBackupError::Postgres {
            restore: pg.restore,
        });
    }
    if !file.is_file() {
        return Err(BackupError::Missing(file.to_path_buf()).into());
    }
    // Held until the new file is in place: no node can start on a half-restored directory.
    let _lock = DataDirLock::acquire(data_dir).map_err(|err| match err {
        busy @ LockError::Busy { .. } => AdminBackupError::NodeRunning(busy),
        other => AdminBackupError::Lock(other),
    })?;
    let db = data_dir.join(DB_FILE);
    // The exact bytes that go in place are the ones checked, and `file` is never touched.
    let staged = data_dir.join(format!("{DB_FILE}.restoring"));
    remove_with_companions(&staged)?;
    std::fs::copy(file, &staged).map_err(io("copying into", &staged))?;
    narrow_to_owner(&staged)?;
    let level = match backup::inspect_sqlite(&staged).await {
        Ok(level) => level,
        Err(err) => {
            remove_with_companions(&staged)?;
            return Err(err.into());
        }
    };
    let kept = if db.exists() {
        let stamp = corral_actors::clock::now_ms();
        let aside = data_dir.join(format!("{DB_FILE}.replaced-{stamp}"));
        move_with_companions(&db, &aside)?;
        Some(aside)
    } else {
        None
    };
    move_with_companions(&staged, &db)?;
    Ok(Restored { db, kept, level })
}

fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> AdminBackupError + 'a {
    move |source| AdminBackupError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Moves a database file and its WAL companions, which hold the last commits until a
/// checkpoint: moved together they stay one consistent database.
fn move_with_companions(from: &Path, to: &Path) -> Result<(), AdminBackupError> {
    std::fs::rename(from, to).map_err(io("moving", from))?;
    for suffix in COMPANIONS {
        let companion = with_suffix(from, suffix);
        if companion.exists() {
            std::fs::rename(&companion, with_suffix(to, suffix))
                .map_err(io("moving", &companion))?;
        }
    }
    Ok(())
}

fn remove_with_companions(path: &Path) -> Result<(), AdminBackupError> {
    for file in [path.to_path_buf()]
        .into_iter()
        .chain(COMPANIONS.iter().map(|s| with_suffix(path, s)))
    {
        match std::fs::remove_file(&file) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("removing", &file)(err));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The database holds password hashes: readable by its owner only, as the node keeps it.
fn narrow_to_owner(path: &Path) -> Result<(), AdminBackupError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io("narrowing the mode of", path))?;
    }
    Ok(())
}

/// The `pg_dump` and `pg_restore` command lines for a database URL, the password left out.
struct PgCommands {
    url: String,
    password: Option<String>,
    dump: String,
    restore: String,
}

impl PgCommands {
    fn new(database_url: &str, file: &Path) -> Result<PgCommands, AdminBackupError> {
        let mut url = url::Url::parse(database_url).map_err(AdminBackupError::BadUrl)?;
        let password = url.password().map(str::to_string);
        // Only fails for URLs that cannot have a password, which then has none to remove.
        let _ = url.set_password(None);
        let url = url.to_string();
        let file = quote(&file.to_string_lossy());
        let given = if password.is_some() {
            "PGPASSWORD=... "
        } else {
            ""
        };
        Ok(PgCommands {
            dump: format!(
                "{given}pg_dump --format=custom --no-owner --file {file} --dbname {}",
                quote(&url)
            ),
            restore: format!(
                "{given}pg_restore --clean --if-exists --no-owner --dbname {} {file}",
                quote(&url)
            ),
            url,
            password,
        })
    }
}

/// `text` as one shell word.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The first executable `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_commands_name_the_database_but_never_the_password() {
        let pg = PgCommands::new(
            "postgres://corral:s3cret@db.internal:5433/corral",
            Path::new("/backups/it's.dump"),
        );
        let pg = pg.expect("parses");
        for command in [&pg.dump, &pg.restore] {
            assert!(!command.contains("s3cret"), "{command}");
            assert!(
                command.contains("'postgres://corral@db.internal:5433/corral'"),
                "{command}"
            );
            assert!(command.contains(r"'/backups/it'\''s.dump'"), "{command}");
            assert!(command.starts_with("PGPASSWORD=... "), "{command}");
        }
        assert_eq!(pg.password.as_deref(), Some("s3cret"));
        assert!(pg.restore.contains("pg_restore --clean --if-exists"));
    }
}

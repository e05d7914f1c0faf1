//! One process at a time owns a data directory holding the embedded SQLite database: `corral
//! serve` holds an exclusive lock on `<data_dir>/corral.lock` while it runs, and `corral admin
//! restore` takes the same lock before it replaces the database under the node's feet. The OS
//! drops the lock when the process ends, however it ends, so a crash never leaves it stale.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "corral.lock";

/// Why the data directory could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "{dir} is in use by another corral process{holder}",
        dir = .dir.display(),
        holder = .pid.as_ref().map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Busy {
        /// The data directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it.
        pid: Option<String>,
    },
    /// The directory or the lock file could not be created or locked.
    #[error("cannot lock {}", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; dropping it (or ending the process) releases it.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes `data_dir` (created if missing) for this process, or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = Some(pid.trim().to_string()).filter(|p| !p.is_empty());
                return Err(LockError::Busy {
                    dir: data_dir.to_path_buf(),
                    pid,
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        // Who holds it, for the message another process shows.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DataDirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DataDirLock::acquire(dir.path()).expect("first lock");
        match DataDirLock::acquire(dir.path()) {
            Err(LockError::Busy { pid, .. }) => {
                assert_eq!(pid, Some(std::process::id().to_string()));
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(first);
        assert!(DataDirLock::acquire(dir.path()).is_ok());
    }
}

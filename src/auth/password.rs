//! Argon2id password hashes (PHC strings), computed by a bounded pool.
//!
//! Each hash holds `argon2_memory_kib` of memory for its duration, so an unbounded number at
//! once lets anyone exhaust the node with wrong passwords. The [`Hasher`] owns
//! `hash_concurrency` threads of its own; up to `hash_queue` requests wait for one, and beyond
//! that callers are told to come back later. Dedicated threads, not the blocking pool: the
//! allocator keeps each thread's freed argon2 memory for reuse, so memory stays at
//! `hash_concurrency` x `argon2_memory_kib` only if the same few threads do all the hashing (on
//! a growing set of blocking-pool threads it climbed by one hash's memory per new thread).
//! Unknown usernames are checked against a dummy hash, so refusing them costs the same as
//! refusing a wrong password.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use corral_actors::metric_catalogue as metric;

use crate::config::AuthSettings;

/// How long a password may be, in characters: checked at registration and when an operator
/// sets one.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;

/// Why a hash could not be computed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every slot is busy and the queue is full: try again shortly.
    #[error("password hashing is saturated")]
    Busy,
    /// The configured parameters are not valid argon2 parameters.
    #[error("argon2 parameters: {0}")]
    Params(String),
    /// Hashing failed, or its worker thread was lost.
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// A unit of hashing work.
type Job = Box<dyn FnOnce() + Send>;

/// The node's password hashing pool.
pub struct Hasher {
    argon: Argon2<'static>,
    jobs: std::sync::mpsc::SyncSender<Job>,
    /// A hash of a random password with the configured parameters, verified when the username
    /// is unknown.
    dummy: String,
    /// Hashes computed or checked since start.
    runs: AtomicU64,
}

impl Hasher {
    /// A pool with the configured size and argon2 parameters (computes the dummy hash and
    /// starts the threads).
    pub fn new(auth: &AuthSettings) -> Result<Hasher, HashError> {
        let params = Params::new(
            auth.argon2_memory_kib,
            auth.argon2_iterations,
            auth.argon2_parallelism,
            None,
        )
        .map_err(|e| HashError::Params(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = argon
            .hash_password(rand::random::<[u8; 16]>().as_slice())
            .map_err(|e| HashError::Failed(e.to_string()))?
            .to_string();
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(auth.hash_queue);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..auth.hash_concurrency.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("corral-hash-{n}"))
                .spawn(move || {
                    // Ends when the pool (its sender) is dropped.
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| HashError::Failed(e.to_string()))?;
        }
        Ok(Hasher {
            argon,
            jobs,
            dummy,
            runs: AtomicU64::new(0),
        })
    }

    /// Hashes or checks since the node started (unknown usernames included).
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Hashes `password` with a fresh random salt.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let argon = self.argon.clone();
        self.run(move || {
            argon
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await?
    }

    /// Whether `password` matches `phc`; with no stored hash (an unknown user) the dummy is
    /// checked, at the same cost, and the answer is `false`.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, HashError> {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy.clone());
        let argon = self.argon.clone();
        let matches = self
            .run(move || {
                PasswordHash::new(&phc)
                    .map(|parsed| argon.verify_password(password.as_bytes(), &parsed).is_ok())
                    .unwrap_or(false)
            })
            .await?;
        Ok(known && matches)
    }

    /// Queues `work` for the pool's threads, or refuses when the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.jobs.try_send(job).map_err(|err| match err {
            TrySendError::Full(_) => {
                metrics::counter!(metric::PASSWORD_HASHES_REFUSED).increment(1);
                HashError::Busy
            }
            TrySendError::Disconnected(_) => HashError::Failed("hashing threads gone".into()),
        })?;
        self.runs.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric::PASSWORD_HASHES).increment(1);
        result
            .await
            .map_err(|_| HashError::Failed("a hashing thread was lost".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(concurrency: usize, queue: usize) -> AuthSettings {
        let mut auth = crate::config::Settings::defaults()
            .map(|s| s.auth)
            .unwrap_or_else(|e| panic!("defaults: {e}"));
        // Small parameters: these tests check behaviour, not cost.
        auth.argon2_memory_kib = 64;
        auth.argon2_iterations = 1;
        auth.hash_concurrency = concurrency;
        auth.hash_queue = queue;
        auth
    }

    #[tokio::test]
    async fn hashes_verify_only_the_right_password() {
        let Ok(hasher) = Hasher::new(&settings(2, 8)) else {
            panic!("hasher")
        };
        let phc = hasher
            .hash("correct horse".into())
            .await
            .unwrap_or_default();
        assert!(phc.starts_with("$argon2id$"));
        assert!(matches!(
            hasher
                .verify("correct horse".into(), Some(phc.clone()))
                .await,
            Ok(true)
        ));
        assert!(matches!(
            hasher.verify("wrong".into(), Some(phc)).await,
            Ok(false)
        ));
        // An unknown user costs a check too, and never matches.
        let before = hasher.runs();
        assert!(matches!(
            hasher.verify("correct horse".into(), None).await,
            Ok(false)
        ));
        assert_eq!(hasher.runs(), before + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_instead_of_growing() {
        let Ok(hasher) = Hasher::new(&settings(1, 2)) else {
            panic!("hasher")
        };
        // Hold the only thread so every caller has to wait.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        let _ = hasher.jobs.try_send(Box::new(move || {
            let _ = started.send(());
            let _ = held.recv();
        }));
        let _ = running.recv();
        let hasher = Arc::new(hasher);
        let mut waiting = Vec::new();
        for _ in 0..2 {
            let h = hasher.clone();
            waiting.push(tokio::spawn(async move { h.hash("password".into()).await }));
        }
        // Both queued (the queue holds 2): one more is refused at once.
        while hasher.runs() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(matches!(
            hasher.hash("password".into()).await,
            Err(HashError::Busy)
        ));
        let _ = release.send(());
        for task in waiting {
            assert!(matches!(task.await, Ok(Ok(_))));
        }
    }
}

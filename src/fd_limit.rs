//! The open-files budget. Every connection holds a file descriptor, so the connection limits
//! must fit inside the process's `RLIMIT_NOFILE`, with room left for the database pool, Redis
//! and files. At start the node raises its soft limit to the hard one, works out how many
//! connections fit, and refuses a configuration that asks for more, saying which key to change.
//! (A per-address limit above the node's is harmless: the node's limit is reached first.)

use crate::config::Settings;

/// Descriptors kept for everything that is not a client connection: the database pool and
/// Redis are added to this; listeners, the data files, logs and the runtime fit in it.
const RESERVED: u64 = 256;

/// What the node can honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The open-files limit in force.
    pub nofile: u64,
    /// TCP connections (HTTP and WebSocket) that fit.
    pub fit: usize,
    /// WebSocket connections allowed (`ws.max_connections`, or all that fit).
    pub connections: usize,
}

/// A configuration the open-files limit cannot honour.
#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    /// A connection limit above what the open-files limit allows.
    #[error(
        "{key} = {asked} does not fit the open-files limit: RLIMIT_NOFILE is {nofile} and \
         {reserved} descriptors are kept for the database, Redis and files, so at most {fit} \
         connections fit. Lower {key} (0 picks the most that fits) or raise the limit \
         (`ulimit -n`, systemd LimitNOFILE=)."
    )]
    TooMany {
        /// The config key.
        key: &'static str,
        /// Its value.
        asked: usize,
        /// What fits.
        fit: usize,
        /// The limit.
        nofile: u64,
        /// Descriptors kept aside.
        reserved: u64,
    },
}

/// Raises the soft open-files limit to the hard one; returns the limit then in force.
fn raise_nofile() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    limit.rlim_cur
}

/// Checks the connection limits of `settings` against the open-files limit.
pub fn plan(settings: &Settings) -> Result<Budget, FdLimitError> {
    budget(settings, raise_nofile())
}

/// [`plan`] for a given limit.
pub fn budget(settings: &Settings, nofile: u64) -> Result<Budget, FdLimitError> {
    let reserved = RESERVED + u64::from(settings.database.max_connections) + 16;
    let fit = usize::try_from(nofile.saturating_sub(reserved)).unwrap_or(usize::MAX);
    let ws = &settings.ws;
    let connections = match ws.max_connections {
        0 => fit,
        asked if asked > fit => {
            return Err(FdLimitError::TooMany {
                key: "ws.max_connections",
                asked,
                fit,
                nofile,
                reserved,
            });
        }
        asked => asked,
    };
    Ok(Budget {
        nofile,
        fit,
        connections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::defaults().unwrap_or_else(|e| panic!("defaults: {e}"))
    }

    #[test]
    fn the_defaults_fit_a_small_limit() {
        let budget = budget(&settings(), 4096);
        assert!(matches!(budget, Ok(b) if b.connections > 3000 && b.connections < 4096));
    }

    #[test]
    fn a_limit_that_cannot_be_honoured_is_refused_with_the_key_to_change() {
        let mut s = settings();
        s.ws.max_connections = 100_000;
        let err = budget(&s, 20_000)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("ws.max_connections = 100000"), "{err}");
        assert!(err.contains("RLIMIT_NOFILE is 20000"), "{err}");
    }
}

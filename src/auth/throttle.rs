//! Login and registration limits: per client IP and per username (known or not, so the
//! limit itself tells nothing about which accounts exist). Checked before any hashing, so a
//! refused attempt costs the node a map lookup.

use std::net::IpAddr;
use std::time::Duration;

use corral_actors::metric_catalogue as metric;
use corral_actors::rate_limit::KeyedLimiter;

use crate::config::AuthSettings;

/// The node's login and registration limiters.
pub struct LoginLimits {
    login_ip: KeyedLimiter<IpAddr>,
    login_account: KeyedLimiter<String>,
    register_ip: KeyedLimiter<IpAddr>,
}

/// Which limit refused an attempt, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// The metrics label.
    pub scope: &'static str,
    /// Until a new attempt can pass.
    pub retry_after: Duration,
}

fn per_sec(per_min: f64) -> f64 {
    per_min / 60.0
}

impl LoginLimits {
    /// Limiters with the configured rates.
    pub fn new(auth: &AuthSettings) -> LoginLimits {
        let keys = auth.limiter_max_keys;
        LoginLimits {
            login_ip: KeyedLimiter::new(
                per_sec(auth.login_per_ip_per_min),
                auth.login_per_ip_burst,
                keys,
            ),
            login_account: KeyedLimiter::new(
                per_sec(auth.login_per_account_per_min),
                auth.login_per_account_burst,
                keys,
            ),
            register_ip: KeyedLimiter::new(
                per_sec(auth.register_per_ip_per_min),
                auth.register_per_ip_burst,
                keys,
            ),
        }
    }

    /// A login attempt from `ip` for `username`.
    pub fn login(&self, ip: IpAddr, username: &str) -> Result<(), Throttled> {
        self.login_ip
            .check(ip)
            .map_err(|wait| throttled("login_ip", wait))?;
        // Names are unique case-insensitively, so `Alice` and `alice` share a limit.
        self.login_account
            .check(username.to_lowercase())
            .map_err(|wait| throttled("login_account", wait))
    }

    /// A registration from `ip`.
    pub fn register(&self, ip: IpAddr) -> Result<(), Throttled> {
        self.register_ip
            .check(ip)
            .map_err(|wait| throttled("register_ip", wait))
    }
}

fn throttled(scope: &'static str, retry_after: Duration) -> Throttled {
    metrics::counter!(metric::RATE_LIMITED, "scope" => scope).increment(1);
    Throttled { scope, retry_after }
}

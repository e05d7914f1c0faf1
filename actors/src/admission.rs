//! Connection admission: the node-wide, per-IP and per-user connection limits and the
//! new-connection rate limit. Permits give their slot back when dropped.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use corral_protocol::UserId;
use dashmap::DashMap;

use crate::metric_catalogue as metric;
use crate::rate_limit::TokenBucket;

/// Admission limits (from the `[ws]` config section).
#[derive(Debug, Clone)]
pub struct AdmissionConfig {
    /// Most open connections on this node.
    pub max_connections: usize,
    /// Most open connections from one IP address.
    pub max_per_ip: usize,
    /// Most open connections of one user (devices).
    pub max_per_user: usize,
    /// New connections accepted per second, node-wide (sustained).
    pub new_per_sec: f64,
    /// New connections accepted in a burst.
    pub new_burst: f64,
}

/// Why a connection was refused before the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The node holds its maximum number of connections.
    #[error("node connection limit reached")]
    NodeFull,
    /// Too many connections from this address.
    #[error("too many connections from this address")]
    PerIp,
    /// Too many connections of this user.
    #[error("too many connections for this user")]
    PerUser,
    /// New connections are arriving faster than the configured rate.
    #[error("too many new connections, retry shortly")]
    Rate,
}

impl Refusal {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NodeFull => "node_full",
            Refusal::PerIp => "per_ip",
            Refusal::PerUser => "per_user",
            Refusal::Rate => "rate",
        }
    }
}

/// The node's connection bookkeeping.
pub struct Admission {
    config: AdmissionConfig,
    total: AtomicUsize,
    per_ip: DashMap<IpAddr, usize>,
    per_user: DashMap<UserId, usize>,
    new_conns: Mutex<TokenBucket>,
}

/// A connection's slot in the node and IP counts.
pub struct ConnPermit {
    admission: Arc<Admission>,
    ip: IpAddr,
}

/// A connection's slot in its user's count.
pub struct UserPermit {
    admission: Arc<Admission>,
    user: UserId,
}

impl Admission {
    /// New bookkeeping with the given limits.
    pub fn new(config: AdmissionConfig) -> Arc<Self> {
        Arc::new(Admission {
            new_conns: Mutex::new(TokenBucket::new(config.new_per_sec, config.new_burst)),
            config,
            total: AtomicUsize::new(0),
            per_ip: DashMap::new(),
            per_user: DashMap::new(),
        })
    }

    /// Open connections on this node.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Admits a new connection from `ip`, or says why not. Counted in metrics either way.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Refusal> {
        let result = self.try_admit(ip);
        if let Err(refusal) = &result {
            metrics::counter!(metric::CONNECTIONS_REFUSED, "reason" => refusal.label())
                .increment(1);
        }
        result
    }

    fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Refusal> {
        let allowed = self
            .new_conns
            .lock()
            .map(|mut bucket| bucket.try_take())
            .unwrap_or(false);
        if !allowed {
            return Err(Refusal::Rate);
        }
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.config.max_connections {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::NodeFull);
        }
        let mut count = self.per_ip.entry(ip).or_insert(0);
        if *count >= self.config.max_per_ip {
            drop(count);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::PerIp);
        }
        *count += 1;
        drop(count);
        metrics::gauge!(metric::CONNECTIONS).increment(1.0);
        Ok(ConnPermit {
            admission: self.clone(),
            ip,
        })
    }

    /// Takes a slot in `user`'s connection count.
    pub fn admit_user(self: &Arc<Self>, user: UserId) -> Result<UserPermit, Refusal> {
        let mut count = self.per_user.entry(user).or_insert(0);
        if *count >= self.config.max_per_user {
            drop(count);
            metrics::counter!(metric::CONNECTIONS_REFUSED, "reason" => Refusal::PerUser.label())
                .increment(1);
            return Err(Refusal::PerUser);
        }
        *count += 1;
        Ok(UserPermit {
            admission: self.clone(),
            user,
        })
    }
}

fn release<K: std::hash::Hash + Eq>(map: &DashMap<K, usize>, key: K) {
    map.remove_if_mut(&key, |_, count| {
        *count = count.saturating_sub(1);
        *count == 0
    });
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        release(&self.admission.per_ip, self.ip);
        self.admission.total.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!(metric::CONNECTIONS).decrement(1.0);
    }
}

impl Drop for UserPermit {
    fn drop(&mut self) {
        release(&self.admission.per_user, self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AdmissionConfig {
        AdmissionConfig {
            max_connections: 3,
            max_per_ip: 2,
            max_per_user: 1,
            new_per_sec: 1000.0,
            new_burst: 1000.0,
        }
    }

    #[test]
    fn limits_per_ip_and_node_and_gives_slots_back() {
        let adm = Admission::new(config());
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let p1 = adm.admit(a);
        let p2 = adm.admit(a);
        assert!(p1.is_ok() && p2.is_ok());
        assert_eq!(adm.admit(a).err(), Some(Refusal::PerIp));
        let p3 = adm.admit(b);
        assert!(p3.is_ok());
        assert_eq!(adm.admit(b).err(), Some(Refusal::NodeFull));
        drop(p1);
        let p4 = adm.admit(b);
        assert!(p4.is_ok());
        assert_eq!(adm.open(), 3);
        drop((p2, p3, p4));
        assert_eq!(adm.open(), 0);
    }

    #[test]
    fn limits_per_user() {
        let adm = Admission::new(config());
        let u = adm.admit_user(7);
        assert!(u.is_ok());
        assert_eq!(adm.admit_user(7).err(), Some(Refusal::PerUser));
        drop(u);
        assert!(adm.admit_user(7).is_ok());
    }

    #[test]
    fn limits_the_new_connection_rate() {
        let adm = Admission::new(AdmissionConfig {
            new_per_sec: 0.001,
            new_burst: 2.0,
            ..config()
        });
        let ip: IpAddr = [127, 0, 0, 1].into();
        let _a = adm.admit(ip);
        let _b = adm.admit(ip);
        assert_eq!(adm.admit(ip).err(), Some(Refusal::Rate));
    }
}

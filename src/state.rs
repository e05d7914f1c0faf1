//! What every HTTP handler and WebSocket upgrade shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use corral_actors::Hub;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::JwtKeys;
use crate::auth::password::Hasher;
use crate::auth::throttle::LoginLimits;
use crate::config::Settings;
use crate::http::client_ip::TrustedProxies;
use crate::store::redis::RedisStore;
use crate::store::{Db, Repos};

/// What guards the public edge: the hashing pool, login limits, who may forward client IPs.
pub struct Edge {
    /// The password hashing pool.
    pub hasher: Hasher,
    /// Login and registration limits.
    pub login_limits: LoginLimits,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub proxies: TrustedProxies,
}

/// Node-wide state behind `web::Data`.
pub struct AppState {
    /// Settings the node started with.
    pub settings: Settings,
    /// The SQL engine (pool) the repositories are built on.
    pub db: Db,
    /// The SQL repositories: handlers reach storage only through these.
    pub repos: Repos,
    /// Redis, in cluster mode.
    pub redis: Option<RedisStore>,
    /// Token keys.
    pub keys: Arc<JwtKeys>,
    /// The actors' shared hub.
    pub hub: Arc<Hub>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Guards of the public edge.
    pub edge: Edge,
    draining: AtomicBool,
}

impl AppState {
    /// Assembles the state.
    pub fn new(
        settings: Settings,
        db: Db,
        redis: Option<RedisStore>,
        keys: Arc<JwtKeys>,
        hub: Arc<Hub>,
        metrics: PrometheusHandle,
        edge: Edge,
    ) -> AppState {
        AppState {
            settings,
            repos: Repos::new(&db),
            db,
            redis,
            keys,
            hub,
            metrics,
            edge,
            draining: AtomicBool::new(false),
        }
    }

    /// The client IP of `req` (see [`TrustedProxies`]).
    pub fn client_ip(&self, req: &actix_web::HttpRequest) -> std::net::IpAddr {
        self.edge.proxies.of(req)
    }

    /// Whether the node is shutting down (not ready, refusing new sockets).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Marks the node as shutting down.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}

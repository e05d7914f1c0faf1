//! What every HTTP handler and WebSocket upgrade shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use corral_actors::Hub;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::JwtKeys;
use crate::config::Settings;
use crate::store::Db;
use crate::store::redis::RedisStore;

/// Node-wide state behind `web::Data`.
pub struct AppState {
    /// Settings the node started with.
    pub settings: Settings,
    /// The SQL store.
    pub db: Db,
    /// Redis, in cluster mode.
    pub redis: Option<RedisStore>,
    /// Token keys.
    pub keys: Arc<JwtKeys>,
    /// The actors' shared hub.
    pub hub: Arc<Hub>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
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
    ) -> AppState {
        AppState {
            settings,
            db,
            redis,
            keys,
            hub,
            metrics,
            draining: AtomicBool::new(false),
        }
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

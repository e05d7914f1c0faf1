//! Every live connection on this node, for node-wide pushes such as `server.going_away`.

use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::outbound::Outbound;

/// The node's live connections by connection id.
#[derive(Default)]
pub struct Connections {
    next_id: AtomicU64,
    live: DashMap<u64, Outbound>,
}

impl Connections {
    /// Registers a connection and returns its node-unique id.
    pub fn register(&self, out: Outbound) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.live.insert(id, out);
        id
    }

    /// Forgets a closed connection.
    pub fn remove(&self, id: u64) {
        self.live.remove(&id);
    }

    /// How many are live.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// A snapshot of the live connections' queues (no guard is kept).
    pub fn snapshot(&self) -> Vec<Outbound> {
        self.live.iter().map(|e| e.value().clone()).collect()
    }
}

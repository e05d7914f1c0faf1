//! The node's live promotions: finds or starts the Activity actor of an activity, and keeps
//! each activity's subscriber set (outside the actor, so it survives the actor's restarts).
//!
//! Sessions and HTTP handlers talk to activities only through [`Activities`]. It is built
//! after the claim desk and over it: the actors subscribe to the desk's stock streams.

use std::collections::HashSet;
use std::sync::Arc;

use actix::Addr;
use bytestring::ByteString;
use corral_protocol::ops::{ActivityId, ActivityState, ActivitySubscribeOk};
use corral_protocol::{ErrorCode, UserId};
use dashmap::DashMap;

use crate::activity::subscribers::Subscriber;
use crate::activity::{
    ACTIVITY_RESTARTING, Activity, ActivityError, ActivitySnapshot, Broadcast, Reload, Shared,
    Snapshot, Subscribe,
};
use crate::claims::Claims;
use crate::clock::now_ms;
use crate::metric_catalogue as metric;
use crate::ports::activities::{ActivityCatalog, CatalogError};
use crate::registry::{Arbiters, Registry};
use crate::replier::{OnceReply, Replier};

/// The node's activities. Cheap to clone.
#[derive(Clone)]
pub struct Activities {
    shared: Arc<Shared>,
}

impl Activities {
    /// No activity running yet; actors will run on `arbiters`, read from `catalog` and
    /// subscribe to the stock `claims` publishes; each activity's `activity.stock` frames
    /// stay within `stock_frames_per_sec` on this node.
    pub fn new(
        arbiters: Arc<Arbiters>,
        catalog: Arc<dyn ActivityCatalog>,
        claims: Arc<Claims>,
        stock_frames_per_sec: usize,
    ) -> Activities {
        Activities {
            shared: Arc::new(Shared {
                registry: Registry::new(arbiters),
                directory: DashMap::new(),
                catalog,
                claims,
                stock_frames_per_sec: stock_frames_per_sec.max(1),
            }),
        }
    }

    /// Starts the actor of every activity that is not over, so their timers run (node
    /// start). Returns how many.
    pub async fn resume(&self) -> Result<usize, CatalogError> {
        let ids = self.shared.catalog.pending_activities(now_ms()).await?;
        for id in &ids {
            self.ensure(*id);
        }
        tracing::info!(activities = ids.len(), "activity timers armed");
        Ok(ids.len())
    }

    fn ensure(&self, id: ActivityId) -> Addr<Activity> {
        let subscribers = self.shared.directory.entry(id).or_default().clone();
        let shared = self.shared.clone();
        let addr = self
            .shared
            .registry
            .get_or_start(&id, move || Activity::new(id, shared, subscribers));
        metrics::gauge!(metric::ACTIVITY_ACTORS).set(self.shared.registry.len() as f64);
        addr
    }

    /// `activity.subscribe`: answers through `replier` (exactly once) with the activity's
    /// state; the session then receives its pushes until it unsubscribes, disconnects or the
    /// activity ends.
    pub fn subscribe(&self, id: ActivityId, sub: Subscriber, replier: Replier) {
        let reply = OnceReply::new(replier, ACTIVITY_RESTARTING);
        if let Some(addr) = self.shared.registry.get(&id) {
            return addr.do_send(Subscribe { sub, reply });
        }
        let this = self.clone();
        actix::spawn(async move {
            let record = match this.shared.catalog.activity(id).await {
                Ok(Some(record)) => record,
                Ok(None) => return reply.error(ErrorCode::NotFound, "no such activity"),
                Err(err) => {
                    tracing::warn!(%err, "activity store");
                    return reply.error(ErrorCode::Unavailable, "storage unavailable; retry");
                }
            };
            let now = now_ms();
            match record.state_at(now) {
                ActivityState::Scheduled | ActivityState::Live => {
                    this.ensure(id).do_send(Subscribe { sub, reply })
                }
                state => match this.shared.stock_left(id).await {
                    Ok(stock_left) => reply.ok(&ActivitySubscribeOk {
                        activity: id,
                        state,
                        starts_at: record.starts_at,
                        ends_at: record.ends_at,
                        stock_left,
                        server_time: now_ms(),
                    }),
                    Err(_) => reply.error(ErrorCode::Unavailable, "storage unavailable; retry"),
                },
            }
        });
    }

    /// `activity.unsubscribe`: returns whether the connection was subscribed.
    pub fn unsubscribe(&self, id: ActivityId, conn_id: u64) -> bool {
        self.shared
            .directory
            .get(&id)
            .is_some_and(|set| set.remove(conn_id))
    }

    /// The stored activity was created, edited or cancelled: its actor (started if needed)
    /// reloads it and re-arms its timers, or ends it.
    pub fn changed(&self, id: ActivityId) {
        match self.shared.registry.get(&id) {
            Some(addr) => addr.do_send(Reload),
            // A fresh actor loads the activity when it starts.
            None => {
                self.ensure(id);
            }
        }
    }

    /// Queues a pre-encoded frame (an `activity.broadcast`) to every subscriber on this node
    /// of a scheduled or live activity; returns how many sessions took it. (The merchant's
    /// followers and the other nodes are reached by [`crate::broadcasts`].)
    pub async fn broadcast(
        &self,
        id: ActivityId,
        frame: ByteString,
    ) -> Result<usize, ActivityError> {
        self.ensure(id)
            .send(Broadcast(frame))
            .await
            .map_err(|_| ActivityError::Unavailable)?
    }

    /// The activity's current view: from its actor when it runs (stock and sold-out state
    /// included), from the store otherwise. `NotFound` when it does not exist.
    pub async fn snapshot(&self, id: ActivityId) -> Result<ActivitySnapshot, ActivityError> {
        if let Some(addr) = self.shared.registry.get(&id)
            && let Ok(Ok(snapshot)) = addr.send(Snapshot).await
        {
            return Ok(snapshot);
        }
        let record = self
            .shared
            .catalog
            .activity(id)
            .await?
            .ok_or(ActivityError::NotFound)?;
        let stock_left = self.shared.stock_left(id).await?;
        let server_time = now_ms();
        Ok(ActivitySnapshot {
            state: record.state_at(server_time),
            record,
            stock_left,
            server_time,
        })
    }

    /// How many activity actors run on this node.
    pub fn running(&self) -> usize {
        self.shared.registry.len()
    }

    /// The users with a session on this node watching `id`.
    pub fn subscribed_users(&self, id: ActivityId) -> HashSet<UserId> {
        self.shared
            .directory
            .get(&id)
            .map(|set| set.users())
            .unwrap_or_default()
    }

    /// How many sessions on this node watch `id`.
    pub fn subscriber_count(&self, id: ActivityId) -> usize {
        self.shared.directory.get(&id).map_or(0, |set| set.len())
    }

    /// Test-only: hands `stock` to the running actor of `id` as if the claim desk had
    /// published it (it pushes `activity.stock`, and ends the activity when it is sold out
    /// for good).
    #[cfg(feature = "fault-injection")]
    pub fn inject_stock(&self, id: ActivityId, stock: crate::ports::claims::StockLevel) {
        if let Some(addr) = self.shared.registry.get(&id) {
            addr.do_send(crate::activity::claims::StockChanged(stock));
        }
    }

    /// Test-only: makes the running actor of `id` panic; returns whether one was running.
    #[cfg(feature = "fault-injection")]
    pub fn inject_panic(&self, id: ActivityId) -> bool {
        match self.shared.registry.get(&id) {
            Some(addr) => {
                addr.do_send(crate::activity::InjectPanic);
                true
            }
            None => false,
        }
    }
}

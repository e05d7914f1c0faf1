//! Applies the events other nodes publish on the cluster bus to this node: personal pushes to
//! the local devices of their user, each new post and broadcast to the local audience, and
//! activity edits and stock moves to the local actors and claim desk.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::broadcasts;
use crate::feeds::spawn_fan_out;
use crate::hub::Hub;
use crate::metric_catalogue as metric;
use crate::ports::cluster::ClusterEvent;

/// Applies `events` until the bus closes. Runs on an actor thread (fan-outs are spawned on it).
pub async fn apply(hub: Arc<Hub>, mut events: mpsc::Receiver<ClusterEvent>) {
    while let Some(event) = events.recv().await {
        metrics::counter!(metric::CLUSTER_EVENTS_IN, "event" => kind(&event)).increment(1);
        match event {
            ClusterEvent::User { user, frame } => {
                hub.users.deliver(user, &frame);
            }
            ClusterEvent::Post {
                author,
                animal,
                frame,
            } => spawn_fan_out(&hub, author, animal, frame, Default::default()),
            ClusterEvent::Broadcast {
                activity,
                merchant,
                frame,
            } => {
                let hub = hub.clone();
                actix::spawn(async move {
                    // Over or unknown here: nobody on this node is waiting for it.
                    let _ = broadcasts::deliver_here(&hub, activity, merchant, frame).await;
                });
            }
            ClusterEvent::ActivityChanged { activity } => hub.reload_activity(activity),
            ClusterEvent::StockMoved { activity } => {
                let claims = hub.claims.clone();
                actix::spawn(async move { claims.moved_elsewhere(activity).await });
            }
            ClusterEvent::Standing { user, standing } => hub.apply_standing(user, standing),
            ClusterEvent::FactsChanged { user } => hub.claims.refresh_facts(user),
        }
    }
    tracing::warn!("cluster bus closed; pushes from other nodes stop");
}

fn kind(event: &ClusterEvent) -> &'static str {
    match event {
        ClusterEvent::User { .. } => "user",
        ClusterEvent::Post { .. } => "post",
        ClusterEvent::Broadcast { .. } => "broadcast",
        ClusterEvent::ActivityChanged { .. } => "activity_changed",
        ClusterEvent::StockMoved { .. } => "stock_moved",
        ClusterEvent::Standing { .. } => "standing",
        ClusterEvent::FactsChanged { .. } => "facts_changed",
    }
}

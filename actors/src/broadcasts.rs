//! Merchant broadcasts: one `activity.broadcast` frame, encoded once by the caller, for the
//! activity's subscribers and the merchant's online followers on every node. On each node a
//! user gets it once: followers who already watch the activity are skipped.

use std::sync::Arc;

use bytestring::ByteString;
use corral_protocol::UserId;
use corral_protocol::ops::ActivityId;

use crate::activity::ActivityError;
use crate::feeds::spawn_fan_out;
use crate::hub::Hub;
use crate::ports::cluster::ClusterEvent;

/// Sends `frame` to `activity`'s audience on this node and tells the other nodes to do the
/// same. Returns how many of this node's subscriber sessions took it at once (followers are
/// reached on a spawned task). Refused when the activity is over or unknown here.
pub async fn broadcast(
    hub: &Arc<Hub>,
    activity: ActivityId,
    merchant: UserId,
    frame: ByteString,
) -> Result<usize, ActivityError> {
    let delivered = deliver_here(hub, activity, merchant, frame.clone()).await?;
    hub.users.bus().publish(ClusterEvent::Broadcast {
        activity,
        merchant,
        frame,
    });
    Ok(delivered)
}

/// This node's part of a broadcast: its subscribers now, then its online followers of
/// `merchant` who do not watch the activity.
pub(crate) async fn deliver_here(
    hub: &Arc<Hub>,
    activity: ActivityId,
    merchant: UserId,
    frame: ByteString,
) -> Result<usize, ActivityError> {
    let delivered = hub.activities.broadcast(activity, frame.clone()).await?;
    let watching = hub.activities.subscribed_users(activity);
    spawn_fan_out(hub, merchant, None, frame, watching);
    Ok(delivered)
}

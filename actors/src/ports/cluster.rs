//! The cluster port: events one node hands to every other node so that pushes reach users and
//! watchers wherever they are connected — personal pushes (claim updates, likes, comments),
//! new posts, merchant broadcasts, activity edits and stock moves. Room messages travel on the
//! chat [`Broker`](super::chat::Broker) instead, one topic per room.
//!
//! Events are best effort, like every push: state lives in the store, and a client that missed
//! one re-reads it (`claim` with the same key, `activity.subscribe`, `feed.timeline`).

use bytestring::ByteString;
use corral_protocol::UserId;
use corral_protocol::ops::{ActivityId, AnimalId};
use serde::{Deserialize, Serialize};

/// Something that happened on one node and matters to the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ClusterEvent {
    /// A pre-encoded push for every device of `user`.
    User {
        /// The recipient.
        user: UserId,
        /// The frame, exactly as sent to clients.
        frame: ByteString,
    },
    /// A new post: every node fans it out to its own online audience.
    Post {
        /// Its author.
        author: UserId,
        /// The animal it is tagged with (its followers are in the audience too).
        animal: Option<AnimalId>,
        /// The `feed.post` frame.
        frame: ByteString,
    },
    /// A merchant broadcast: every node sends it to the activity's subscribers and the
    /// merchant's online followers it holds.
    Broadcast {
        /// The activity.
        activity: ActivityId,
        /// Its merchant.
        merchant: UserId,
        /// The `activity.broadcast` frame.
        frame: ByteString,
    },
    /// The stored activity was edited or cancelled: reload its timers and claim rules.
    ActivityChanged {
        /// The activity.
        activity: ActivityId,
    },
    /// The activity's stock moved on another node: re-read it and tell local watchers.
    StockMoved {
        /// The activity.
        activity: ActivityId,
    },
    /// Something a promotion's rules look at changed for `user` (a follow, a post, an
    /// invitee, a payment): nodes holding the user's facts re-read them.
    FactsChanged {
        /// The user.
        user: UserId,
    },
    /// An account's role, token version or disabled flag changed: its tokens are checked
    /// against this from now on, and its sessions that lost rights are closed.
    Standing {
        /// The account.
        user: UserId,
        /// Its new standing.
        standing: crate::revocations::Standing,
    },
}

/// Carries [`ClusterEvent`]s to the other nodes (incoming ones arrive on the channel the
/// adapter was built with, and are applied by [`crate::cluster::apply`]).
pub trait ClusterBus: Send + Sync + 'static {
    /// Hands `event` to every other node; never waits.
    fn publish(&self, event: ClusterEvent);
}

/// A node alone: there is nobody to tell.
#[derive(Debug, Default, Clone, Copy)]
pub struct SoloBus;

impl ClusterBus for SoloBus {
    fn publish(&self, _event: ClusterEvent) {}
}

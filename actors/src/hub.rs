//! The hub: what every actor on a node shares — configuration, ports and node-wide registries.

use std::sync::Arc;
use std::time::Duration;

use corral_protocol::UserId;
use corral_protocol::limits::close;
use corral_protocol::ops::ActivityId;

use crate::activities::Activities;
use crate::admission::Admission;
use crate::claims::Claims;
use crate::connections::Connections;
use crate::metric_catalogue as metric;
use crate::outbound::CloseReason;
use crate::overload::Overload;
use crate::ports::cluster::ClusterEvent;
use crate::ports::{SocialStore, TokenVerifier};
use crate::registry::Arbiters;
use crate::revocations::{Revocations, Standing};
use crate::rooms::Rooms;
use crate::user_rates::UserRates;
use crate::users::UserSessions;

/// Per-connection behaviour (from the `[ws]` config section).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Close a socket that has not authenticated within this time.
    pub auth_timeout: Duration,
    /// Requests per second a connection may sustain.
    pub rate_per_sec: f64,
    /// Requests a connection may send in a burst.
    pub rate_burst: f64,
    /// Frames queued for a connection before it counts as a slow consumer.
    pub outbound_queue: usize,
}

/// Shared by every actor on the node.
pub struct Hub {
    /// Per-connection behaviour.
    pub session: SessionConfig,
    /// Verifies bearer tokens.
    pub verifier: Arc<dyn TokenVerifier>,
    /// Accounts' current standing, which tokens must match (shared with the verifier).
    pub revocations: Arc<Revocations>,
    /// Connection limits.
    pub admission: Arc<Admission>,
    /// Each user's request budget, shared by all of its connections (cluster-wide in a
    /// cluster).
    pub user_rates: Arc<UserRates>,
    /// Live connections.
    pub connections: Connections,
    /// Online users' sessions, for personal pushes (shared with the claim desk).
    pub users: Arc<UserSessions>,
    /// The threads room, user and activity actors run on.
    pub arbiters: Arc<Arbiters>,
    /// Chat rooms.
    pub rooms: Rooms,
    /// The claim desk (claims, cancels, payments, expiries).
    pub claims: Arc<Claims>,
    /// The current overload level (ordered shedding).
    pub overload: Arc<Overload>,
    /// Live promotions: their actors and subscribers.
    pub activities: Activities,
    /// Follows, posts and timelines.
    pub social: Arc<dyn SocialStore>,
}

impl Hub {
    /// The stored activity `id` was created, edited or cancelled on this node: this node's
    /// actor and claim desk reload it, and so do every other node's.
    pub fn activity_changed(&self, id: ActivityId) {
        self.reload_activity(id);
        self.users
            .bus()
            .publish(ClusterEvent::ActivityChanged { activity: id });
    }

    /// `user`'s role, token version or disabled flag changed on this node: sessions that
    /// lost rights are closed here and on every other node.
    pub fn standing_changed(&self, user: UserId, standing: Standing) {
        self.apply_standing(user, standing);
        self.users
            .bus()
            .publish(ClusterEvent::Standing { user, standing });
    }

    /// This node's part of [`Hub::standing_changed`] (also after a reload from the store).
    pub fn apply_standing(&self, user: UserId, standing: Standing) {
        if self.revocations.observe(user, standing) {
            self.close_sessions_of(user);
        }
    }

    /// Closes every session of `user` on this node: its credentials no longer hold.
    pub fn close_sessions_of(&self, user: UserId) {
        metrics::counter!(metric::SESSIONS_REVOKED).increment(1);
        self.users.close_all(
            user,
            CloseReason::graceful(close::POLICY, "credentials changed; log in again"),
        );
    }

    /// This node's part of [`Hub::activity_changed`].
    pub(crate) fn reload_activity(&self, id: ActivityId) {
        self.claims.invalidate(id);
        self.activities.changed(id);
    }
}

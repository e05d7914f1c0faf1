//! Per-user fan-in: every live session (device) of every user on this node, so a personal
//! push (a DM, a claim update, a feed event) reaches each of the user's devices — and, through
//! the cluster bus, the devices connected to other nodes.

use std::sync::Arc;

use bytestring::ByteString;
use corral_protocol::UserId;
use dashmap::DashMap;

use crate::outbound::{CloseReason, Lane, Outbound};
use crate::ports::cluster::{ClusterBus, ClusterEvent, SoloBus};

/// The node's online users and their sessions' outbound queues.
pub struct UserSessions {
    online: DashMap<UserId, Vec<(u64, Outbound)>>,
    bus: Arc<dyn ClusterBus>,
}

impl Default for UserSessions {
    /// A node alone.
    fn default() -> Self {
        UserSessions::new(Arc::new(SoloBus))
    }
}

impl UserSessions {
    /// No one online yet; personal pushes also go to the other nodes over `bus`.
    pub fn new(bus: Arc<dyn ClusterBus>) -> UserSessions {
        UserSessions {
            online: DashMap::new(),
            bus,
        }
    }

    /// The bus personal pushes cross nodes on.
    pub fn bus(&self) -> &dyn ClusterBus {
        self.bus.as_ref()
    }

    /// Records that connection `conn_id` speaks for `user`.
    pub fn attach(&self, user: UserId, conn_id: u64, out: Outbound) {
        self.online.entry(user).or_default().push((conn_id, out));
    }

    /// Closes every session of `user` on this node with `reason`.
    pub fn close_all(&self, user: UserId, reason: CloseReason) {
        if let Some(sessions) = self.online.get(&user) {
            for (_, out) in sessions.iter() {
                out.close(reason.clone());
            }
        }
    }

    /// Forgets connection `conn_id` of `user`.
    pub fn detach(&self, user: UserId, conn_id: u64) {
        self.online.remove_if_mut(&user, |_, sessions| {
            sessions.retain(|(id, _)| *id != conn_id);
            sessions.is_empty()
        });
    }

    /// Sends `frame` to every device of `user` in the cluster: this node's sessions now, the
    /// other nodes' through the bus (the user may be connected to several); returns how many
    /// sessions of this node took it.
    pub fn push(&self, user: UserId, frame: &ByteString) -> usize {
        self.publish(user, frame);
        self.deliver(user, frame)
    }

    /// Like [`UserSessions::push`], for a push about the user's own request (a claim's
    /// `claim.updated`): this node's sessions queue it in their reply lane, ahead of the
    /// crowd's fan-out, so a winner hears of its hold first. Other nodes queue it as a push.
    pub fn push_own(&self, user: UserId, frame: &ByteString) -> usize {
        self.publish(user, frame);
        self.deliver_in(user, frame, Lane::Reply, |_| false)
    }

    fn publish(&self, user: UserId, frame: &ByteString) {
        self.bus.publish(ClusterEvent::User {
            user,
            frame: frame.clone(),
        });
    }

    /// Sends `frame` to every session of `user` on this node; returns how many took it.
    pub fn deliver(&self, user: UserId, frame: &ByteString) -> usize {
        self.deliver_unless(user, frame, |_| false)
    }

    /// Sends `frame` to the sessions of `user` on this node whose connection id `skip` does
    /// not name; returns how many took it.
    pub fn deliver_unless(
        &self,
        user: UserId,
        frame: &ByteString,
        skip: impl Fn(u64) -> bool,
    ) -> usize {
        self.deliver_in(user, frame, Lane::Push, skip)
    }

    fn deliver_in(
        &self,
        user: UserId,
        frame: &ByteString,
        lane: Lane,
        skip: impl Fn(u64) -> bool,
    ) -> usize {
        let Some(sessions) = self.online.get(&user) else {
            return 0;
        };
        sessions
            .iter()
            .filter(|(id, out)| !skip(*id) && out.send_in(lane, frame.clone()))
            .count()
    }

    /// Whether `user` has a session on this node.
    pub fn is_online(&self, user: UserId) -> bool {
        self.online.contains_key(&user)
    }

    /// A snapshot of the users online on this node (no guard is kept).
    pub fn online_users(&self) -> Vec<UserId> {
        self.online.iter().map(|e| *e.key()).collect()
    }

    /// How many users are online on this node.
    pub fn online_count(&self) -> usize {
        self.online.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_to_every_device_and_forgets_closed_ones() {
        let users = UserSessions::default();
        let (a, rx_a) = Outbound::channel(4);
        let (b, rx_b) = Outbound::channel(4);
        users.attach(1, 10, a);
        users.attach(1, 11, b);
        assert_eq!(users.deliver(1, &ByteString::from("hi")), 2);
        assert_eq!(rx_a.recv().await.as_deref(), Some("hi"));
        assert_eq!(rx_b.recv().await.as_deref(), Some("hi"));
        users.detach(1, 10);
        assert_eq!(users.deliver(1, &ByteString::from("again")), 1);
        users.detach(1, 11);
        assert!(!users.is_online(1));
        assert_eq!(users.deliver(2, &ByteString::from("nobody")), 0);
    }

    #[test]
    fn a_push_about_the_users_own_claim_goes_ahead_of_queued_fan_out() {
        let users = UserSessions::default();
        let (a, rx_a) = Outbound::channel(4);
        users.attach(1, 10, a);
        assert_eq!(users.deliver(1, &ByteString::from("room")), 1);
        assert_eq!(users.push_own(1, &ByteString::from("claim")), 1);
        assert_eq!(rx_a.try_recv().as_deref(), Some("claim"));
        assert_eq!(rx_a.try_recv().as_deref(), Some("room"));
    }
}

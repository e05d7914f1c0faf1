//! The node's chat rooms: the registry that finds or starts a supervised [`Room`] actor per
//! room, over what the actors share ([`RoomsShared`]: limits, ports, where to deliver).

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::Addr;
use corral_protocol::UserId;
use corral_protocol::ops::RoomId;

use crate::overload::Overload;
use crate::ports::chat::{Broker, MessageStore, PresenceStore};
use crate::registry::{Arbiters, Registry};
use crate::room::{ChatConfig, MemberAdded, Room, RoomsShared};
use crate::users::UserSessions;

/// The node's rooms. Reads through to what the room actors share (`rooms.config`,
/// `rooms.store`, ...).
pub struct Rooms {
    shared: Arc<RoomsShared>,
}

impl Deref for Rooms {
    type Target = RoomsShared;

    fn deref(&self) -> &RoomsShared {
        &self.shared
    }
}

impl Rooms {
    /// Rooms whose actors run on `arbiters` and deliver to `users`' sessions.
    pub fn new(
        config: ChatConfig,
        store: Arc<dyn MessageStore>,
        broker: Arc<dyn Broker>,
        presence: Option<Arc<dyn PresenceStore>>,
        users: Arc<UserSessions>,
        overload: Arc<Overload>,
        arbiters: Arc<Arbiters>,
    ) -> Rooms {
        Rooms {
            shared: Arc::new(RoomsShared {
                config,
                store,
                broker,
                presence,
                users,
                overload,
                registry: Registry::new(arbiters),
                forgotten: AtomicU64::new(0),
            }),
        }
    }

    /// The room's actor, started (and loading its state) on first use.
    pub(crate) fn get(&self, room: RoomId) -> Addr<Room> {
        let shared = self.shared.clone();
        self.registry
            .get_or_start(&room, move || Room::new(room, shared))
    }

    /// Tells the room's actor, if it runs on this node, that `user` became a stored member
    /// (other nodes find out from the store on the user's first access).
    pub fn member_added(&self, room: RoomId, user: UserId) {
        if let Some(addr) = self.registry.get(&room) {
            addr.do_send(MemberAdded(user));
        }
    }

    /// How many room actors have stopped and left the registry since the node started (the
    /// memory trimmer's cue that memory was freed).
    pub fn forgotten(&self) -> u64 {
        self.forgotten.load(Ordering::Relaxed)
    }

    /// How many room actors run on this node.
    pub fn running(&self) -> usize {
        self.registry.len()
    }

    /// Makes the room's actor panic inside a handler (test-only: exercises supervision).
    /// Returns whether the room runs on this node.
    #[cfg(feature = "fault-injection")]
    pub fn inject_panic(&self, room: RoomId) -> bool {
        match self.registry.get(&room) {
            Some(addr) => {
                addr.do_send(crate::room::Crash);
                true
            }
            None => false,
        }
    }
}

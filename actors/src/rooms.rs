//! The node's chat rooms: their configuration, the ports they use, and the registry that finds
//! or starts a supervised [`Room`] actor per room.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::Addr;
use corral_protocol::UserId;
use corral_protocol::ops::RoomId;

use crate::hub::Hub;
use crate::ports::chat::{Broker, MessageStore, PresenceStore};
use crate::registry::{Arbiters, Registry};
use crate::room::{MemberAdded, Room};

/// Chat behaviour (from the `[chat]` config section).
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// Longest message text, in characters (longer: `too_large`).
    pub max_text_chars: usize,
    /// Rooms one connection may have joined at once (more: `limit_reached`).
    pub rooms_per_connection: usize,
    /// Users in one room: online users of a public room, stored members of a private one.
    pub members_per_room: usize,
    /// Newest messages each room keeps in memory; a re-join missing at most this many is
    /// answered from memory, a longer absence gets `truncated`.
    pub catch_up_window: usize,
    /// Largest `room.history` page.
    pub history_page_max: u32,
    /// How long a room waits for a missing seq (from another node) before reading it from
    /// the store.
    pub gap_wait: Duration,
    /// Presence is pushed in rooms with at most this many users online on the node; beyond
    /// it each join or leave would cost a frame per member (a crowd joining a large room is
    /// quadratic), so larger rooms send none and list only this many in `room.join`'s
    /// `online`.
    pub presence_max_online: usize,
    /// A room actor with no joined session and no request for this long stops (a later use
    /// starts it again from the store), so rooms and DMs used once do not pile up.
    pub idle_after: Duration,
    /// With a broker that can lose frames, how often a room with members checks the store
    /// for messages it missed (zero: only when the broker's link comes back).
    pub resync_every: Duration,
}

/// The node's rooms.
pub struct Rooms {
    /// Limits and windows.
    pub config: ChatConfig,
    /// Durable messages.
    pub store: Arc<dyn MessageStore>,
    /// Frames to and from the room's actors on other nodes.
    pub broker: Arc<dyn Broker>,
    /// Who is online on the other nodes (`None` on a single node: its rooms know everyone).
    pub presence: Option<Arc<dyn PresenceStore>>,
    registry: Registry<RoomId, Room>,
    /// Room actors that have left the registry since the node started.
    forgotten: AtomicU64,
}

impl Rooms {
    /// Rooms whose actors run on `arbiters`.
    pub fn new(
        config: ChatConfig,
        store: Arc<dyn MessageStore>,
        broker: Arc<dyn Broker>,
        presence: Option<Arc<dyn PresenceStore>>,
        arbiters: Arc<Arbiters>,
    ) -> Rooms {
        Rooms {
            config,
            store,
            broker,
            presence,
            registry: Registry::new(arbiters),
            forgotten: AtomicU64::new(0),
        }
    }

    /// The room's actor, started (and loading its state) on first use.
    pub(crate) fn get(&self, hub: &Arc<Hub>, room: RoomId) -> Addr<Room> {
        let hub = hub.clone();
        self.registry
            .get_or_start(&room, move || Room::new(room, hub))
    }

    /// Tells the room's actor, if it runs on this node, that `user` became a stored member
    /// (other nodes find out from the store on the user's first access).
    pub fn member_added(&self, room: RoomId, user: UserId) {
        if let Some(addr) = self.registry.get(&room) {
            addr.do_send(MemberAdded(user));
        }
    }

    /// Forgets the room's actor `addr` (it is stopping); a newer actor of the room stays.
    pub(crate) fn forget(&self, room: RoomId, addr: &Addr<Room>) {
        self.registry.remove_if_same(&room, addr);
        self.forgotten.fetch_add(1, Ordering::Relaxed);
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

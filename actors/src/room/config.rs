//! Chat behaviour: the `[chat]` config section as the room actors read it.

use std::time::Duration;

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

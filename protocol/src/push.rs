//! Server pushes: `{"ev": "<name>", ...}` frames the server sends unasked.

use serde::{Deserialize, Serialize};

use crate::UserId;
use crate::ops::{ChatMessage, PresenceState, RoomId};

/// Every push event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev")]
#[non_exhaustive]
pub enum Push {
    /// The server is shutting down; reconnect after the given delay (jittered per client so
    /// reconnects spread out). The socket closes with 1001 shortly after.
    #[serde(rename = "server.going_away")]
    GoingAway {
        /// How long to wait before reconnecting.
        reconnect_after_ms: u64,
    },

    // Chat.
    /// A message in a room the client joined (or a DM to or from its user).
    #[serde(rename = "room.message")]
    RoomMessage(ChatMessage),
    /// A user's first session joined a room, or their last one left it.
    #[serde(rename = "presence")]
    Presence {
        /// The room.
        room: RoomId,
        /// Who.
        user: UserId,
        /// `joined` or `left`.
        state: PresenceState,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn going_away_round_trips() {
        let push = Push::GoingAway {
            reconnect_after_ms: 1500,
        };
        let text = crate::reply::push(&push);
        assert_eq!(
            text,
            r#"{"ev":"server.going_away","reconnect_after_ms":1500}"#
        );
        assert_eq!(serde_json::from_str::<Push>(&text).ok(), Some(push));
    }

    #[test]
    fn chat_pushes_round_trip() {
        let push = Push::RoomMessage(ChatMessage {
            room: 3,
            seq: 7,
            from: 2,
            text: "hi".into(),
            ts: 1000,
            client_msg_id: "c1".into(),
        });
        let text = crate::reply::push(&push);
        assert_eq!(
            text,
            r#"{"ev":"room.message","room":3,"seq":7,"from":2,"text":"hi","ts":1000,"client_msg_id":"c1"}"#
        );
        assert_eq!(serde_json::from_str::<Push>(&text).ok(), Some(push));
        let push = Push::Presence {
            room: 3,
            user: 2,
            state: PresenceState::Left,
        };
        let text = crate::reply::push(&push);
        assert_eq!(
            text,
            r#"{"ev":"presence","room":3,"user":2,"state":"left"}"#
        );
        assert_eq!(serde_json::from_str::<Push>(&text).ok(), Some(push));
    }
}

//! How a stored chat message is read back: shared by the message store's reads and the
//! batcher's repeat detection (which returns the stored original), so neither imports the other.

use corral_protocol::ops::ChatMessage;
use sqlx::Row;
use sqlx::any::AnyRow;

/// Reads a `messages` row selected as `room_id, seq, user_id, text, ts, client_msg_id`.
pub(super) fn message_from_row(row: &AnyRow) -> Result<ChatMessage, sqlx::Error> {
    Ok(ChatMessage {
        room: row.try_get(0)?,
        seq: row.try_get::<i64, _>(1)? as u64,
        from: row.try_get(2)?,
        text: row.try_get(3)?,
        ts: row.try_get(4)?,
        client_msg_id: row.try_get(5)?,
    })
}

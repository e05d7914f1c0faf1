-- Chat: rooms (public, private, and two-member DM rooms), private-room members, messages.
CREATE TABLE rooms (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT    NOT NULL,
    private    BOOLEAN NOT NULL DEFAULT FALSE,
    owner_id   BIGINT  NOT NULL REFERENCES users (id),
    -- 'lo:hi' user ids for a DM room, NULL otherwise; one DM room per pair.
    dm_key     TEXT    UNIQUE,
    -- Changes only when the room's history is reset, so clients can tell a reset from a gap.
    epoch      BIGINT  NOT NULL,
    -- The newest message's seq: the group-commit batcher reserves seqs here, under the row lock.
    last_seq   BIGINT  NOT NULL DEFAULT 0,
    created_at BIGINT  NOT NULL
);

CREATE TABLE room_members (
    room_id  BIGINT  NOT NULL REFERENCES rooms (id),
    user_id  BIGINT  NOT NULL REFERENCES users (id),
    added_at BIGINT  NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

CREATE TABLE messages (
    room_id       BIGINT  NOT NULL REFERENCES rooms (id),
    seq           BIGINT  NOT NULL,
    user_id       BIGINT  NOT NULL,
    client_msg_id TEXT    NOT NULL,
    text          TEXT    NOT NULL,
    ts            BIGINT  NOT NULL,
    PRIMARY KEY (room_id, seq)
);

-- Idempotency: one message per (room, sender, client_msg_id); also serves the batch lookup.
CREATE UNIQUE INDEX messages_client_key ON messages (room_id, client_msg_id, user_id);

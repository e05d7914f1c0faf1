-- Animal claims: one row per (user, activity, idempotency key), written once when a hold is
-- taken and then moved through its states by conditional updates (so every change happens
-- once, even with several nodes). `item_id` is an `activity_items.id`; the activity tables
-- belong to the promotions migration, so they are referenced by value only.
CREATE TABLE claims (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    activity_id INTEGER NOT NULL,
    item_id     INTEGER NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    claim_key   TEXT    NOT NULL,
    -- held | confirmed | expired | cancelled | refund_due
    status      TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (user_id, activity_id, claim_key)
);
CREATE INDEX claims_activity_status ON claims (activity_id, status, expires_at);

-- Payment provider events, recorded once (a second delivery of an event id is a no-op).
CREATE TABLE payment_events (
    event_id     TEXT    PRIMARY KEY,
    claim_id     INTEGER NOT NULL,
    amount_cents INTEGER NOT NULL,
    -- pending (being applied) | confirmed | refund_due | ignored
    outcome      TEXT    NOT NULL,
    received_at  INTEGER NOT NULL
);

-- Webhook nonces seen within the freshness window (replays are refused); pruned as they age.
CREATE TABLE webhook_nonces (
    nonce   TEXT    PRIMARY KEY,
    seen_at INTEGER NOT NULL
);
CREATE INDEX webhook_nonces_seen ON webhook_nonces (seen_at);

-- Promotions: merchants, their animals, live activities (promotions) and their items, and the
-- audit log of merchant and admin actions. Times are epoch milliseconds; booleans are BOOLEAN.
CREATE TABLE merchants (
    user_id    BIGINT  PRIMARY KEY REFERENCES users (id),
    name       TEXT    NOT NULL,
    approved   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT  NOT NULL
);

CREATE TABLE animals (
    id          BIGSERIAL PRIMARY KEY,
    merchant_id BIGINT  NOT NULL REFERENCES users (id),
    name        TEXT    NOT NULL,
    species     TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    image_urls  TEXT    NOT NULL DEFAULT '[]',
    price_cents BIGINT  NOT NULL,
    slots       BIGINT  NOT NULL,
    retired     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX animals_by_merchant ON animals (merchant_id, id);

CREATE TABLE activities (
    id             BIGSERIAL PRIMARY KEY,
    merchant_id    BIGINT  NOT NULL REFERENCES users (id),
    title          TEXT    NOT NULL,
    starts_at      BIGINT  NOT NULL,
    ends_at        BIGINT  NOT NULL,
    per_user_limit BIGINT  NOT NULL,
    hold_seconds   BIGINT  NOT NULL,
    status         TEXT    NOT NULL DEFAULT 'scheduled',
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);
-- Node start-up finds the activities whose timers must be armed.
CREATE INDEX activities_by_status_end ON activities (status, ends_at);
CREATE INDEX activities_by_merchant ON activities (merchant_id, id);

CREATE TABLE activity_items (
    id          BIGSERIAL PRIMARY KEY,
    activity_id BIGINT  NOT NULL REFERENCES activities (id),
    animal_id   BIGINT  NOT NULL REFERENCES animals (id),
    slots       BIGINT  NOT NULL
);
CREATE INDEX activity_items_by_activity ON activity_items (activity_id, id);

CREATE TABLE audit_log (
    id       BIGSERIAL PRIMARY KEY,
    actor_id BIGINT  NOT NULL,
    action   TEXT    NOT NULL,
    subject  TEXT    NOT NULL,
    detail   TEXT    NOT NULL DEFAULT '{}',
    at       BIGINT  NOT NULL
);
CREATE INDEX audit_log_by_subject ON audit_log (subject, id);

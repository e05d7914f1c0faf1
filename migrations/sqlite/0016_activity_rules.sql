-- Activity rules (issue 16): a promotion's audience, requirements and reward as one JSON text
-- (a new kind of rule needs no migration); invite codes and who invited whom; and the
-- audience each promotion saw, for its funnel.
ALTER TABLE activities ADD COLUMN rules TEXT NOT NULL DEFAULT '{}';

-- Every account has an invite code; `invited_by` is set once, at registration, to an account
-- that existed before (so no one invites themselves and invitations never loop).
ALTER TABLE users ADD COLUMN invite_code TEXT;
ALTER TABLE users ADD COLUMN invited_by INTEGER REFERENCES users (id) CHECK (invited_by < id);
UPDATE users SET invite_code = lower(hex(randomblob(5))) WHERE invite_code IS NULL;
CREATE UNIQUE INDEX users_invite_code ON users (invite_code);
CREATE INDEX users_invited_by ON users (invited_by) WHERE invited_by IS NOT NULL;

-- One row per user who looked at a promotion (viewed it, subscribed, or claimed), with the
-- last eligibility decided for them: `unmet` is the JSON array of the rule names they miss.
CREATE TABLE activity_audience (
    activity_id INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    subscribed  INTEGER NOT NULL DEFAULT 0,
    evaluated   INTEGER NOT NULL DEFAULT 0,
    eligible    INTEGER NOT NULL DEFAULT 0,
    unmet       TEXT    NOT NULL DEFAULT '[]',
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (activity_id, user_id)
);

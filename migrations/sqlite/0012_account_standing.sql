-- Revocable tokens: a token carries the token_version it was issued under and stops working
-- when an admin changes the account's role or disables it (both raise the version).
ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
-- The accounts every node keeps in memory: all but fresh users.
CREATE INDEX users_standing ON users (id) WHERE role <> 'user' OR disabled OR token_version > 0;
-- Usernames are unique whatever their case (`alice` and `ALICE` are one account).
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

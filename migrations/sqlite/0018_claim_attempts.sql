-- Decisions of a key after reconciliation voided one (issue 20). In a cluster a claim takes
-- its slot in Redis before its row commits; when the row takes longer than two reconciliation
-- passes, the key is voided: a row with status 'void' is written in its place (so the late
-- commit finds it and lands nothing) and the slot is given back. The client was never told
-- `held`, so a retry of the key is decided afresh: `attempt` numbers the decisions of a key
-- (the arbiter knows the n-th one by the key and n), a fresh decision revives the void row
-- only while it still stands at the attempt before, and a void of attempt n only replaces a
-- void row of an earlier attempt, so a stale commit can never land next to a fresh one.
ALTER TABLE claims ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1;

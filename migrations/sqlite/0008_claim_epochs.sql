-- The fencing epoch of each activity's claim counters in Redis (cluster mode): raised before
-- every rebuild of the counters; a hold row commits only under the epoch it was decided in.
CREATE TABLE claim_epochs (
    activity_id BIGINT PRIMARY KEY,
    epoch BIGINT NOT NULL
);

-- Coupon rewards (issue 16): the pool of codes a merchant uploads for a coupon promotion.
-- `claim_id` is the active (held or confirmed) claim the code is given to, NULL while free:
-- it is set in the transaction that commits the hold and cleared in the one that expires or
-- cancels it, so a code belongs to at most one claim (unique index) and none is lost.
CREATE TABLE coupon_codes (
    id          BIGSERIAL PRIMARY KEY,
    activity_id BIGINT NOT NULL,
    code        TEXT   NOT NULL,
    claim_id    BIGINT,
    created_at  BIGINT NOT NULL,
    UNIQUE (activity_id, code)
);
CREATE UNIQUE INDEX coupon_codes_claim ON coupon_codes (claim_id) WHERE claim_id IS NOT NULL;
CREATE INDEX coupon_codes_free ON coupon_codes (activity_id, id) WHERE claim_id IS NULL;

//! Activity rules end to end (SPEC section 13), on a real node, embedded and Redis +
//! PostgreSQL: every rule kind with an eligible and an ineligible user, rules validated and
//! frozen at the start, a follow during the countdown that makes a user eligible, a crowd of
//! which half is outside the rules (with the facts read during it counted), invitations and
//! their abuse, and the funnel. One file per topic:
//!
//! - [`fixtures`]: rules set on a seeded promotion, facts seeded in SQL, metrics read back
//! - [`kinds`]: each rule kind, eligible and ineligible, through subscribe and claim
//! - [`http`]: `rules` on create and update (validation naming the field, frozen at the
//!   start), the funnel, the countdown follow
//! - [`invites`]: invite codes, crediting the inviter, refused codes and loops
//! - [`crowd`]: 2,000 clients, half ineligible, no facts read during the crowd
//! - [`coupons`]: coupon uploads, and a winner's code through hold, retry, expiry and cancel
//! - [`coupon_crowd`]: 2,000 clients, 100 codes, two node processes, one SIGKILLed

mod coupon_crowd;
mod coupons;
mod crowd;
mod fixtures;
mod http;
mod invites;
mod kinds;

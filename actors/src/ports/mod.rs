//! Ports: every trait the actors need from the outside world, one file per area, implemented
//! by the server crate (SQL, Redis and in-memory adapters) and by test doubles.
//!
//! - [`auth`]: checking bearer tokens.
//! - [`activities`]: the activity catalogue, the one model of an activity and its items.
//! - [`claims`]: the claim ledger that decides and records claims.
//! - [`chat`]: the durable message store, the room broker, room presence.
//! - [`social`]: the follow graph, posts, likes, comments and feed audiences.
//! - [`rates`]: the cluster's per-user request budgets.
//! - [`rules`]: a user's facts for a promotion's rules, and the funnel's notes.
//! - [`cluster`]: events handed from one node to the others.
//!
//! Every port error that stands for a storage failure keeps its cause as a `#[source]`.

pub mod activities;
pub mod auth;
pub mod chat;
pub mod claims;
pub mod cluster;
pub mod rates;
pub mod rules;
pub mod social;

pub use activities::{ActivityCatalog, ActivityItem, ActivityRecord, CatalogError};
pub use auth::{AuthError, Identity, TokenVerifier};
pub use rules::{AudienceNote, FactsQuery, RulesError, RulesStore, UserFacts};
pub use social::{
    CommentAdded, FollowCounts, LikeChange, NewPost, SocialError, SocialStore, UserPage,
};

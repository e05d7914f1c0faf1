//! Corral's actors and the ports they talk to.
//!
//! Actors here know actix, the protocol types and the [`ports`]; they never touch SQL, Redis
//! or HTTP. The server crate implements the ports and wires the actors up; everything outside
//! this crate reaches the actors through small handle types (e.g. [`SessionHandle`]), so the
//! actor runtime stays an implementation detail.

pub mod activities;
pub mod activity;
pub mod admission;
pub mod broadcasts;
pub mod claims;
pub mod clock;
pub mod cluster;
pub mod connections;
pub mod feeds;
pub mod hub;
pub mod metric_catalogue;
pub mod outbound;
pub mod overload;
pub mod ports;
pub mod rate_limit;
pub mod registry;
pub mod replier;
pub mod retry_hint;
pub mod revocations;
pub mod room;
pub mod rooms;
pub mod rules;
pub mod session;
mod supervision;
pub mod user_rates;
pub mod users;

pub use activities::Activities;
pub use activity::subscribers::Subscriber;
pub use activity::{ActivityError, ActivitySnapshot};
pub use admission::{Admission, AdmissionConfig, ConnPermit, Refusal, UserPermit};
pub use connections::Connections;
pub use hub::{Hub, SessionConfig};
pub use outbound::{CloseReason, Lane, Outbound, OutboundRx};
pub use overload::{MemberPacing, Overload, OverloadConfig, Priority};
pub use ports::activities::{ActivityCatalog, ActivityItem, ActivityRecord, CatalogError};
pub use ports::{AuthError, Identity, TokenVerifier};
pub use registry::{Arbiters, Registry};
pub use revocations::{Revocations, Standing};
pub use room::ChatConfig;
pub use rooms::Rooms;
pub use session::SessionHandle;
pub use user_rates::UserRates;
pub use users::UserSessions;

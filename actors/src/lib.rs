//! Corral's actors and the ports they talk to.
//!
//! Actors here know actix, the protocol types and the [`ports`]; they never touch SQL, Redis
//! or HTTP. The server crate implements the ports and wires the actors up; everything outside
//! this crate reaches the actors through small handle types (e.g. [`SessionHandle`]), so the
//! actor runtime stays an implementation detail.

pub mod admission;
pub mod clock;
pub mod connections;
pub mod feeds;
pub mod hub;
pub mod outbound;
pub mod ports;
pub mod rate_limit;
pub mod registry;
pub mod replier;
pub mod session;
pub mod users;

pub use admission::{Admission, AdmissionConfig, ConnPermit, Refusal, UserPermit};
pub use connections::Connections;
pub use hub::{Hub, SessionConfig};
pub use outbound::{CloseReason, CloseSignal, Outbound, OutboundRx};
pub use ports::{AuthError, Identity, TokenVerifier};
pub use registry::{Arbiters, Registry};
pub use session::SessionHandle;
pub use users::UserSessions;

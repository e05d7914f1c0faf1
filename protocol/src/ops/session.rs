//! Session-level ops: `auth` and `time.sync`.

use serde::{Deserialize, Serialize};

use crate::{EpochMs, Role, UserId};

/// `auth {token}`: authenticates the socket with a JWT from `POST /api/v1/auth/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthParams {
    /// The bearer token.
    pub token: String,
}

/// Reply to `auth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthOk {
    /// Who the socket now speaks for.
    pub user_id: UserId,
    /// What they may do.
    pub role: Role,
    /// The server clock at the time of the reply.
    pub server_time: EpochMs,
}

/// `time.sync {client_time}`: NTP-style clock offset estimation. The client computes
/// `offset = server_time - (client_time + now) / 2` from the reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSyncParams {
    /// The client's clock when it sent the request.
    pub client_time: EpochMs,
}

/// Reply to `time.sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSyncOk {
    /// Echo of the request's `client_time`.
    pub client_time: EpochMs,
    /// The server clock when it handled the request.
    pub server_time: EpochMs,
}

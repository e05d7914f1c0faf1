//! The auth port: checking the bearer tokens connections and requests present.

use corral_protocol::{Role, UserId};

/// Who a connection speaks for, once authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The user.
    pub user_id: UserId,
    /// Their role, as carried by the token.
    pub role: Role,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token has expired.
    #[error("token expired")]
    Expired,
    /// Bad signature, wrong issuer, unreadable claims.
    #[error("invalid token")]
    Invalid,
    /// The account's role changed or it was disabled since the token was issued.
    #[error("token revoked; log in again")]
    Revoked,
}

impl AuthError {
    /// The metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Expired => "expired",
            AuthError::Invalid => "invalid",
            AuthError::Revoked => "revoked",
        }
    }
}

/// Checks bearer tokens (JWTs signed with the node's key).
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies `token` and returns the identity it carries.
    fn verify(&self, token: &str) -> Result<Identity, AuthError>;
}

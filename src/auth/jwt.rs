//! HS256 JWTs: issued at login, verified on every WebSocket `auth` and HTTP request. Tokens
//! from an upstream service that shares the key and issuer are accepted alike.

use std::sync::Arc;

use corral_actors::{AuthError, Identity, Revocations, Standing, TokenVerifier};
use corral_protocol::{Role, UserId};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::config::Secret;

/// The claims Corral reads and writes.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The user id, as a decimal string.
    sub: String,
    /// `user`, `merchant` or `admin`.
    role: Role,
    /// Issuer.
    iss: String,
    /// Issued at (seconds).
    iat: u64,
    /// Expiry (seconds).
    exp: u64,
    /// The account's token version when issued (0, or absent, for a never-changed account).
    #[serde(default)]
    ver: i64,
}

/// Signing and verification keys.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    ttl_secs: u64,
    revocations: Arc<Revocations>,
}

impl JwtKeys {
    /// Keys from a shared secret.
    pub fn new(secret: &Secret, issuer: &str, ttl_secs: u64) -> JwtKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 5;
        JwtKeys {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            issuer: issuer.to_string(),
            ttl_secs,
            revocations: Arc::default(),
        }
    }

    /// The account standings tokens are checked against (the hub shares them).
    pub fn revocations(&self) -> Arc<Revocations> {
        self.revocations.clone()
    }

    /// Issues a token for `user` with `role`, under the account's current token version.
    /// `role` must be the account's stored role (every caller has just read or written it):
    /// issuing records it as the account's role on this node, so the token is accepted here
    /// before the next refresh of the standings.
    pub fn issue(&self, user: UserId, role: Role) -> Result<String, jsonwebtoken::errors::Error> {
        let current = self.revocations.current(user);
        self.revocations.observe(user, Standing { role, ..current });
        let now = (corral_actors::clock::now_ms() / 1000) as u64;
        let claims = Claims {
            sub: user.to_string(),
            role,
            iss: self.issuer.clone(),
            iat: now,
            exp: now + self.ttl_secs,
            ver: current.version,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }
}

impl TokenVerifier for JwtKeys {
    fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data =
            decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => AuthError::Expired,
                    _ => AuthError::Invalid,
                }
            })?;
        let user_id = data.claims.sub.parse().map_err(|_| AuthError::Invalid)?;
        // A map lookup: no database read on the hot path.
        if !self
            .revocations
            .accepts(user_id, data.claims.role, data.claims.ver)
        {
            return Err(AuthError::Revoked);
        }
        Ok(Identity {
            user_id,
            role: data.claims.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_forged_ones_do_not() {
        let keys = JwtKeys::new(&Secret::new("k1"), "corral", 60);
        let token = keys.issue(42, Role::Merchant).unwrap_or_default();
        assert_eq!(
            keys.verify(&token),
            Ok(Identity {
                user_id: 42,
                role: Role::Merchant
            })
        );
        let other = JwtKeys::new(&Secret::new("k2"), "corral", 60);
        assert_eq!(other.verify(&token), Err(AuthError::Invalid));
        let other_issuer = JwtKeys::new(&Secret::new("k1"), "elsewhere", 60);
        assert_eq!(other_issuer.verify(&token), Err(AuthError::Invalid));
        assert_eq!(keys.verify("not.a.token"), Err(AuthError::Invalid));
    }

    #[test]
    fn tokens_die_with_a_role_change() {
        let keys = JwtKeys::new(&Secret::new("k1"), "corral", 60);
        keys.revocations().observe(
            9,
            Standing {
                role: Role::Merchant,
                version: 0,
                disabled: false,
            },
        );
        let old = keys.issue(9, Role::Merchant).unwrap_or_default();
        assert!(keys.verify(&old).is_ok());
        keys.revocations().observe(
            9,
            Standing {
                role: Role::User,
                version: 1,
                disabled: false,
            },
        );
        assert_eq!(keys.verify(&old), Err(AuthError::Revoked));
        let new = keys.issue(9, Role::User).unwrap_or_default();
        assert!(keys.verify(&new).is_ok());
    }
}

//! HS256 JWTs: issued at login, verified on every WebSocket `auth` and HTTP request. Tokens
//! from an upstream service that shares the key and issuer are accepted alike.

use corral_actors::{AuthError, Identity, TokenVerifier};
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
}

/// Signing and verification keys.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    ttl_secs: u64,
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
        }
    }

    /// Issues a token for `user` with `role`.
    pub fn issue(&self, user: UserId, role: Role) -> Result<String, jsonwebtoken::errors::Error> {
        let now = (corral_actors::clock::now_ms() / 1000) as u64;
        let claims = Claims {
            sub: user.to_string(),
            role,
            iss: self.issuer.clone(),
            iat: now,
            exp: now + self.ttl_secs,
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
}

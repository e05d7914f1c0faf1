//! HS256 JWTs: issued at login, verified on every WebSocket `auth` and HTTP request. Tokens
//! from an upstream service that shares the key and issuer are accepted alike.
//!
//! Only HS256 is ever issued or accepted, so it is implemented here with `hmac` and `sha2`
//! (RFC 7519 compact form) rather than through a JWT library whose other algorithms pull in
//! RSA and elliptic-curve stacks. A token whose header names any other algorithm (`none`
//! included) is refused before its signature is looked at.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use corral_actors::{AuthError, Identity, Revocations, Standing, TokenVerifier};
use corral_protocol::{Role, UserId};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::Secret;

/// Seconds of clock skew tolerated on `exp`.
const LEEWAY_SECS: u64 = 5;

/// A token could not be written (its claims did not serialise).
#[derive(Debug, thiserror::Error)]
#[error("token: {0}")]
pub struct TokenError(#[from] serde_json::Error);

/// The JOSE header: only the algorithm matters.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
}

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
    #[serde(default)]
    iat: u64,
    /// Expiry (seconds).
    exp: u64,
    /// The account's token version when issued (0, or absent, for a never-changed account).
    #[serde(default)]
    ver: i64,
}

/// Signing and verification keys.
pub struct JwtKeys {
    mac: Hmac<Sha256>,
    issuer: String,
    ttl_secs: u64,
    revocations: Arc<Revocations>,
}

impl JwtKeys {
    /// Keys from a shared secret.
    pub fn new(secret: &Secret, issuer: &str, ttl_secs: u64) -> JwtKeys {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose_secret().as_bytes())
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        JwtKeys {
            mac,
            issuer: issuer.to_string(),
            ttl_secs,
            revocations: Arc::default(),
        }
    }

    fn signature(&self, signing_input: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(signing_input.as_bytes());
        mac
    }

    /// The account standings tokens are checked against (the hub shares them).
    pub fn revocations(&self) -> Arc<Revocations> {
        self.revocations.clone()
    }

    /// Issues a token for `user` with `role`, under the account's current token version.
    /// `role` must be the account's stored role (every caller has just read or written it):
    /// issuing records it as the account's role on this node, so the token is accepted here
    /// before the next refresh of the standings.
    pub fn issue(&self, user: UserId, role: Role) -> Result<String, TokenError> {
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
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?);
        let input = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(self.signature(&input).finalize().into_bytes());
        Ok(format!("{input}.{signature}"))
    }

    /// The claims of a well-formed, correctly signed HS256 token (not yet checked for expiry
    /// or issuer).
    fn decode(&self, token: &str) -> Option<Claims> {
        let (input, signature) = token.rsplit_once('.')?;
        let (header, payload) = input.split_once('.')?;
        if payload.contains('.') {
            return None;
        }
        let header: JoseHeader =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.alg != "HS256" {
            return None;
        }
        // `verify_slice` compares in constant time.
        self.signature(input)
            .verify_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?)
            .ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }
}

impl TokenVerifier for JwtKeys {
    fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let claims = self.decode(token).ok_or(AuthError::Invalid)?;
        if claims.iss != self.issuer {
            return Err(AuthError::Invalid);
        }
        let now = (corral_actors::clock::now_ms() / 1000) as u64;
        if now > claims.exp.saturating_add(LEEWAY_SECS) {
            return Err(AuthError::Expired);
        }
        let user_id = claims.sub.parse().map_err(|_| AuthError::Invalid)?;
        // A map lookup: no database read on the hot path.
        if !self.revocations.accepts(user_id, claims.role, claims.ver) {
            return Err(AuthError::Revoked);
        }
        Ok(Identity {
            user_id,
            role: claims.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_forged_ones_do_not() {
        let keys = JwtKeys::new(&Secret::from("k1"), "corral", 60);
        let token = keys.issue(42, Role::Merchant).unwrap_or_default();
        assert_eq!(
            keys.verify(&token),
            Ok(Identity {
                user_id: 42,
                role: Role::Merchant
            })
        );
        let other = JwtKeys::new(&Secret::from("k2"), "corral", 60);
        assert_eq!(other.verify(&token), Err(AuthError::Invalid));
        let other_issuer = JwtKeys::new(&Secret::from("k1"), "elsewhere", 60);
        assert_eq!(other_issuer.verify(&token), Err(AuthError::Invalid));
        assert_eq!(keys.verify("not.a.token"), Err(AuthError::Invalid));
    }

    #[test]
    fn tokens_die_with_a_role_change() {
        let keys = JwtKeys::new(&Secret::from("k1"), "corral", 60);
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

    #[test]
    fn only_hs256_is_accepted() {
        let keys = JwtKeys::new(&Secret::from("k1"), "corral", 60);
        let token = keys.issue(5, Role::User).unwrap_or_default();
        let (_, rest) = token.split_once('.').unwrap_or_default();
        // The same payload and signature under `alg: none`, or with the signature dropped.
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(
            keys.verify(&format!("{none}.{rest}")),
            Err(AuthError::Invalid)
        );
        let (unsigned, _) = token.rsplit_once('.').unwrap_or_default();
        assert_eq!(
            keys.verify(&format!("{unsigned}.")),
            Err(AuthError::Invalid)
        );
        assert_eq!(keys.verify(&format!("{token}.x")), Err(AuthError::Invalid));
        // A flipped payload byte breaks the signature.
        let mut tampered = token.clone().into_bytes();
        let at = token.find('.').unwrap_or(0) + 3;
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap_or_default();
        assert_eq!(keys.verify(&tampered), Err(AuthError::Invalid));
    }

    #[test]
    fn expiry_allows_only_the_leeway() {
        let keys = JwtKeys::new(&Secret::from("k1"), "corral", 0);
        let token = keys.issue(5, Role::User).unwrap_or_default();
        assert!(keys.verify(&token).is_ok(), "within the leeway");
        let old = Claims {
            sub: "5".into(),
            role: Role::User,
            iss: "corral".into(),
            iat: 1,
            exp: 2,
            ver: 0,
        };
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&old).unwrap_or_default());
        let input = format!("{header}.{payload}");
        let sig = URL_SAFE_NO_PAD.encode(keys.signature(&input).finalize().into_bytes());
        assert_eq!(
            keys.verify(&format!("{input}.{sig}")),
            Err(AuthError::Expired)
        );
    }
}

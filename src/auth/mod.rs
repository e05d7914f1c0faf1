//! Authentication: password hashing, token issuing and verification, the signing key.

pub mod jwt;
pub mod password;
pub mod secret;

pub use jwt::JwtKeys;

//! Authentication: password hashing, login limits, token issuing and verification, the
//! signing key.

pub mod jwt;
pub mod password;
pub mod secret;
pub mod throttle;

pub use jwt::JwtKeys;

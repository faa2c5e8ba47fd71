//! Cryptographic adapters for Ordo's identity ports: Argon2id password hashing off
//! the async executor, and HS256 access tokens with issuer, audience and a small
//! clock-skew leeway.

mod jwt;
mod password;

pub use jwt::{JwtConfig, JwtTokens};
pub use password::Argon2Hasher;

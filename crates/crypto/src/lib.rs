//! Cryptographic adapters for Ordo's identity ports: Argon2id password hashing off
//! the async executor, HS256 access tokens with issuer, audience and a small
//! clock-skew leeway, and random refresh tokens and API keys stored by their
//! SHA-256 digest.

mod api_keys;
mod jwt;
mod password;
mod refresh;

pub use api_keys::RandomApiKeys;
pub use jwt::{JwtConfig, JwtTokens};
pub use password::Argon2Hasher;
pub use refresh::RandomTokens;

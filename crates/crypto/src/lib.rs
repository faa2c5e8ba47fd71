//! Cryptographic adapters for Ordo's identity ports: Argon2id password hashing off
//! the async executor, HS256 access tokens with issuer, audience and a small
//! clock-skew leeway, random refresh tokens and API keys stored by their SHA-256
//! digest, and the data keyring that seals personal values at rest (AES-256-GCM,
//! HMAC blind indexes).

mod api_keys;
mod jwt;
mod password;
mod refresh;
mod sealing;

pub use api_keys::RandomApiKeys;
pub use jwt::{JwtConfig, JwtTokens};
pub use password::Argon2Hasher;
pub use refresh::RandomTokens;
pub use sealing::{DataKeyring, MIN_DATA_KEY_LEN};

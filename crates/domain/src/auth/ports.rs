use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Password, PasswordHash, Principal, Role, UserId};

/// Turns passwords into hashes and checks them. Hashing is deliberately slow and
/// memory-hard; implementations run it off the async executor.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// A new hash of `password`, with a fresh random salt.
    ///
    /// # Errors
    /// When hashing fails (it does not for valid parameters).
    async fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash>;

    /// Whether `password` matches `hash`. Takes as long for a wrong password as for
    /// the right one.
    ///
    /// # Errors
    /// When `hash` is not a hash this hasher can read.
    async fn verify(&self, password: &Password, hash: &PasswordHash) -> anyhow::Result<bool>;
}

/// What an access token says: who, what kind, which role, from when to when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessClaims {
    /// The caller.
    pub principal: Principal,
    /// When the token was issued.
    pub issued_at: DateTime<Utc>,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// Why an access token was refused. Callers answer all of them alike (401), the
/// variant is for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    /// Not a token of ours: malformed, wrong algorithm, bad signature, wrong issuer
    /// or audience.
    #[error("the token is not one this service issued: {0}")]
    Forged(String),
    /// Past its expiry (beyond the allowed clock skew).
    #[error("the token has expired")]
    Expired,
    /// Issued in the future (beyond the allowed clock skew).
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// Issues and checks signed access tokens.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait AccessTokens: Send + Sync {
    /// A signed token carrying `claims`.
    ///
    /// # Errors
    /// When signing fails.
    fn issue(&self, claims: &AccessClaims) -> anyhow::Result<String>;

    /// The claims of `token` when it is genuine and valid at `now`.
    ///
    /// # Errors
    /// [`InvalidToken`] otherwise.
    fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, InvalidToken>;
}

/// A user as stored, with the hash needed to check a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUser {
    /// Who.
    pub id: UserId,
    /// Their login.
    pub email: crate::customers::Email,
    /// What they may do.
    pub role: Role,
    /// Their password's hash.
    pub password_hash: PasswordHash,
    /// When they were created.
    pub created_at: DateTime<Utc>,
}

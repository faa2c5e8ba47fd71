use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    CreateUserError, Password, PasswordHash, Principal, RefreshFamilyId, RefreshToken,
    RefreshTokenHash, Role, StoredRefreshToken, UserId,
};
use crate::customers::Email;
use crate::page::{Page, PageRequest};

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
    pub email: Email,
    /// What they may do.
    pub role: Role,
    /// Their password's hash.
    pub password_hash: PasswordHash,
    /// When they were created.
    pub created_at: DateTime<Utc>,
}

/// A user to store: the service has parsed every field and hashed the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Their id, decided by the service.
    pub id: UserId,
    /// Their login.
    pub email: Email,
    /// What they may do.
    pub role: Role,
    /// Their password's hash.
    pub password_hash: PasswordHash,
    /// When they are created.
    pub created_at: DateTime<Utc>,
}

/// Storage of users.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Stores `user` as version 1.
    ///
    /// # Errors
    /// `EmailTaken` when another user has the same address, compared without
    /// regard to case (`Ada@Example.com` is `ada@example.com`) — also when two
    /// calls race: exactly one of them succeeds.
    async fn insert(&self, user: NewUser) -> Result<StoredUser, CreateUserError>;

    /// The user whose address is `email`, compared without regard to case.
    ///
    /// # Errors
    /// When storage fails.
    async fn find_by_email(&self, email: &Email) -> anyhow::Result<Option<StoredUser>>;

    /// One user, or `None`.
    ///
    /// # Errors
    /// When storage fails.
    async fn find(&self, id: UserId) -> anyhow::Result<Option<StoredUser>>;

    /// A page of users, newest first.
    ///
    /// # Errors
    /// When storage fails.
    async fn list(&self, page: PageRequest) -> anyhow::Result<Page<StoredUser>>;

    /// How many users there are.
    ///
    /// # Errors
    /// When storage fails.
    async fn count(&self) -> anyhow::Result<u64>;
}

/// Storage of refresh tokens, by digest only.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RefreshTokenStore: Send + Sync {
    /// Stores a newly issued token under its digest. A token joining a family that
    /// was revoked — before, or by a call racing with this one — is stored revoked:
    /// a revoked family never gains a live token.
    ///
    /// # Errors
    /// When storage fails, including when the user no longer exists.
    async fn insert(&self, hash: RefreshTokenHash, token: StoredRefreshToken)
    -> anyhow::Result<()>;

    /// The token stored under `hash`, used, revoked or expired alike, or `None`.
    ///
    /// # Errors
    /// When storage fails.
    async fn find(&self, hash: &RefreshTokenHash) -> anyhow::Result<Option<StoredRefreshToken>>;

    /// Marks the token used at `at` if it is not used yet, atomically: of any number
    /// of racing calls for one token, exactly one gets `true`. `false` also when no
    /// token is stored under `hash`.
    ///
    /// # Errors
    /// When storage fails.
    async fn mark_used(&self, hash: &RefreshTokenHash, at: DateTime<Utc>) -> anyhow::Result<bool>;

    /// Marks every token of `family` revoked at `at` (a token revoked before keeps
    /// its first revocation time), including one being inserted concurrently (see
    /// [`insert`](Self::insert)). Tokens of other families are left alone.
    ///
    /// # Errors
    /// When storage fails.
    async fn revoke_family(&self, family: RefreshFamilyId, at: DateTime<Utc>)
    -> anyhow::Result<()>;
}

/// Makes refresh tokens and the digests they are stored under.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait TokenSecrets: Send + Sync {
    /// A new token with enough randomness that it cannot be guessed.
    fn new_refresh_token(&self) -> RefreshToken;

    /// The digest `token` is stored and looked up under; the same token always
    /// gives the same digest.
    fn digest(&self, token: &RefreshToken) -> RefreshTokenHash;
}

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};

use super::{
    AccessClaims, AccessTokens, CreateUserError, InvalidToken, LoginError, NewUser, Password,
    PasswordHash, PasswordHasher, Principal, RefreshError, RefreshFamilyId, RefreshToken,
    RefreshTokenStore, Role, Rotation, StoredRefreshToken, StoredUser, TokenSecrets, UserId,
    UserRepository, rotation,
};
use crate::clock::Clock;
use crate::customers::Email;
use crate::ids::IdSource;
use crate::page::{Page, PageRequest};

/// A hash no password matches, in the production hasher's format and parameters:
/// a login for an unknown address is checked against it, so that it takes as long
/// as a login with a wrong password and the timing does not tell which addresses
/// have accounts. A hasher adapter must read it (and answer "no match") with the
/// same work as for a real hash; the adapter's tests check that.
pub const DUMMY_PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$b3Jkby1kdW1teS1zYWx0IQ$oJ9MbYJcOr84HyFsmSRTGC2WG0vDCZUr25egWSaEYOQ";

/// How long tokens live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthPolicy {
    /// How long an access token is accepted.
    pub access_ttl: Duration,
    /// How long a refresh token can be exchanged (each exchange starts a new one).
    pub refresh_ttl: Duration,
}

impl Default for AuthPolicy {
    /// 15 minutes for access tokens, 30 days for refresh tokens.
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 60 * 60),
        }
    }
}

/// What a login or a refresh hands the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// A signed access token, to send as `Authorization: Bearer …`.
    pub access_token: String,
    /// How long the access token is accepted from now.
    pub expires_in: Duration,
    /// The single-use token that obtains the next session.
    pub refresh_token: RefreshToken,
}

/// The identity use cases: logging in and out, exchanging refresh tokens, checking
/// access tokens, and managing users.
#[derive(Clone)]
pub struct AuthService {
    users: Arc<dyn UserRepository>,
    refresh_tokens: Arc<dyn RefreshTokenStore>,
    hasher: Arc<dyn PasswordHasher>,
    access_tokens: Arc<dyn AccessTokens>,
    secrets: Arc<dyn TokenSecrets>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    policy: AuthPolicy,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl AuthService {
    /// A service over the given ports.
    #[allow(clippy::too_many_arguments)] // one port each; a builder would add nothing
    pub fn new(
        users: Arc<dyn UserRepository>,
        refresh_tokens: Arc<dyn RefreshTokenStore>,
        hasher: Arc<dyn PasswordHasher>,
        access_tokens: Arc<dyn AccessTokens>,
        secrets: Arc<dyn TokenSecrets>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        policy: AuthPolicy,
    ) -> Self {
        Self {
            users,
            refresh_tokens,
            hasher,
            access_tokens,
            secrets,
            clock,
            ids,
            policy,
        }
    }

    /// The rules in force.
    pub fn policy(&self) -> AuthPolicy {
        self.policy
    }

    /// Checks a password and starts a new refresh family.
    ///
    /// # Errors
    /// `InvalidCredentials` for an unknown address and a wrong password alike, after
    /// the same amount of hashing work.
    pub async fn login(&self, email: &str, password: &str) -> Result<Session, LoginError> {
        // Malformed input says nothing about which accounts exist: refuse at once.
        let (Ok(email), Ok(password)) = (Email::parse(email), Password::offered(password)) else {
            return Err(LoginError::InvalidCredentials);
        };
        let Some(user) = self.users.find_by_email(&email).await? else {
            // The outcome is known; the work is done only so that it takes as long.
            let dummy = PasswordHash::from_phc(DUMMY_PASSWORD_HASH.to_owned());
            let _ = self.hasher.verify(&password, &dummy).await;
            return Err(LoginError::InvalidCredentials);
        };
        if !self.hasher.verify(&password, &user.password_hash).await? {
            return Err(LoginError::InvalidCredentials);
        }
        let family = RefreshFamilyId::from_uuid(self.ids.new_id());
        Ok(self.start_session(&user, family, self.clock.now()).await?)
    }

    /// Exchanges a refresh token for a new session in the same family; the token
    /// cannot be exchanged again. The new access token carries the user's current
    /// role.
    ///
    /// # Errors
    /// `InvalidToken` for an unknown, expired or revoked token or a deleted user;
    /// `TokenReused` when the token was exchanged before (also by a concurrent
    /// call), after revoking its family.
    pub async fn refresh(&self, token: &str) -> Result<Session, RefreshError> {
        let token = RefreshToken::presented(token).map_err(|_| RefreshError::InvalidToken)?;
        let hash = self.secrets.digest(&token);
        let now = self.clock.now();
        let stored = self.refresh_tokens.find(&hash).await?;
        match rotation(stored.as_ref(), now) {
            Rotation::Refuse => Err(RefreshError::InvalidToken),
            Rotation::Reused { family } => {
                self.refresh_tokens.revoke_family(family, now).await?;
                Err(RefreshError::TokenReused)
            }
            Rotation::Rotate { user, family } => {
                let user = self
                    .users
                    .find(user)
                    .await?
                    .ok_or(RefreshError::InvalidToken)?;
                if !self.refresh_tokens.mark_used(&hash, now).await? {
                    // A concurrent exchange of the same token won: two holders.
                    self.refresh_tokens.revoke_family(family, now).await?;
                    return Err(RefreshError::TokenReused);
                }
                Ok(self.start_session(&user, family, now).await?)
            }
        }
    }

    /// Ends the login a refresh token belongs to: its whole family is revoked. An
    /// unknown token is already as good as logged out.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn logout(&self, token: &str) -> anyhow::Result<()> {
        let Ok(token) = RefreshToken::presented(token) else {
            return Ok(());
        };
        let hash = self.secrets.digest(&token);
        if let Some(stored) = self.refresh_tokens.find(&hash).await? {
            self.refresh_tokens
                .revoke_family(stored.family, self.clock.now())
                .await?;
        }
        Ok(())
    }

    /// The caller an access token speaks for, if it is genuine and valid now.
    ///
    /// # Errors
    /// [`InvalidToken`] otherwise.
    pub fn authenticate(&self, bearer: &str) -> Result<Principal, InvalidToken> {
        self.verify(bearer).map(|claims| claims.principal)
    }

    /// The claims of an access token, if it is genuine and valid now (a client's
    /// token is checked further against its key's issue time).
    ///
    /// # Errors
    /// [`InvalidToken`] otherwise.
    pub fn verify(&self, bearer: &str) -> Result<AccessClaims, InvalidToken> {
        self.access_tokens.verify(bearer, self.clock.now())
    }

    /// Creates a user who logs in with `email` and `password`.
    ///
    /// # Errors
    /// `Invalid` for an address that is not one or a password outside the rules of
    /// [`Password::parse`]; `EmailTaken`.
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        role: Role,
    ) -> Result<StoredUser, CreateUserError> {
        let invalid = |field, e: crate::InvalidValue| CreateUserError::Invalid {
            field,
            message: e.message().to_owned(),
        };
        let email = Email::parse(email).map_err(|e| invalid("email", e))?;
        let password = Password::parse(password).map_err(|e| invalid("password", e))?;
        let password_hash = self.hasher.hash(&password).await?;
        self.users
            .insert(NewUser {
                id: UserId::from_uuid(self.ids.new_id()),
                email,
                role,
                password_hash,
                created_at: self.clock.now(),
            })
            .await
    }

    /// One user, or `None` (e.g. for `GET /v1/auth/me`).
    ///
    /// # Errors
    /// When storage fails.
    pub async fn find_user(&self, id: UserId) -> anyhow::Result<Option<StoredUser>> {
        self.users.find(id).await
    }

    /// A page of users, newest first.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn list_users(&self, page: PageRequest) -> anyhow::Result<Page<StoredUser>> {
        self.users.list(page).await
    }

    /// Creates an administrator when there is no user at all, as on a first start;
    /// `true` when it did. Two instances starting at once create one admin between
    /// them (the other gets `false`).
    ///
    /// # Errors
    /// As [`create_user`](Self::create_user), except `EmailTaken`.
    pub async fn bootstrap_admin(
        &self,
        email: &str,
        password: &str,
    ) -> Result<bool, CreateUserError> {
        if self.users.count().await? > 0 {
            return Ok(false);
        }
        match self.create_user(email, password, Role::Admin).await {
            Ok(_) => Ok(true),
            Err(CreateUserError::EmailTaken) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Issues an access token for `user` and a new refresh token of `family`.
    async fn start_session(
        &self,
        user: &StoredUser,
        family: RefreshFamilyId,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Session> {
        let access_ttl = delta(self.policy.access_ttl)?;
        let refresh_token = self.secrets.new_refresh_token();
        self.refresh_tokens
            .insert(
                self.secrets.digest(&refresh_token),
                StoredRefreshToken {
                    user: user.id,
                    family,
                    expires_at: now + delta(self.policy.refresh_ttl)?,
                    used_at: None,
                    revoked_at: None,
                },
            )
            .await?;
        let access_token = self.access_tokens.issue(&AccessClaims {
            principal: Principal::User {
                id: user.id,
                role: user.role,
            },
            issued_at: now,
            expires_at: now + access_ttl,
        })?;
        Ok(Session {
            access_token,
            expires_in: self.policy.access_ttl,
            refresh_token,
        })
    }
}

fn delta(ttl: Duration) -> anyhow::Result<TimeDelta> {
    TimeDelta::from_std(ttl).context("a token lifetime beyond what a timestamp can hold")
}

#[cfg(test)]
mod tests;

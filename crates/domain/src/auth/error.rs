/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The address is unknown or the password is wrong: callers are not told which.
    #[error("the e-mail address or the password is wrong")]
    InvalidCredentials,
    /// Storage or hashing failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a refresh token was not exchanged.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired or revoked, or its user no longer exists: log in again.
    #[error("the refresh token is not valid")]
    InvalidToken,
    /// It was exchanged before, so a copy is in someone else's hands: its whole
    /// family has been revoked.
    #[error("the refresh token was used before; its family has been revoked")]
    TokenReused,
    /// Storage or signing failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// A field is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as the caller named it (`email`, `password`).
        field: &'static str,
        /// What is wrong with it, for the person who sent it.
        message: String,
    },
    /// Another user has this address (regardless of case).
    #[error("a user with this e-mail address already exists")]
    EmailTaken,
    /// Storage or hashing failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

use super::ClientId;

/// Why a client could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterClientError {
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a client could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateClientError {
    /// No such client.
    #[error("client {0} not found")]
    NotFound(ClientId),
    /// The client changed since the version the caller saw.
    #[error("client {0} was changed by someone else")]
    VersionMismatch(ClientId),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a client's key could not be replaced.
#[derive(Debug, thiserror::Error)]
pub enum RotateKeyError {
    /// No such client.
    #[error("client {0} not found")]
    NotFound(ClientId),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a client could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteClientError {
    /// No such client.
    #[error("client {0} not found")]
    NotFound(ClientId),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a caller presenting an API key (or an access token obtained with one) was
/// not admitted.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticateClientError {
    /// Not a key of any client: malformed, unknown, rotated away or deleted; or a
    /// token of a deleted client or of a key since replaced. Callers are not told
    /// which.
    #[error("the API key is not valid")]
    InvalidKey,
    /// The key is valid, but the client's allow-list does not include the address
    /// the request came from.
    #[error("the client may not call from this address")]
    IpNotAllowed,
    /// Storage or signing failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

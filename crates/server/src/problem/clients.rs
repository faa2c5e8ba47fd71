//! API-client errors as problem documents.

use ordo_domain::clients::{
    AuthenticateClientError, ClientId, DeleteClientError, RegisterClientError, RotateKeyError,
    UpdateClientError,
};

use super::{ApiError, ProblemCode};

/// 404 `client_not_found`.
pub fn client_not_found(id: ClientId) -> ApiError {
    ApiError::new(
        ProblemCode::ClientNotFound,
        format!("API client {id} does not exist"),
    )
}

impl From<RegisterClientError> for ApiError {
    fn from(e: RegisterClientError) -> Self {
        match e {
            RegisterClientError::Unexpected(e) => Self::internal(e),
        }
    }
}

impl From<UpdateClientError> for ApiError {
    fn from(e: UpdateClientError) -> Self {
        match e {
            UpdateClientError::NotFound(id) => client_not_found(id),
            UpdateClientError::VersionMismatch(id) => {
                Self::precondition_failed(format!("API client {id} has changed since that version"))
            }
            UpdateClientError::Unexpected(e) => Self::internal(e),
        }
    }
}

impl From<RotateKeyError> for ApiError {
    fn from(e: RotateKeyError) -> Self {
        match e {
            RotateKeyError::NotFound(id) => client_not_found(id),
            RotateKeyError::Unexpected(e) => Self::internal(e),
        }
    }
}

impl From<DeleteClientError> for ApiError {
    fn from(e: DeleteClientError) -> Self {
        match e {
            DeleteClientError::NotFound(id) => client_not_found(id),
            DeleteClientError::Unexpected(e) => Self::internal(e),
        }
    }
}

/// For the `api_key` grant of `/v1/auth/token`: a bad key is a failed login.
impl From<AuthenticateClientError> for ApiError {
    fn from(e: AuthenticateClientError) -> Self {
        match e {
            AuthenticateClientError::InvalidKey => Self::new(
                ProblemCode::InvalidCredentials,
                "The API key is not valid: it may have been rotated or its client deleted",
            ),
            AuthenticateClientError::IpNotAllowed => Self::ip_not_allowed(),
            AuthenticateClientError::Unexpected(e) => Self::internal(e),
        }
    }
}

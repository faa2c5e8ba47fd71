//! Identity errors as problem documents: who may call, and why a login or a token
//! exchange failed.

use std::time::Duration;

use actix_web::http::header::{HeaderValue, WWW_AUTHENTICATE};
use ordo_domain::auth::{CreateUserError, LoginError, RefreshError};
use ordo_domain::{Dependency, Unavailable};

use super::{ApiError, FieldError, ProblemCode};

/// The challenge for API keys, which HTTP has no registered scheme for.
const API_KEY_CHALLENGE: &str = r#"ApiKey header="X-API-Key""#;

impl ApiError {
    /// 401 `unauthenticated`: no credentials (`WWW-Authenticate: Bearer`).
    pub fn unauthenticated() -> Self {
        Self::new(
            ProblemCode::Unauthenticated,
            "Send `Authorization: Bearer <access token>`; obtain one at /v1/auth/login",
        )
        .with_header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 401 `unauthenticated`: a bearer token that is not valid (forged, expired).
    pub fn invalid_token() -> Self {
        Self::new(
            ProblemCode::Unauthenticated,
            "The access token is not valid or has expired; refresh it or log in again",
        )
        .with_header(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer error="invalid_token""#),
        )
    }

    /// 401 `unauthenticated`: an `X-API-Key` that is not a current key.
    pub fn invalid_api_key() -> Self {
        Self::new(
            ProblemCode::Unauthenticated,
            "The API key is not valid: it may have been rotated or its client deleted",
        )
        .with_header(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(API_KEY_CHALLENGE),
        )
    }

    /// 403 `ip_not_allowed`: an API client calling from outside its allow-list.
    pub fn ip_not_allowed() -> Self {
        Self::new(
            ProblemCode::IpNotAllowed,
            "This API client may not call from this address (see its ip_allowlist)",
        )
    }

    /// 503: the credentials could not be checked (the cause is logged where it
    /// happened).
    pub fn credentials_unavailable() -> Self {
        Self::internal(anyhow::Error::new(Unavailable::new(
            Dependency::Database,
            Duration::from_secs(1),
            "the API client's credentials could not be checked".to_owned(),
        )))
    }

    /// 403 `forbidden`: authenticated, but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::Forbidden, detail)
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::InvalidCredentials => Self::new(
                ProblemCode::InvalidCredentials,
                "The e-mail address or the password is wrong",
            ),
            LoginError::Unexpected(e) => Self::internal(e),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(e: RefreshError) -> Self {
        match e {
            RefreshError::InvalidToken => Self::new(
                ProblemCode::Unauthenticated,
                "The refresh token is not valid, has expired or was revoked; log in again",
            ),
            RefreshError::TokenReused => Self::new(
                ProblemCode::TokenReused,
                "The refresh token was used before; every token of its login has been revoked, log in again",
            ),
            RefreshError::Unexpected(e) => Self::internal(e),
        }
    }
}

impl From<CreateUserError> for ApiError {
    fn from(e: CreateUserError) -> Self {
        match e {
            CreateUserError::Invalid { field, message } => {
                Self::validation(vec![FieldError::new(field, message)])
            }
            CreateUserError::EmailTaken => Self::new(
                ProblemCode::EmailTaken,
                "A user with this e-mail address already exists",
            ),
            CreateUserError::Unexpected(e) => Self::internal(e),
        }
    }
}

//! Who is calling: `Authorization: Bearer <access token>` is checked once per
//! request, before any handler runs, and the outcome is left in the request's
//! extensions for the `Staff`, `Admin` and `Caller` extractors (and, later, rate
//! limiting and activity recording) to read.
//!
//! An invalid token is not refused here but where credentials are required: a
//! client that keeps sending its expired token can still reach `/v1/auth/login`,
//! `/v1/auth/token` and the operations routes, while every protected route answers
//! it 401 `unauthenticated` with `WWW-Authenticate: Bearer error="invalid_token"`.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use ordo_domain::auth::Principal;

use crate::state::AppState;

/// What the request's credentials turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization: Bearer` header.
    None,
    /// A genuine, current access token.
    Valid(Principal),
    /// A bearer token that is forged, malformed or expired.
    Invalid,
}

/// The bearer token of an `Authorization` header value (the scheme is
/// case-insensitive, RFC 9110 §11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Resolves the caller and stores [`Credentials`] in the request's extensions.
///
/// # Errors
/// Only those of the wrapped service.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.to_str().ok().and_then(bearer).map(str::to_owned));
    let credentials = match header {
        None => Credentials::None,
        Some(None) => Credentials::Invalid,
        Some(Some(token)) => match req.app_data::<web::Data<AppState>>() {
            Some(state) => match state.auth.authenticate(&token) {
                Ok(principal) => Credentials::Valid(principal),
                Err(reason) => {
                    tracing::debug!(%reason, "refused an access token");
                    Credentials::Invalid
                }
            },
            None => Credentials::Invalid,
        },
    };
    req.extensions_mut().insert(credentials);
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_needs_a_token() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }
}

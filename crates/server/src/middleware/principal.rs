//! Who is calling: `Authorization: Bearer <access token>` or `X-API-Key: <key>` is
//! checked once per request, before any handler runs, and the outcome is left in
//! the request's extensions for the `Staff`, `Admin` and `Caller` extractors (and
//! rate limiting and activity recording) to read. When both are sent, the bearer
//! token decides.
//!
//! An API client (by its key, or by an access token obtained with it) is admitted
//! only from an address its allow-list includes ([`ClientIp`], decided by the
//! middleware before this one); its [`Client`] and [`ClientRateLimit`] join the
//! extensions. Resolving a key is served from a short-lived cache (see
//! `client_directory.rs`), not the database, on almost every request.
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
use ordo_domain::auth::{AccessClaims, Principal};
use ordo_domain::clients::{AuthenticateClientError, Client, ClientId, ClientRateLimit};

use super::client_ip::ClientIp;
use crate::state::AppState;

/// The header API clients send their key in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// What the request's credentials turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization: Bearer` header.
    None,
    /// A genuine, current access token.
    Valid(Principal),
    /// A bearer token that is forged, malformed or expired.
    Invalid,
    /// An API key that is malformed, unknown, rotated away or deleted.
    InvalidKey,
    /// An API client's valid credentials, from an address outside its allow-list.
    IpNotAllowed,
    /// The credentials could not be checked (the database is unreachable).
    Unavailable,
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
    let bearer_header = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.to_str().ok().and_then(bearer).map(str::to_owned));
    let key_header = req
        .headers()
        .get(API_KEY_HEADER)
        .map(|v| v.to_str().map(|k| k.trim().to_owned()).unwrap_or_default());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let credentials = match (state, bearer_header, key_header) {
        (_, None, None) => Credentials::None,
        (None, _, _) | (_, Some(None), _) => Credentials::Invalid,
        (Some(state), Some(Some(token)), _) => match state.auth.verify(&token) {
            Ok(AccessClaims {
                principal: Principal::Client { id },
                issued_at,
                ..
            }) => {
                let from = client_ip(&req);
                let admitted = state
                    .clients
                    .authenticate_token(ClientId::from_uuid(id), issued_at, from)
                    .await;
                admit_client(&req, admitted, Credentials::Invalid)
            }
            Ok(claims) => Credentials::Valid(claims.principal),
            Err(reason) => {
                tracing::debug!(%reason, "refused an access token");
                Credentials::Invalid
            }
        },
        (Some(state), None, Some(key)) => {
            let from = client_ip(&req);
            let admitted = state.clients.authenticate_key(&key, from).await;
            admit_client(&req, admitted, Credentials::InvalidKey)
        }
    };
    req.extensions_mut().insert(credentials);
    next.call(req).await
}

fn client_ip(req: &ServiceRequest) -> std::net::IpAddr {
    req.extensions().get::<ClientIp>().map_or_else(
        || {
            req.peer_addr()
                .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip())
        },
        |ip| ip.0,
    )
}

/// The credentials of an API client's request, leaving the client and its rate
/// limit in the extensions when it is admitted.
fn admit_client(
    req: &ServiceRequest,
    admitted: Result<Client, AuthenticateClientError>,
    invalid: Credentials,
) -> Credentials {
    match admitted {
        Ok(client) => {
            let principal = Principal::Client {
                id: client.id().as_uuid(),
            };
            let mut extensions = req.extensions_mut();
            extensions.insert::<ClientRateLimit>(client.rate_limit());
            extensions.insert(client);
            Credentials::Valid(principal)
        }
        Err(AuthenticateClientError::InvalidKey) => invalid,
        Err(AuthenticateClientError::IpNotAllowed) => Credentials::IpNotAllowed,
        Err(AuthenticateClientError::Unexpected(e)) => {
            tracing::error!(error = ?e, "could not check an API client's credentials");
            Credentials::Unavailable
        }
    }
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

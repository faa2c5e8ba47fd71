//! `/v1/auth`: logging in, exchanging refresh tokens, logging out, and who am I.

use actix_web::{HttpResponse, get, post, web};
use ordo_domain::auth::{Principal, Session, UserId};
use ordo_domain::clients::{Client, ClientSession};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::extract::{Caller, JsonBody, parse_json};
use crate::middleware::client_ip::ClientIp;
use crate::problem::{ApiError, FieldError};
use crate::state::AppState;

pub(super) fn routes(config: &mut ServiceConfig) {
    config
        .service(login)
        .service(token)
        .service(logout)
        .service(me);
}

/// An e-mail address and a password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    /// The user's e-mail address.
    pub email: String,
    /// The user's password.
    pub password: String,
}

/// `password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PasswordGrantType {
    /// Log in with an e-mail address and a password.
    Password,
}

/// `refresh_token`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefreshGrantType {
    /// Exchange a refresh token.
    RefreshToken,
}

/// The `password` grant: as `/v1/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordGrant {
    /// `password`.
    pub grant_type: PasswordGrantType,
    /// The user's e-mail address.
    pub email: String,
    /// The user's password.
    pub password: String,
}

/// The `refresh_token` grant: a refresh token for a new session of the same login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshTokenGrant {
    /// `refresh_token`.
    pub grant_type: RefreshGrantType,
    /// The refresh token of the last login or exchange; it cannot be used again.
    pub refresh_token: String,
}

/// `api_key`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyGrantType {
    /// Exchange an API client's key.
    ApiKey,
}

/// The `api_key` grant: an API client's key for a short-lived access token of kind
/// `client` (no refresh token: the key obtains the next one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyGrant {
    /// `api_key`.
    pub grant_type: ApiKeyGrantType,
    /// The client's key, `ordo_<prefix>_<secret>`.
    pub api_key: String,
}

/// A token request, by `grant_type`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documents the body; the handler dispatches on `grant_type`
pub enum TokenRequest {
    /// `grant_type: password`.
    Password(PasswordGrant),
    /// `grant_type: refresh_token`.
    RefreshToken(RefreshTokenGrant),
    /// `grant_type: api_key`.
    ApiKey(ApiKeyGrant),
}

/// A refresh token to revoke.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutInput {
    /// A refresh token of the login to end (any of its family).
    pub refresh_token: String,
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The access token, to send as `Authorization: Bearer …`.
    access_token: String,
    /// Always `Bearer`.
    #[schema(pattern = "^Bearer$")]
    token_type: &'static str,
    /// Seconds the access token is accepted from now.
    #[schema(minimum = 1)]
    expires_in: u64,
    /// Single-use: exchange it at `/v1/auth/token` for the next session. Absent
    /// for the `api_key` grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    refresh_token: Option<String>,
}

impl From<Session> for TokenResponse {
    fn from(session: Session) -> Self {
        Self {
            access_token: session.access_token,
            token_type: "Bearer",
            expires_in: session.expires_in.as_secs().max(1),
            refresh_token: Some(session.refresh_token.expose().to_owned()),
        }
    }
}

impl From<ClientSession> for TokenResponse {
    fn from(session: ClientSession) -> Self {
        Self {
            access_token: session.access_token,
            token_type: "Bearer",
            expires_in: session.expires_in.as_secs().max(1),
            refresh_token: None,
        }
    }
}

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    /// `user` or `client`.
    #[schema(pattern = "^(user|client)$")]
    kind: &'static str,
    /// The user's or client's id.
    id: Uuid,
    /// A user's e-mail address.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    email: Option<String>,
    /// A user's role.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<super::users::RoleName>, nullable = false)]
    role: Option<&'static str>,
    /// A client's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    name: Option<String>,
}

fn session(session: impl Into<TokenResponse>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(session.into())
}

/// Logs in with an e-mail address and a password.
#[utoipa::path(tag = "auth", request_body = LoginInput, responses(
    (status = 200, body = TokenResponse, description = "A new session"),
    (status = 401, body = super::Problem, content_type = "application/problem+json", description = "`invalid_credentials`: the same for an unknown address and a wrong password"),
))]
#[post("/auth/login")]
async fn login(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<LoginInput>,
) -> Result<HttpResponse, ApiError> {
    Ok(session(
        state.auth.login(&body.email, &body.password).await?,
    ))
}

/// Obtains a session: with a password, by exchanging a refresh token (each is
/// single-use; presenting one again is 401 `token_reused` and ends its login), or
/// with an API client's key (a short-lived token of kind `client`, no refresh
/// token).
#[utoipa::path(tag = "auth", request_body = TokenRequest, responses(
    (status = 200, body = TokenResponse, description = "A new session"),
    (status = 401, body = super::Problem, content_type = "application/problem+json", description = "`invalid_credentials` (password and api_key grants); `unauthenticated` for an unknown, expired or revoked refresh token; `token_reused`"),
    (status = 403, body = super::Problem, content_type = "application/problem+json", description = "`ip_not_allowed`: the API client may not call from this address"),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`, also for an unsupported `grant_type`"),
))]
#[post("/auth/token")]
async fn token(
    state: web::Data<AppState>,
    ClientIp(from): ClientIp,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let grant = body
        .get("grant_type")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let bytes = serde_json::to_vec(&body).map_err(anyhow::Error::from)?;
    match grant.as_deref() {
        Some("password") => {
            let grant: PasswordGrant = parse_json(&bytes)?;
            Ok(session(
                state.auth.login(&grant.email, &grant.password).await?,
            ))
        }
        Some("refresh_token") => {
            let grant: RefreshTokenGrant = parse_json(&bytes)?;
            Ok(session(state.auth.refresh(&grant.refresh_token).await?))
        }
        Some("api_key") => {
            let grant: ApiKeyGrant = parse_json(&bytes)?;
            Ok(session(
                state.clients.exchange_key(&grant.api_key, from).await?,
            ))
        }
        _ => Err(ApiError::validation(vec![FieldError::new(
            "grant_type",
            "must be password, refresh_token or api_key",
        )])),
    }
}

/// Logs out: every refresh token of the login is revoked. An unknown token is
/// logged out already.
#[utoipa::path(tag = "auth", request_body = LogoutInput, responses(
    (status = 204, description = "Logged out"),
))]
#[post("/auth/logout")]
async fn logout(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<LogoutInput>,
) -> Result<HttpResponse, ApiError> {
    state.auth.logout(&body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Who the access token or API key speaks for.
#[utoipa::path(tag = "auth", responses(
    (status = 200, body = MeView),
))]
#[get("/auth/me")]
async fn me(
    Caller(caller): Caller,
    client: Option<web::ReqData<Client>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let view = match caller {
        Principal::User { id, .. } => {
            // The role is read afresh: the token's may be up to its lifetime old.
            let user = state
                .auth
                .find_user(UserId::from_uuid(id.as_uuid()))
                .await?
                .ok_or_else(ApiError::invalid_token)?;
            MeView {
                kind: "user",
                id: user.id.as_uuid(),
                email: Some(user.email.to_string()),
                role: Some(user.role.as_str()),
                name: None,
            }
        }
        // The principal middleware resolved the client (from its cache) already.
        Principal::Client { id } => MeView {
            kind: "client",
            id,
            email: None,
            role: None,
            name: client.map(|c| c.name().to_string()),
        },
    };
    Ok(HttpResponse::Ok().json(view))
}

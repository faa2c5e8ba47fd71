//! `/v1/clients` (and the seed's `/api/register`): administrators register API
//! clients, change them, rotate their keys and delete them.

use actix_web::http::header::{CACHE_CONTROL, LOCATION};
use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use ordo_domain::clients::{
    Client, ClientChanges, ClientId, ClientName, ClientRateLimit, IpAllowList, IssuedKey, NewClient,
};
use ordo_domain::customers::Email;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::ListResponse;
use crate::extract::{Admin, CheckAll, Checked, IfMatch, JsonBody, PageQuery, etag, field};
use crate::problem::{ApiError, client_not_found};
use crate::state::AppState;

pub(super) fn routes(config: &mut ServiceConfig) {
    config
        .service(register_client)
        .service(list_clients)
        .service(get_client)
        .service(update_client)
        .service(rotate_client_key)
        .service(delete_client);
}

/// The seed's spelling of registration, outside `/v1`.
pub(super) fn aliases(config: &mut ServiceConfig) {
    config.service(register_client_alias);
}

/// A client's own rate limit.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitBody {
    /// Requests per minute on average, 1 to 600 000.
    #[schema(minimum = 1, maximum = 600_000)]
    pub requests_per_minute: u32,
    /// Requests at once, 1 to 1 000 000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub burst: u32,
}

impl From<ClientRateLimit> for RateLimitBody {
    fn from(limit: ClientRateLimit) -> Self {
        Self {
            requests_per_minute: limit.requests_per_minute(),
            burst: limit.burst(),
        }
    }
}

fn rate_limit(body: RateLimitBody) -> Checked<ClientRateLimit> {
    field(
        "rate_limit",
        ClientRateLimit::new(body.requests_per_minute, body.burst),
    )
}

fn allowlist(entries: &[String]) -> Checked<IpAllowList> {
    field("ip_allowlist", IpAllowList::parse(entries))
}

/// A client to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    /// Name, 1 to 200 characters.
    #[schema(schema_with = crate::openapi::name)]
    pub name: String,
    /// Contact e-mail address.
    #[schema(schema_with = crate::openapi::email)]
    pub email: String,
    /// Addresses or CIDR blocks (IPv4, IPv6) the client may call from, at most
    /// 100; empty or absent: any address.
    #[schema(max_items = 100)]
    pub ip_allowlist: Option<Vec<String>>,
    /// Its rate limit; 600 a minute with a burst of 100 when absent.
    pub rate_limit: Option<RateLimitBody>,
}

/// Changes to a client; omitted (or `null`) fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    /// New name.
    #[schema(schema_with = crate::openapi::name_or_null)]
    pub name: Option<String>,
    /// New allow-list; `[]` allows any address.
    #[schema(max_items = 100)]
    pub ip_allowlist: Option<Vec<String>>,
    /// New rate limit.
    pub rate_limit: Option<RateLimitBody>,
}

/// An API client (never with its key).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    id: Uuid,
    name: String,
    email: String,
    /// The public part of the current key (`ordo_<prefix>_…`).
    api_key_prefix: String,
    /// Normalised CIDR blocks; empty allows any address.
    ip_allowlist: Vec<String>,
    rate_limit: RateLimitBody,
    version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<&Client> for ClientView {
    fn from(c: &Client) -> Self {
        Self {
            id: c.id().as_uuid(),
            name: c.name().to_string(),
            email: c.email().to_string(),
            api_key_prefix: c.key_prefix().to_owned(),
            ip_allowlist: c.ip_allowlist().entries(),
            rate_limit: c.rate_limit().into(),
            version: c.version().get(),
            created_at: c.created_at(),
            updated_at: c.updated_at(),
        }
    }
}

/// A client just registered, with its key: shown in this response only.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredClientView {
    /// The whole key, to send as `X-API-Key`. It is stored only as a digest and
    /// cannot be shown again; rotate it if it is lost.
    api_key: String,
    #[serde(flatten)]
    client: ClientView,
}

/// A new key for a client: shown in this response only.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKeyView {
    /// The whole new key; the previous one no longer works.
    api_key: String,
    /// Its public part.
    api_key_prefix: String,
}

fn client_response(mut builder: actix_web::HttpResponseBuilder, client: &Client) -> HttpResponse {
    etag(&mut builder, client.version()).json(ClientView::from(client))
}

async fn register(state: &AppState, body: ClientInput) -> Result<HttpResponse, ApiError> {
    let (name, email, ip_allowlist, rate_limit) = (
        field("name", ClientName::parse(&body.name)),
        field("email", Email::parse(&body.email)),
        allowlist(body.ip_allowlist.as_deref().unwrap_or_default()),
        body.rate_limit
            .map_or(Ok(ClientRateLimit::default()), rate_limit),
    )
        .check_all()?;
    let IssuedKey { client, api_key } = state
        .clients
        .register(NewClient {
            name,
            email,
            ip_allowlist,
            rate_limit,
        })
        .await?;
    let mut builder = HttpResponse::Created();
    builder
        .insert_header((LOCATION, format!("/v1/clients/{}", client.id())))
        .insert_header((CACHE_CONTROL, "no-store"));
    Ok(
        etag(&mut builder, client.version()).json(RegisteredClientView {
            api_key: api_key.expose(),
            client: ClientView::from(&client),
        }),
    )
}

/// Registers an API client and issues its key (administrators only). The key is
/// in this response only.
#[utoipa::path(tag = "clients", request_body = ClientInput, responses(
    (status = 201, body = RegisteredClientView, headers(("Location" = String, description = "The new client's URL"), ("ETag" = String, description = "The client's version"))),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`"),
))]
#[post("/clients")]
async fn register_client(
    _: Admin,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<ClientInput>,
) -> Result<HttpResponse, ApiError> {
    register(&state, body).await
}

/// Registers an API client: `POST /v1/clients` under the seed's name.
#[utoipa::path(tag = "clients", request_body = ClientInput, responses(
    (status = 201, body = RegisteredClientView, headers(("Location" = String, description = "The new client's URL"), ("ETag" = String, description = "The client's version"))),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`"),
))]
#[post("/api/register")]
async fn register_client_alias(
    _: Admin,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<ClientInput>,
) -> Result<HttpResponse, ApiError> {
    register(&state, body).await
}

/// Lists API clients, newest first (administrators only).
#[utoipa::path(tag = "clients", params(PageQuery), responses(
    (status = 200, body = ListResponse<ClientView>),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`: a bad `limit` or `cursor`"),
))]
#[get("/clients")]
async fn list_clients(
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (page,) = (query.parse(),).check_all()?;
    let page = state.clients.list(page).await?;
    Ok(HttpResponse::Ok().json(ListResponse::from_page(page, |c| ClientView::from(&c))))
}

/// One API client (administrators only).
#[utoipa::path(tag = "clients", params(("id" = Uuid, Path, description = "The client's id")), responses(
    (status = 200, body = ClientView, headers(("ETag" = String, description = "The client's version"))),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`client_not_found`"),
))]
#[get("/clients/{id}")]
async fn get_client(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = ClientId::from_uuid(id.into_inner());
    let client = state
        .clients
        .get(id)
        .await?
        .ok_or_else(|| client_not_found(id))?;
    Ok(client_response(HttpResponse::Ok(), &client))
}

/// Changes a client's name, allow-list or rate limit (administrators only);
/// honours `If-Match`. The change applies to the client's next request.
#[utoipa::path(tag = "clients", params(("id" = Uuid, Path, description = "The client's id")), request_body = ClientPatch, responses(
    (status = 200, body = ClientView, headers(("ETag" = String, description = "The client's new version"))),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`client_not_found`"),
    (status = 412, body = super::Problem, content_type = "application/problem+json", description = "`precondition_failed`"),
))]
#[patch("/clients/{id}")]
async fn update_client(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    if_match: IfMatch,
    JsonBody(body): JsonBody<ClientPatch>,
) -> Result<HttpResponse, ApiError> {
    let (name, ip_allowlist, rate_limit) = (
        crate::extract::optional("name", body.name.as_deref(), ClientName::parse),
        body.ip_allowlist.as_deref().map(allowlist).transpose(),
        body.rate_limit.map(rate_limit).transpose(),
    )
        .check_all()?;
    let changes = ClientChanges {
        name,
        ip_allowlist,
        rate_limit,
    };
    let client = state
        .clients
        .update(ClientId::from_uuid(id.into_inner()), changes, if_match.0)
        .await?;
    Ok(client_response(HttpResponse::Ok(), &client))
}

/// Issues a new key to a client (administrators only); the old key stops working
/// at once, and access tokens obtained with it too.
#[utoipa::path(tag = "clients", params(("id" = Uuid, Path, description = "The client's id")), responses(
    (status = 200, body = RotatedKeyView),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`client_not_found`"),
))]
#[post("/clients/{id}/rotate-key")]
async fn rotate_client_key(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let IssuedKey { client, api_key } = state
        .clients
        .rotate_key(ClientId::from_uuid(id.into_inner()))
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(RotatedKeyView {
            api_key: api_key.expose(),
            api_key_prefix: client.key_prefix().to_owned(),
        }))
}

/// Deletes a client (administrators only); its key stops working at once.
#[utoipa::path(tag = "clients", params(("id" = Uuid, Path, description = "The client's id")), responses(
    (status = 204, description = "Deleted"),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`client_not_found`"),
))]
#[delete("/clients/{id}")]
async fn delete_client(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state
        .clients
        .delete(ClientId::from_uuid(id.into_inner()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

//! `/v1/usage/*` (and the seed's `/api/usage/*`): usage figures from the hourly
//! counts, cached briefly on the server and cacheable by the caller
//! (`Cache-Control: private, max-age`, `ETag`, `If-None-Match` → 304).

use actix_web::http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::{DateTime, NaiveDate, Utc};
use ordo_domain::InvalidValue;
use ordo_domain::activity::{
    DailyUsage, DailyWindow, HourlyRange, HourlyUsage, TopClients, TopWindow, UsageViewer,
};
use ordo_domain::auth::{Principal, Role};
use ordo_domain::clients::ClientId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::extract::{
    Admin, Caller, CheckAll, Checked, field, optional, parse_instant, parse_uuid,
};
use crate::problem::ApiError;
use crate::state::AppState;

pub(super) fn routes(config: &mut ServiceConfig) {
    config
        .service(daily_usage)
        .service(top_clients)
        .service(hourly_usage);
}

/// The seed's spellings, outside `/v1`.
pub(super) fn aliases(config: &mut ServiceConfig) {
    config.service(daily_usage_alias).service(top_clients_alias);
}

fn whole_number(raw: &str) -> Result<i64, InvalidValue> {
    raw.trim()
        .parse::<i64>()
        .map_err(|_| InvalidValue::new("must be a whole number"))
}

/// `?client_id=&days=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// One client (administrators); an API client may name only itself.
    #[param(value_type = Option<Uuid>)]
    pub client_id: Option<String>,
    /// Days, 1 to 90 (default 7), the last being today (UTC).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 90)]
    pub days: Option<String>,
}

/// `?hours=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopQuery {
    /// Hourly buckets, 1 to 720 (default 24), the last being the current hour.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 720)]
    pub hours: Option<String>,
    /// Clients at most, 1 to 100 (default 3).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

/// `?from=&to=&principal_id=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HourlyQuery {
    /// The first hour (RFC 3339; the hour it falls in). Default: 23 hours before `to`.
    #[param(value_type = Option<DateTime<Utc>>)]
    pub from: Option<String>,
    /// The last hour (RFC 3339; the hour it falls in), at most 31 days after
    /// `from`. Default: now.
    #[param(value_type = Option<DateTime<Utc>>)]
    pub to: Option<String>,
    /// One user or client.
    #[param(value_type = Option<Uuid>)]
    pub principal_id: Option<String>,
}

/// One day of a client.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayView {
    date: NaiveDate,
    requests: u64,
}

/// A client's days.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientDaysView {
    client_id: Uuid,
    name: String,
    /// Exactly `days` entries, oldest first, today (UTC) last; zero when none.
    days: Vec<DayView>,
}

/// Daily usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyUsageView {
    /// One entry per client, by id.
    clients: Vec<ClientDaysView>,
}

impl From<&DailyUsage> for DailyUsageView {
    fn from(usage: &DailyUsage) -> Self {
        Self {
            clients: usage
                .clients
                .iter()
                .map(|c| ClientDaysView {
                    client_id: c.client.id.as_uuid(),
                    name: c.client.name.clone(),
                    days: c
                        .days
                        .iter()
                        .map(|d| DayView {
                            date: d.date,
                            requests: d.requests,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// A client's hits in the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientRequestsView {
    client_id: Uuid,
    name: String,
    requests: u64,
}

/// The clients with the most hits.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopClientsView {
    /// The start of the first hourly bucket counted.
    window_start: DateTime<Utc>,
    /// When the figures were computed.
    window_end: DateTime<Utc>,
    /// Most hits first, ties by `client_id`.
    clients: Vec<ClientRequestsView>,
}

impl From<&TopClients> for TopClientsView {
    fn from(top: &TopClients) -> Self {
        Self {
            window_start: top.window_start,
            window_end: top.window_end,
            clients: top
                .clients
                .iter()
                .map(|c| ClientRequestsView {
                    client_id: c.client.id.as_uuid(),
                    name: c.client.name.clone(),
                    requests: c.requests,
                })
                .collect(),
        }
    }
}

/// A principal's hits in one hour.
#[derive(Debug, Serialize, ToSchema)]
pub struct HourView {
    principal_id: Uuid,
    /// `user` or `client`.
    #[schema(pattern = "^(user|client)$")]
    principal_kind: &'static str,
    /// The start of the hour (UTC).
    hour: DateTime<Utc>,
    requests: u64,
}

/// Hourly usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct HourlyUsageView {
    /// By hour, then principal; hours without hits are left out.
    items: Vec<HourView>,
}

impl From<&HourlyUsage> for HourlyUsageView {
    fn from(usage: &HourlyUsage) -> Self {
        Self {
            items: usage
                .items
                .iter()
                .map(|c| HourView {
                    principal_id: c.principal.id(),
                    principal_kind: c.principal.kind().as_str(),
                    hour: c.hour,
                    requests: c.requests,
                })
                .collect(),
        }
    }
}

/// `body` as JSON with `ETag` (a digest of the bytes) and
/// `Cache-Control: private, max-age`; 304 without a body when `If-None-Match`
/// names that tag.
fn cacheable(req: &HttpRequest, state: &AppState, body: &impl Serialize) -> HttpResponse {
    let bytes = match serde_json::to_vec(body) {
        Ok(bytes) => bytes,
        Err(e) => return actix_web::ResponseError::error_response(&ApiError::internal(e.into())),
    };
    let digest = Sha256::digest(&bytes);
    let tag = format!(
        "\"{}\"",
        digest[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let cache_control = format!("private, max-age={}", state.usage_max_age.as_secs());
    let matches = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|listed| {
            // If-None-Match compares weakly (RFC 9110 §13.1.2).
            listed
                .split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == tag)
        });
    let mut response = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((ETAG, tag))
        .insert_header((CACHE_CONTROL, cache_control));
    if matches {
        response.finish()
    } else {
        response.content_type("application/json").body(bytes)
    }
}

fn viewer(caller: Principal) -> Result<UsageViewer, ApiError> {
    match caller {
        Principal::Client { id } => Ok(UsageViewer::Client(ClientId::from_uuid(id))),
        user if user.has_role(Role::Admin) => Ok(UsageViewer::Admin),
        _ => Err(ApiError::forbidden(
            "Usage figures are for administrators and API clients",
        )),
    }
}

async fn daily(
    req: &HttpRequest,
    state: &AppState,
    caller: Principal,
    query: &DailyQuery,
) -> Result<HttpResponse, ApiError> {
    let viewer = viewer(caller)?;
    let (client, window) = (
        optional("client_id", query.client_id.as_deref(), parse_uuid),
        query
            .days
            .as_deref()
            .map_or(Ok(DailyWindow::DEFAULT), |raw| {
                field("days", whole_number(raw).and_then(DailyWindow::new))
            }),
    )
        .check_all()?;
    let usage = state
        .usage
        .daily(viewer, client.map(ClientId::from_uuid), window)
        .await?;
    Ok(cacheable(req, state, &DailyUsageView::from(&*usage)))
}

/// Requests per client per day for the last `days` days (UTC), zero-filled:
/// administrators see every client (or `client_id`), an API client itself.
#[utoipa::path(tag = "activity", params(DailyQuery), responses(
    (status = 200, body = DailyUsageView),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`client_not_found`"),
))]
#[get("/usage/daily")]
async fn daily_usage(
    req: HttpRequest,
    Caller(caller): Caller,
    state: web::Data<AppState>,
    query: web::Query<DailyQuery>,
) -> Result<HttpResponse, ApiError> {
    daily(&req, &state, caller, &query).await
}

/// Requests per client per day: `GET /v1/usage/daily` under the seed's name.
#[utoipa::path(tag = "activity", params(DailyQuery), responses(
    (status = 200, body = DailyUsageView),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`client_not_found`"),
))]
#[get("/api/usage/daily")]
async fn daily_usage_alias(
    req: HttpRequest,
    Caller(caller): Caller,
    state: web::Data<AppState>,
    query: web::Query<DailyQuery>,
) -> Result<HttpResponse, ApiError> {
    daily(&req, &state, caller, &query).await
}

fn top_window(query: &TopQuery) -> Checked<TopWindow> {
    let number = |name: &str,
                  raw: Option<&str>,
                  default: i64,
                  check: fn(i64) -> Result<u16, InvalidValue>| {
        raw.map_or(Ok(default), |raw| {
            field(name, whole_number(raw).and_then(|n| check(n).map(|_| n)))
        })
    };
    let (hours, limit) = (
        number("hours", query.hours.as_deref(), 24, TopWindow::hours),
        number("limit", query.limit.as_deref(), 3, TopWindow::limit),
    );
    match (hours, limit) {
        (Ok(hours), Ok(limit)) => field("hours", TopWindow::new(hours, limit)),
        (hours, limit) => Err(hours
            .err()
            .into_iter()
            .chain(limit.err())
            .flatten()
            .collect()),
    }
}

async fn top(
    req: &HttpRequest,
    state: &AppState,
    query: &TopQuery,
) -> Result<HttpResponse, ApiError> {
    let (window,) = (top_window(query),).check_all()?;
    let top = state.usage.top(window).await?;
    Ok(cacheable(req, state, &TopClientsView::from(&*top)))
}

/// The clients with the most requests in the last `hours` hourly buckets (the
/// current, partial hour the last of them; `window_start` says where the first
/// begins), ties by id (administrators only).
#[utoipa::path(tag = "activity", params(TopQuery), responses(
    (status = 200, body = TopClientsView),
))]
#[get("/usage/top")]
async fn top_clients(
    req: HttpRequest,
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<TopQuery>,
) -> Result<HttpResponse, ApiError> {
    top(&req, &state, &query).await
}

/// The clients with the most requests: `GET /v1/usage/top` under the seed's name.
#[utoipa::path(tag = "activity", params(TopQuery), responses(
    (status = 200, body = TopClientsView),
))]
#[get("/api/usage/top")]
async fn top_clients_alias(
    req: HttpRequest,
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<TopQuery>,
) -> Result<HttpResponse, ApiError> {
    top(&req, &state, &query).await
}

/// Requests per principal (user or client) per hour, from `from`'s hour to `to`'s
/// (administrators only); hours without requests are left out.
#[utoipa::path(tag = "activity", params(HourlyQuery), responses(
    (status = 200, body = HourlyUsageView),
))]
#[get("/usage/hourly")]
async fn hourly_usage(
    req: HttpRequest,
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<HourlyQuery>,
) -> Result<HttpResponse, ApiError> {
    let (from, to, principal) = (
        optional("from", query.from.as_deref(), parse_instant),
        optional("to", query.to.as_deref(), parse_instant),
        optional("principal_id", query.principal_id.as_deref(), parse_uuid),
    )
        .check_all()?;
    let range = match (from, to) {
        (None, None) => None,
        (from, to) => {
            let to = to.unwrap_or_else(|| state.activity.now());
            let from = from.unwrap_or(to - chrono::TimeDelta::hours(23));
            let (range,) = (field("to", HourlyRange::new(from, to)),).check_all()?;
            Some(range)
        }
    };
    let usage = state.usage.hourly(range, principal).await?;
    Ok(cacheable(&req, &state, &HourlyUsageView::from(&*usage)))
}

//! `POST /v1/logs` (and the seed's `/api/logs`): API clients report hits, one or
//! an array of up to 1000 per request, all accepted or none.

use actix_web::{HttpResponse, post, web};
use chrono::{DateTime, Utc};
use ordo_domain::activity::{HitPrincipal, ReportedHit};
use ordo_domain::auth::Principal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::{Caller, OneOrMany};
use crate::problem::ApiError;
use crate::state::AppState;

pub(super) fn routes(config: &mut ServiceConfig) {
    config.service(report_hits);
}

/// The seed's spelling, outside `/v1`.
pub(super) fn aliases(config: &mut ServiceConfig) {
    config.service(report_hits_alias);
}

/// One hit: a request the client made (or served) that counts in its usage.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HitInput {
    /// The endpoint called, 1 to 512 characters.
    #[schema(schema_with = endpoint)]
    pub endpoint: String,
    /// Its method; `GET` when absent.
    #[schema(pattern = "^[ \\t]*(?i:GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)[ \\t]*$")]
    pub method: Option<String>,
    /// The status it was answered with.
    #[schema(minimum = 100, maximum = 599)]
    pub status: Option<i64>,
    /// When (RFC 3339); now when absent. At most 5 minutes ahead, and not before
    /// the days raw hits are kept (`ORDO_ACTIVITY_RETENTION_DAYS`, 30 by default).
    pub occurred_at: Option<DateTime<Utc>>,
}

fn endpoint() -> utoipa::openapi::Object {
    crate::openapi::text(512, false)
}

/// The body of a report: one hit, or an array of 1 to 1000 (read by
/// [`OneOrMany`], which names a bad element by its index).
#[derive(Debug)]
pub struct HitsInput;

impl utoipa::PartialSchema for HitsInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder};
        let hit = || utoipa::openapi::Ref::from_schema_name("HitInput");
        OneOfBuilder::new()
            .item(hit())
            .item(
                ArrayBuilder::new()
                    .items(hit())
                    .min_items(Some(1))
                    .max_items(Some(
                        ordo_domain::activity::ActivityPolicy::MAX_HITS_PER_REQUEST,
                    )),
            )
            .description(Some("One hit, or an array of 1 to 1000"))
            .into()
    }
}

impl ToSchema for HitsInput {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            "HitInput".to_owned(),
            <HitInput as utoipa::PartialSchema>::schema(),
        ));
    }
}

/// What was accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// How many hits.
    pub accepted: usize,
}

impl From<HitInput> for ReportedHit {
    fn from(input: HitInput) -> Self {
        Self {
            endpoint: input.endpoint,
            method: input.method,
            status: input.status,
            occurred_at: input.occurred_at,
        }
    }
}

async fn report(
    state: &AppState,
    caller: Principal,
    body: OneOrMany<HitInput>,
) -> Result<HttpResponse, ApiError> {
    if !matches!(caller, Principal::Client { .. }) {
        return Err(ApiError::forbidden("Hits are reported by API clients"));
    }
    let (hits, indexed) = match body {
        OneOrMany::One(hit) => (vec![hit.into()], false),
        OneOrMany::Many(hits) => (hits.into_iter().map(Into::into).collect(), true),
    };
    let accepted = state
        .activity
        .report(HitPrincipal::from(caller), hits)
        .await
        .map_err(|e| ApiError::hits_not_recorded(e, indexed))?;
    Ok(HttpResponse::Accepted().json(Accepted { accepted }))
}

/// Reports hits of the calling API client: one, or an array of up to 1000, all
/// accepted or none (an invalid one is named by its index, `[3].status`). 202
/// means the hits will be counted exactly once: they are written in batches
/// within a fraction of a second, and a graceful shutdown writes them first. With
/// `ORDO_ACTIVITY_SYNC=true` they are written before the answer.
#[utoipa::path(tag = "activity", request_body(content = HitsInput), responses(
    (status = 202, body = Accepted),
    (status = 503, body = super::Problem, content_type = "application/problem+json", description = "`ingestion_backpressure` (with `Retry-After`): too many hits wait to be written, nothing was accepted; `database_unavailable` (with `Retry-After`)"),
))]
#[post("/logs")]
async fn report_hits(
    Caller(caller): Caller,
    state: web::Data<AppState>,
    body: OneOrMany<HitInput>,
) -> Result<HttpResponse, ApiError> {
    report(&state, caller, body).await
}

/// Reports hits: `POST /v1/logs` under the seed's name.
#[utoipa::path(tag = "activity", request_body(content = HitsInput), responses(
    (status = 202, body = Accepted),
    (status = 503, body = super::Problem, content_type = "application/problem+json", description = "`ingestion_backpressure` (with `Retry-After`): too many hits wait to be written, nothing was accepted; `database_unavailable` (with `Retry-After`)"),
))]
#[post("/api/logs")]
async fn report_hits_alias(
    Caller(caller): Caller,
    state: web::Data<AppState>,
    body: OneOrMany<HitInput>,
) -> Result<HttpResponse, ApiError> {
    report(&state, caller, body).await
}

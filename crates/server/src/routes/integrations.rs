//! `/v1/integrations`: how the external APIs Ordo depends on are doing
//! (administrators only).

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use ordo_domain::checkout::OutboxBacklog;
use ordo_domain::upstream::{CircuitState, UpstreamHealth};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::Admin;
use crate::problem::ApiError;
use crate::state::AppState;

pub(super) fn routes(config: &mut ServiceConfig) {
    config.service(upstream_health);
}

/// The circuit breaker's position.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitName {
    /// Calls go through.
    Closed,
    /// Calls fail at once, without reaching the upstream.
    Open,
    /// A few probe calls go through to learn whether the upstream is back.
    HalfOpen,
}

impl From<CircuitState> for CircuitName {
    fn from(state: CircuitState) -> Self {
        match state {
            CircuitState::Closed => Self::Closed,
            CircuitState::Open => Self::Open,
            CircuitState::HalfOpen => Self::HalfOpen,
        }
    }
}

/// The upstream as this instance's adapter has seen it lately, and what waits
/// to be delivered to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamHealthView {
    /// The circuit breaker's position.
    circuit: CircuitName,
    /// Attempts in the adapter's recent window.
    recent_calls: u64,
    /// The share of those that failed (timeouts, connection errors, 5xx, 429),
    /// 0 to 1.
    recent_error_rate: f64,
    /// Their median latency in milliseconds; `null` without any attempt.
    latency_p50_ms: Option<f64>,
    /// Their 99th-percentile latency in milliseconds; `null` without any attempt.
    latency_p99_ms: Option<f64>,
    /// Outbox deliveries to the upstream not yet made (all instances): waiting
    /// for their checkout to settle, or due.
    outbox_backlog: u64,
    /// When the oldest of them was written; `null` when there is none.
    oldest_pending_at: Option<DateTime<Utc>>,
}

impl UpstreamHealthView {
    fn of(health: UpstreamHealth, backlog: OutboxBacklog) -> Self {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1_000.0;
        Self {
            circuit: health.circuit.into(),
            recent_calls: health.recent_calls,
            recent_error_rate: health.recent_error_rate,
            latency_p50_ms: health.latency_p50.map(ms),
            latency_p99_ms: health.latency_p99.map(ms),
            outbox_backlog: backlog.pending,
            oldest_pending_at: backlog.oldest_pending_since,
        }
    }
}

/// The upstream's recent health as this instance sees it, and the outbox
/// backlog (administrators only).
#[utoipa::path(tag = "integrations", responses(
    (status = 200, body = UpstreamHealthView),
    (status = 503, body = super::Problem, content_type = "application/problem+json", description = "`database_unavailable` (with `Retry-After`): the outbox could not be read"),
))]
#[get("/integrations/upstream")]
async fn upstream_health(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let backlog = state.checkout.outbox_backlog().await?;
    Ok(HttpResponse::Ok().json(UpstreamHealthView::of(
        state.upstream.monitor.health(),
        backlog,
    )))
}

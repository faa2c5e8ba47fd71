//! Liveness, readiness and metrics.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use serde_json::json;

use crate::problem::{ApiError, ProblemCode};
use crate::state::AppState;

/// The process is up.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Alive", body = crate::openapi::HealthStatus)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The instance takes new requests: it is not shutting down, the database answers
/// within two seconds and no background task has died.
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "Ready", body = crate::openapi::HealthStatus),
    (status = 503, description = "`not_ready`: the instance is shutting down, the database does not answer, the embedded cluster is restarting or a background task died", body = crate::routes::Problem, content_type = "application/problem+json"),
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.draining.is_draining() {
        return Err(not_ready(
            "this instance is shutting down; it finishes what it has",
        ));
    }
    if state.database_health.as_ref().is_some_and(|h| !h.is_up()) {
        return Err(not_ready("the embedded PostgreSQL server is restarting"));
    }
    if let Some(failure) = state.tasks.failures().first() {
        return Err(not_ready(&format!(
            "the background task {} died: {}",
            failure.task, failure.reason
        )));
    }
    match tokio::time::timeout(Duration::from_secs(2), ordo_postgres::ping(&state.pool)).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(json!({"status": "ready"}))),
        Ok(Err(e)) => {
            tracing::warn!(error = ?e, "readiness check failed");
            Err(not_ready("the database does not answer"))
        }
        Err(_) => Err(not_ready("the database did not answer within 2 s")),
    }
}

fn not_ready(detail: &str) -> ApiError {
    ApiError::new(ProblemCode::NotReady, detail)
}

/// Prometheus text exposition.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

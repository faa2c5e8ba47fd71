//! Liveness, readiness and metrics.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use serde_json::json;

use crate::problem::ApiError;
use crate::state::AppState;

/// The process is up.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Alive", body = crate::openapi::HealthStatus)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The database answers within two seconds.
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "Ready", body = crate::openapi::HealthStatus),
    (status = 503, description = "`not_ready`: the database does not answer", body = crate::routes::Problem, content_type = "application/problem+json"),
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
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
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
        "Not ready",
        detail,
    )
}

/// Prometheus text exposition.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

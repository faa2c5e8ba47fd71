//! Every `/v1` (and `/api`) request of a user or an API client is itself a hit:
//! its method, route template (`/v1/orders/{id}`, never the raw path, so ids do
//! not multiply the endpoints), status, latency, address and principal go to the
//! activity sink once the response is ready.
//!
//! Runs after the caller is resolved and around rate limiting, so a refused
//! request counts too. It costs the request one small allocation and a send on
//! the sink's queue — no lock held, no I/O, no waiting: when the queue is full the
//! hit is dropped and counted in `/metrics` (`activity_hits_dropped_total`), never
//! the request failed.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use ordo_domain::activity::{Endpoint, Hit, HitMethod, HitPrincipal, HitSource, HitStatus};

use super::client_ip::ClientIp;
use super::metrics::RouteTemplate;
use super::principal::Credentials;
use super::rate_limit::is_limited;
use crate::state::AppState;

fn method(method: &Method) -> HitMethod {
    match *method {
        Method::GET => HitMethod::Get,
        Method::HEAD => HitMethod::Head,
        Method::POST => HitMethod::Post,
        Method::PUT => HitMethod::Put,
        Method::PATCH => HitMethod::Patch,
        Method::DELETE => HitMethod::Delete,
        Method::OPTIONS => HitMethod::Options,
        _ => HitMethod::Other,
    }
}

/// Records the request as a hit of its caller.
///
/// # Errors
/// Only those of the wrapped service.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let principal = match req.extensions().get::<Credentials>() {
        Some(Credentials::Valid(principal)) if is_limited(req.path()) => Some(*principal),
        _ => None,
    };
    let (Some(principal), Some(state)) =
        (principal, req.app_data::<web::Data<AppState>>().cloned())
    else {
        return next.call(req).await;
    };
    let started = Instant::now();
    let occurred_at = state.activity.now();
    let method = method(req.method());
    let ip = req.extensions().get::<ClientIp>().map(|ip| ip.0);
    let response = next.call(req).await?;
    let endpoint = Endpoint::parse(RouteTemplate::of(response.request()).0);
    if let Ok(endpoint) = endpoint {
        state.activity.observe(Hit {
            principal: HitPrincipal::from(principal),
            occurred_at,
            method,
            endpoint,
            status: HitStatus::new(i64::from(response.status().as_u16())).ok(),
            latency: Some(started.elapsed()),
            ip,
            source: HitSource::Observed,
        });
    }
    Ok(response)
}

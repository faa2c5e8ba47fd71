//! Request counters and latency histograms per route template, with labels whose
//! values are bounded: a made-up method or an unmatched path never creates a new
//! series, so `/metrics` cannot be grown by a client.

use std::collections::HashSet;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The latency histogram's name.
const DURATION: &str = "http_request_duration_seconds";

/// The buckets of the latency histogram, in seconds: fixed buckets keep its memory
/// constant however many requests are measured.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often the exporter's upkeep runs (see [`upkeep`]).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder; installed once, shared by every app in
/// the process (tests start many).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    let handle = HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(DURATION.to_owned()),
                BUCKETS,
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will stay empty");
        }
        handle
    });
    handle.clone()
}

/// The exporter's periodic upkeep (draining histogram samples into buckets), as a
/// background task: without it samples pile up until someone reads `/metrics`.
pub async fn upkeep(
    handle: PrometheusHandle,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}

/// The `method` label: the standard methods by name, anything else as `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The route template a request matched (`/v1/orders/{id}`, or `unmatched`).
/// Matching runs the router's patterns again, so the metrics middleware finds it
/// once and leaves it in the request's extensions for the middleware inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteTemplate(pub &'static str);

impl RouteTemplate {
    /// The template of `req`: the one an outer middleware found, else matched now.
    pub fn of(req: &HttpRequest) -> Self {
        if let Some(found) = req.extensions().get::<Self>() {
            return *found;
        }
        Self(intern(req.match_pattern()))
    }
}

/// `pattern` as a string that lives as long as the process, each kept once: the
/// patterns are the app's routes, a fixed set, so label values and endpoints need
/// no allocation per request.
fn intern(pattern: Option<String>) -> &'static str {
    static SEEN: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    let Some(pattern) = pattern else {
        return "unmatched";
    };
    let seen = SEEN.get_or_init(RwLock::default);
    if let Some(found) = seen
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(pattern.as_str())
    {
        return found;
    }
    let mut seen = seen.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = seen.get(pattern.as_str()) {
        return found;
    }
    let kept: &'static str = Box::leak(pattern.into_boxed_str());
    seen.insert(kept);
    kept
}

/// Middleware: counts every request and records its latency, labelled by method,
/// route template (`/v1/orders/{id}`, or `unmatched`) and status.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let method = method_label(req.method());
    let route = RouteTemplate::of(req.request());
    req.extensions_mut().insert(route);
    let route = route.0;
    let started = Instant::now();
    let response = next.call(req).await?;
    let elapsed = started.elapsed();
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "route" => route, "status" => status)
        .increment(1);
    metrics::histogram!(DURATION, "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_is_kept_once_and_no_pattern_is_unmatched() {
        let first = intern(Some("/v1/things/{id}".to_owned()));
        let again = intern(Some("/v1/things/{id}".to_owned()));
        assert_eq!(first, "/v1/things/{id}");
        assert!(
            std::ptr::eq(first, again),
            "the second lookup found the kept one"
        );
        assert_eq!(intern(None), "unmatched");
    }

    #[test]
    fn made_up_methods_fold_into_one_label() {
        let made_up = Method::from_bytes(b"BREW").expect("a token");
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }
}

//! The request id and path of the request being handled, available to code that has
//! no access to the request (such as error rendering) for the length of the request,
//! and the tracing span every log line of the request carries.

use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

/// The header carrying the request id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-chosen request id that is echoed.
pub const MAX_REQUEST_ID_LEN: usize = 200;

/// What every log line and problem document of a request mentions.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The client's `X-Request-Id`, or a new UUID.
    pub request_id: String,
    /// The request path, the problem's `instance`.
    pub path: String,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// The context of the request being handled on this task, if any.
pub fn current() -> Option<RequestContext> {
    CONTEXT.try_with(Clone::clone).ok()
}

/// A client-chosen id is echoed when it is short printable ASCII; anything else is
/// replaced, so logs never carry attacker-shaped text.
fn accepted_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let fine = !text.is_empty()
        && text.len() <= MAX_REQUEST_ID_LEN
        && text.bytes().all(|b| b.is_ascii_graphic());
    fine.then(|| text.to_owned())
}

/// Middleware: assigns the request id, runs the rest of the request inside a
/// tracing span and the task-local context, then logs and tags the response.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(accepted_request_id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let context = RequestContext {
        request_id: request_id.clone(),
        path: req.path().to_owned(),
    };
    req.extensions_mut().insert(context.clone());
    let span =
        tracing::info_span!("request", %request_id, method = %req.method(), path = %req.path());
    let started = Instant::now();
    let result = CONTEXT
        .scope(context, next.call(req).instrument(span.clone()))
        .await;
    let mut response = result?;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "handled"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

//! A request body must arrive within the request deadline: a client that sends
//! headers and then stalls mid-body gets 408 and its connection closed, instead of
//! holding a connection and its memory for as long as it likes. The request head
//! has the same deadline, enforced by the HTTP server itself.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use futures::StreamExt;
use tokio::time::Instant;

/// The deadline for reading a request's body, counted from when its head arrived.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub Duration);

/// Whether a payload error is this middleware's deadline passing.
pub fn is_deadline(error: &PayloadError) -> bool {
    matches!(error, PayloadError::Io(e) if e.kind() == io::ErrorKind::TimedOut)
}

fn has_body(req: &ServiceRequest) -> bool {
    let length = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    length.is_some_and(|n| n > 0) || req.headers().contains_key(TRANSFER_ENCODING)
}

/// Middleware: bounds the time to read the body, and closes the connection after
/// a response whose request body was not read to its end (an unread, stalled body
/// would otherwise keep the connection waiting).
pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(limit) = req.app_data::<web::Data<BodyDeadline>>().map(|d| d.0) else {
        return next.call(req).await;
    };
    if !has_body(&req) {
        return next.call(req).await;
    }
    let deadline = Instant::now() + limit;
    let finished = Arc::new(AtomicBool::new(false));
    let payload = req.take_payload();
    let stream = futures::stream::unfold(
        (Some(payload), finished.clone()),
        move |(payload, finished)| async move {
            let mut payload = payload?;
            match tokio::time::timeout_at(deadline, payload.next()).await {
                Ok(Some(chunk)) => Some((chunk, (Some(payload), finished))),
                Ok(None) => {
                    finished.store(true, Ordering::Release);
                    None
                }
                Err(_) => {
                    let timed_out = io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request body did not arrive in time",
                    );
                    Some((Err(PayloadError::Io(timed_out)), (None, finished)))
                }
            }
        },
    );
    req.set_payload(Payload::Stream {
        payload: Box::pin(stream),
    });
    let mut response = next.call(req).await?;
    if !finished.load(Ordering::Acquire) {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    Ok(response)
}

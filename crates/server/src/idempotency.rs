//! `Idempotency-Key` over HTTP: the [`IdempotentJson`] extractor (the body, the
//! key, and the request's fingerprint) and [`respond_once`], which answers a
//! repeated request with the first one's response.

use std::future::Future;

use actix_web::body::{BoxBody, to_bytes};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, ETAG, HeaderName, HeaderValue, LOCATION, RETRY_AFTER};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use futures::future::LocalBoxFuture;
use ordo_domain::auth::Principal;
use ordo_domain::idempotency::{
    IdempotencyClaim, IdempotentRequest, KeyOwner, RequestFingerprint, StoredResponse,
};
use ordo_domain::orders::OrderId;
use ordo_domain::upstream::IdempotencyKey;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::extract::{body_error, is_json, parse_json};
use crate::problem::{ApiError, FieldError, ProblemCode};
use crate::state::AppState;

/// The request header carrying the key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The response header that marks a replayed response.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The headers of a response that are kept to answer its repetitions.
const KEPT_HEADERS: [HeaderName; 4] = [CONTENT_TYPE, LOCATION, ETAG, RETRY_AFTER];

/// A JSON body (as [`JsonBody`](crate::extract::JsonBody)) with the request's
/// `Idempotency-Key`, if it has one (an invalid one is 422 `validation_failed`),
/// and a fingerprint of its method, path and body.
#[derive(Debug)]
pub struct IdempotentJson<T> {
    /// The body.
    pub body: T,
    /// The key.
    pub key: Option<IdempotencyKey>,
    /// The request's fingerprint.
    pub fingerprint: RequestFingerprint,
}

impl<T> IdempotentJson<T> {
    /// The key, which this route requires: 400 `idempotency_key_required` without.
    ///
    /// # Errors
    /// When the request has no key.
    pub fn required_key(&self) -> Result<IdempotencyKey, ApiError> {
        self.key.clone().ok_or_else(|| {
            ApiError::new(
                ProblemCode::IdempotencyKeyRequired,
                "This route needs an Idempotency-Key header (e.g. a UUID): a retry with the same key is never performed twice",
            )
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for IdempotentJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = is_json(req.headers());
        let key = req
            .headers()
            .get(IDEMPOTENCY_KEY)
            .map(|v| IdempotencyKey::parse(v.to_str().unwrap_or_default()));
        let head = format!("{} {}\n", req.method(), req.path());
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
            }
            let bytes = bytes.await.map_err(|e| body_error(&e))?;
            let body = parse_json(&bytes)?;
            let key = key.transpose().map_err(|e| {
                ApiError::validation(vec![FieldError::new("Idempotency-Key", e.message())])
            })?;
            let digest = Sha256::new()
                .chain_update(head.as_bytes())
                .chain_update(&bytes)
                .finalize();
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            let fingerprint = RequestFingerprint::parse(&hex).map_err(|e| {
                ApiError::internal(anyhow::anyhow!("fingerprinting a request: {e}"))
            })?;
            Ok(Self {
                body,
                key,
                fingerprint,
            })
        })
    }
}

/// Runs `handle` once per key of `principal`: without a key, simply runs it;
/// with one, claims the key first and answers a repetition with the first
/// response (`Idempotent-Replayed: true`), a repetition while the first runs with
/// 409 `idempotency_key_in_use`, and the key with another request with 422
/// `idempotency_key_reused`. A first request answered 500 or 503 had no effect
/// (nothing was written), so its key is released and a retry is performed.
/// A first request that never answered (its process died) holds the key only
/// for its lease; a repetition after that takes the key over and `handle` is
/// told the order the first one created, if any, to carry on from there.
///
/// # Errors
/// When the key cannot be claimed (the database is unavailable); the handler's
/// own errors become its (stored) response.
pub async fn respond_once<F, Fut>(
    state: &AppState,
    principal: &Principal,
    key: Option<IdempotencyKey>,
    fingerprint: RequestFingerprint,
    handle: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(Option<IdempotentRequest>, Option<OrderId>) -> Fut,
    Fut: Future<Output = Result<HttpResponse, ApiError>>,
{
    let Some(key) = key else {
        return handle(None, None).await;
    };
    let request = IdempotentRequest {
        owner: KeyOwner::new(principal.kind(), principal.id()),
        key,
        fingerprint,
    };
    let resumes = match state.idempotency.claim(&request).await? {
        IdempotencyClaim::Claimed => None,
        IdempotencyClaim::TakeOver { order_id } => {
            tracing::info!(
                order_id = ?order_id,
                "taking over an idempotency key whose first request never answered"
            );
            order_id
        }
        IdempotencyClaim::Replay(stored) => return Ok(replay(stored)),
        IdempotencyClaim::InUse => {
            return Err(ApiError::new(
                ProblemCode::IdempotencyKeyInUse,
                "A request with this Idempotency-Key is still being processed; repeat it once it has finished",
            ));
        }
        IdempotencyClaim::Reused => {
            return Err(ApiError::new(
                ProblemCode::IdempotencyKeyReused,
                "This Idempotency-Key was used for a different request; use a new key for a new request",
            ));
        }
    };
    let response = match handle(Some(request.clone()), resumes).await {
        Ok(response) => response,
        Err(error) => error.error_response(),
    };
    let status = response.status();
    if matches!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR | StatusCode::SERVICE_UNAVAILABLE
    ) {
        if let Err(e) = state.idempotency.release(&request).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "could not release an idempotency key"
            );
        }
        return Ok(response);
    }
    let (head, body) = response.into_parts();
    let body = to_bytes(body)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("reading a response to keep: {e}")))?;
    let stored = StoredResponse {
        status: status.as_u16(),
        headers: KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = head.headers().get(name)?.to_str().ok()?;
                Some((name.as_str().to_owned(), value.to_owned()))
            })
            .collect(),
        body: body.to_vec(),
    };
    if let Err(e) = state.idempotency.complete(&request, stored).await {
        // The response still goes out; a repetition meanwhile sees the key in use.
        tracing::warn!(
            error = format!("{e:#}"),
            "could not keep an idempotent response"
        );
    }
    Ok(head.set_body(BoxBody::new(body)))
}

/// The stored response, marked as replayed.
fn replay(stored: StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut builder = HttpResponse::build(status);
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            builder.insert_header((name, value));
        }
    }
    builder.insert_header((IDEMPOTENT_REPLAYED, "true"));
    builder.body(stored.body)
}

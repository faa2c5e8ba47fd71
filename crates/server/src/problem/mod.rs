//! Every error response is an RFC 9457 `application/problem+json` document.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Value};

use ordo_domain::{Dependency, Unavailable};

use crate::middleware::request_id as request_context;

mod activity;
mod auth;
mod clients;
mod code;
mod domain;
mod jobs;
mod rate_limits;
mod reports;

pub use clients::client_not_found;
pub use code::ProblemCode;
pub use domain::{basket_not_found, customer_not_found, order_not_found, product_not_found};
pub use jobs::job_not_found;

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    /// Where the value sits, e.g. `items[0].quantity`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem document, as every error is answered; the one definition of
/// its shape, for the wire and for the OpenAPI document. Extension members named
/// per code (`conflicting_order_id`, `available`, …) are added beside these.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `/problems/<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The request path.
    pub instance: String,
    /// A stable code to branch on.
    pub code: String,
    /// The request's `X-Request-Id`.
    pub request_id: String,
    /// For `validation_failed`: one entry per invalid field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub errors: Option<Vec<FieldError>>,
}

/// An error answered with a problem document: a [`ProblemCode`] (which fixes the
/// status and title), a human `detail`, and extension members. Boxed: it travels in
/// every handler's `Result`.
pub struct ApiError(Box<Details>);

struct Details {
    code: ProblemCode,
    detail: String,
    extensions: Map<String, Value>,
    errors: Vec<FieldError>,
    headers: Vec<(HeaderName, HeaderValue)>,
    source: Option<anyhow::Error>,
}

impl ApiError {
    /// A problem with the given code and detail.
    pub fn new(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self(Box::new(Details {
            code,
            detail: detail.into(),
            extensions: Map::new(),
            errors: Vec::new(),
            headers: Vec::new(),
            source: None,
        }))
    }

    /// The problem's code.
    pub fn code(&self) -> ProblemCode {
        self.0.code
    }

    /// Adds an extension member. Its name must not be one of the document's own
    /// members, which would hide it.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        debug_assert!(
            !STANDARD_MEMBERS.contains(&key),
            "the extension member {key} would be hidden by the problem's own"
        );
        self.0.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.push((name, value));
        self
    }

    /// 400 `invalid_json`: the body is not JSON.
    pub fn invalid_json(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::InvalidJson, detail)
    }

    /// 422 `validation_failed` with one entry per invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        let mut error = Self::new(ProblemCode::ValidationFailed, detail);
        error.0.errors = errors;
        error
    }

    /// 412 `precondition_failed`: `If-Match` names another version.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::PreconditionFailed, detail)
    }

    /// 500 with a generic body; `source` goes to the log, never to the client.
    /// When an outside system is merely [`Unavailable`], 503 with `Retry-After`.
    pub fn internal(source: anyhow::Error) -> Self {
        if let Some(unavailable) = Unavailable::find(&source) {
            tracing::warn!(error = format!("{source:#}"), "dependency unavailable");
            let code = match unavailable.dependency() {
                Dependency::Database => ProblemCode::DatabaseUnavailable,
                Dependency::Upstream => ProblemCode::UpstreamUnavailable,
            };
            let detail = format!(
                "The {} is busy or unreachable; try again shortly.",
                unavailable.dependency().as_str()
            );
            return Self::new(code, detail).retry_after(unavailable.retry_after());
        }
        let mut error = Self::new(
            ProblemCode::InternalError,
            "The server failed to handle the request; it has been logged with the request id.",
        );
        error.0.source = Some(source);
        error
    }

    /// Adds `Retry-After` in whole seconds, at least one.
    pub fn retry_after(self, wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        self.with_header(RETRY_AFTER, HeaderValue::from(seconds.max(1)))
    }

    /// The problem document for a bare status (routing, payload and similar
    /// failures that happen before a handler runs).
    pub fn for_status(status: StatusCode) -> Self {
        let code = ProblemCode::for_status(status);
        let detail = match code {
            ProblemCode::NotFound => "No resource at this path",
            ProblemCode::MethodNotAllowed => "This path does not support this method",
            ProblemCode::RequestTimeout => "The request was not received in time",
            ProblemCode::PayloadTooLarge => "Request bodies are limited to 1 MiB",
            ProblemCode::UriTooLong => "The request URI is too long",
            ProblemCode::UnsupportedMediaType => "Send JSON with Content-Type: application/json",
            ProblemCode::HeadersTooLarge => "The request headers are too large",
            ProblemCode::InternalError => "The server failed to handle the request",
            ProblemCode::NotReady => "The service is not ready",
            _ => "The request could not be understood",
        };
        Self::new(code, detail)
    }

    fn body(&self) -> Value {
        let context = request_context::current();
        let code = self.0.code;
        let document = Problem {
            problem_type: format!("/problems/{}", code.as_str()),
            title: code.title().to_owned(),
            status: code.status().as_u16(),
            detail: self.0.detail.clone(),
            instance: context.as_ref().map(|c| c.path.clone()).unwrap_or_default(),
            code: code.as_str().to_owned(),
            request_id: context.map(|c| c.request_id).unwrap_or_default(),
            errors: (!self.0.errors.is_empty()).then(|| self.0.errors.clone()),
        };
        let mut body = match serde_json::to_value(document) {
            Ok(Value::Object(body)) => body,
            _ => Map::new(),
        };
        for (key, value) in &self.0.extensions {
            body.entry(key.clone()).or_insert_with(|| value.clone());
        }
        Value::Object(body)
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("code", &self.0.code)
            .field("detail", &self.0.detail)
            .field("source", &self.0.source)
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.0.code.status().as_u16(),
            self.0.code.as_str(),
            self.0.detail
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(source) = &self.0.source {
            tracing::error!(error = ?source, "request failed unexpectedly");
        }
        let mut response = HttpResponse::build(self.status_code());
        response.content_type(PROBLEM_JSON);
        for (name, value) in &self.0.headers {
            response.insert_header((name.clone(), value.clone()));
        }
        response.body(self.body().to_string())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(e)
    }
}

/// The members every problem document has; extensions take other names.
const STANDARD_MEMBERS: &[&str] = &[
    "type",
    "title",
    "status",
    "detail",
    "instance",
    "code",
    "request_id",
    "errors",
];

/// The media type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

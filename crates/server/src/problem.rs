//! Every error response is an RFC 9457 `application/problem+json` document.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::request_context;

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

/// An error answered with a problem document: a status, a stable `code` clients can
/// branch on, a human `detail`, and extension members. Boxed: it travels in every
/// handler's `Result`.
pub struct ApiError(Box<Details>);

struct Details {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    extensions: Map<String, Value>,
    errors: Vec<FieldError>,
    headers: Vec<(HeaderName, HeaderValue)>,
    source: Option<anyhow::Error>,
}

impl ApiError {
    /// A problem with the given status, code, title and detail.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self(Box::new(Details {
            status,
            code,
            title,
            detail: detail.into(),
            extensions: Map::new(),
            errors: Vec::new(),
            headers: Vec::new(),
            source: None,
        }))
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
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
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "Malformed JSON",
            detail,
        )
    }

    /// 422 `validation_failed` with one entry per invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "The request is invalid",
            detail,
        );
        error.0.errors = errors;
        error
    }

    /// 404 with a resource-specific code.
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, "Not found", detail)
    }

    /// 409 with a specific code.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, "Conflict", detail)
    }

    /// 412 `precondition_failed`: `If-Match` names another version.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "The resource has changed",
            detail,
        )
    }

    /// 500 with a generic body; `source` goes to the log, never to the client.
    /// When the database is merely unavailable, 503 with `Retry-After` instead.
    pub fn internal(source: anyhow::Error) -> Self {
        if source
            .chain()
            .any(|cause| cause.is::<ordo_postgres::DatabaseUnavailable>())
        {
            tracing::warn!(error = %source, "database unavailable");
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "Service unavailable",
                "The database is busy or unreachable; try again shortly.",
            )
            .with_header(
                actix_web::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            );
        }
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal server error",
            "The server failed to handle the request; it has been logged with the request id.",
        );
        error.0.source = Some(source);
        error
    }

    /// The problem document for a bare status (routing, payload and similar
    /// failures that happen before a handler runs).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, title, detail) = match status {
            StatusCode::NOT_FOUND => ("not_found", "Not found", "No resource at this path"),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                "Method not allowed",
                "This path does not support this method",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "payload_too_large",
                "Payload too large",
                "Request bodies are limited to 1 MiB",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "Unsupported media type",
                "Send JSON with Content-Type: application/json",
            ),
            s if s.is_server_error() => (
                "internal_error",
                "Internal server error",
                "The server failed to handle the request",
            ),
            _ => (
                "bad_request",
                "Bad request",
                "The request could not be understood",
            ),
        };
        Self::new(status, code, title, detail)
    }

    fn body(&self) -> Value {
        let context = request_context::current();
        let mut body = Map::new();
        body.insert("type".into(), format!("/problems/{}", self.0.code).into());
        body.insert("title".into(), self.0.title.into());
        body.insert("status".into(), self.0.status.as_u16().into());
        body.insert("detail".into(), self.0.detail.clone().into());
        if let Some(context) = &context {
            body.insert("instance".into(), context.path.clone().into());
        }
        body.insert("code".into(), self.0.code.into());
        if let Some(context) = &context {
            body.insert("request_id".into(), context.request_id.clone().into());
        }
        if !self.0.errors.is_empty() {
            body.insert(
                "errors".into(),
                serde_json::to_value(&self.0.errors).unwrap_or(Value::Null),
            );
        }
        for (key, value) in &self.0.extensions {
            body.entry(key.clone()).or_insert_with(|| value.clone());
        }
        Value::Object(body)
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("status", &self.0.status)
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
            self.0.status.as_u16(),
            self.0.code,
            self.0.detail
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(source) = &self.0.source {
            tracing::error!(error = ?source, "request failed unexpectedly");
        }
        let mut response = HttpResponse::build(self.0.status);
        response.content_type("application/problem+json");
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

//! Turning requests into typed values, with every failure a problem document.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, ETAG, HeaderMap, IF_MATCH};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponseBuilder, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::LocalBoxFuture;
use ordo_domain::auth::{Principal, Role};
use ordo_domain::{InvalidValue, PageLimit, PageRequest, Version, VersionMatch};
use serde::de::DeserializeOwned;

use crate::middleware::principal::Credentials;
use crate::problem::{ApiError, FieldError};

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON request body. Unlike actix's `Json`, failures are problem documents that
/// name the offending field (`items[0].quantity`): malformed JSON is 400
/// `invalid_json`, a wrong type or unknown field is 422 `validation_failed`, a body
/// over 1 MiB is 413, a non-JSON content type is 415, a body that does not arrive
/// before the request deadline is 408.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        read_json(req, payload, |bytes| parse_json(bytes).map(JsonBody))
    }
}

/// A JSON request body that is one object or an array of them, read like
/// [`JsonBody`]; an invalid element is named by its index (`[3].status`).
#[derive(Debug)]
pub enum OneOrMany<T> {
    /// The body was an object.
    One(T),
    /// The body was an array.
    Many(Vec<T>),
}

impl<T: DeserializeOwned + 'static> FromRequest for OneOrMany<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        read_json(req, payload, |bytes| {
            check_syntax(bytes)?;
            match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'[') => deserialize_tracked(bytes).map(OneOrMany::Many),
                Some(b'{') => deserialize_tracked(bytes).map(OneOrMany::One),
                _ => Err(ApiError::validation(vec![FieldError::new(
                    "body",
                    "the body must be a JSON object or an array of objects",
                )])),
            }
        })
    }
}

/// Reads a JSON body and parses it with `parse`: 415 unless it is sent as JSON,
/// 408, 413 or 400 when it cannot be read.
fn read_json<R: 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    parse: fn(&[u8]) -> Result<R, ApiError>,
) -> LocalBoxFuture<'static, Result<R, ApiError>> {
    let is_json = is_json(req.headers());
    let bytes = web::Bytes::from_request(req, payload);
    Box::pin(async move {
        if !is_json {
            return Err(ApiError::for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        let bytes = bytes.await.map_err(|e| body_error(&e))?;
        parse(&bytes)
    })
}

/// Whether the request says its body is JSON (`application/json` or
/// `application/*+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

/// The problem of a body that could not be read: 408 past the deadline, 413 over
/// the size limit, 400 `invalid_json` otherwise.
pub fn body_error(e: &actix_web::Error) -> ApiError {
    let timed_out = e
        .as_error::<actix_web::error::PayloadError>()
        .is_some_and(crate::middleware::body_deadline::is_deadline);
    if timed_out {
        ApiError::for_status(StatusCode::REQUEST_TIMEOUT)
    } else if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE)
    } else {
        ApiError::invalid_json(format!("the body could not be read: {e}"))
    }
}

/// Deserialises a JSON object from `bytes`, tracking the path to a failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    check_syntax(bytes)?;
    // Serde would read an array into a struct field by field, with baffling errors.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::validation(vec![FieldError::new(
            "body",
            "the body must be a JSON object",
        )]));
    }
    deserialize_tracked(bytes)
}

/// A syntax-only pass, so that malformed JSON is always 400 even when a prefix of
/// it would already fail as data (`{}{}`, a truncated object).
fn check_syntax(bytes: &[u8]) -> Result<(), ApiError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map(|_| ())
        .map_err(|e| ApiError::invalid_json(format!("the body is not valid JSON: {e}")))
}

/// Deserialises syntactically valid JSON, naming the path to a failure.
fn deserialize_tracked<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => {
            deserializer.end().map_err(|e| {
                ApiError::invalid_json(format!("unexpected data after the JSON value: {e}"))
            })?;
            Ok(value)
        }
        Err(e) => with_integral_floats_as_integers(bytes).ok_or_else(|| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            json_error(&path, &inner)
        }),
    }
}

/// JSON has one kind of number: to JSON Schema, and to clients generated from the
/// OpenAPI document, `2.0` is the integer 2. When a body failed only because of
/// such numbers, it is read again with each exactly representable integral float
/// (|x| ≤ 2⁵³) as an integer; `None` when that changes nothing or does not help.
fn with_integral_floats_as_integers<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    fn convert(value: &mut serde_json::Value) -> bool {
        const EXACT: f64 = 9_007_199_254_740_992.0;
        match value {
            serde_json::Value::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() <= EXACT => {
                    // Exact: |f| ≤ 2⁵³ and integral.
                    *value = (f as i64).into();
                    true
                }
                _ => false,
            },
            serde_json::Value::Array(items) => items.iter_mut().fold(false, |c, v| convert(v) | c),
            serde_json::Value::Object(fields) => {
                fields.values_mut().fold(false, |c, v| convert(v) | c)
            }
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if !convert(&mut value) {
        return None;
    }
    serde_json::from_value(value).ok()
}

fn json_error(path: &str, error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Data => {
            let message = strip_position(&error.to_string());
            // serde reports a missing field at its parent; name the field itself.
            let missing = message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.strip_suffix('`'));
            let field = match (path, missing) {
                (".", Some(name)) => name.to_owned(),
                (parent, Some(name)) => format!("{parent}.{name}"),
                (".", None) => "body".to_owned(),
                (path, None) => path.to_owned(),
            };
            ApiError::validation(vec![FieldError::new(field, message)])
        }
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::invalid_json(format!("the body is not valid JSON: {error}"))
        }
    }
}

/// serde_json appends " at line 1 column 42" to data errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// A field's parse result, with the field's name attached to a failure.
pub type Checked<T> = Result<T, Vec<FieldError>>;

/// Attaches `field` to the error of a domain parse.
pub fn field<T>(field: impl Into<String>, parsed: Result<T, InvalidValue>) -> Checked<T> {
    parsed.map_err(|e| vec![FieldError::new(field, e.message())])
}

/// Parses an optional value, keeping `None` as `None`.
pub fn optional<R, T>(
    name: &str,
    raw: Option<R>,
    parse: impl FnOnce(R) -> Result<T, InvalidValue>,
) -> Checked<Option<T>> {
    raw.map(|raw| field(name, parse(raw))).transpose()
}

/// Parses a field that can be cleared: absent stays `None` (unchanged), `null`
/// becomes `Some(None)` (cleared), a value becomes `Some(Some(parsed))`.
pub fn clearable<R, T>(
    name: &str,
    raw: Option<Option<R>>,
    parse: impl FnOnce(R) -> Result<T, InvalidValue>,
) -> Checked<Option<Option<T>>> {
    match raw {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(raw)) => field(name, parse(raw)).map(|v| Some(Some(v))),
    }
}

/// Collects the results of several field checks: all values, or every error.
pub trait CheckAll {
    /// The values when every check passed.
    type Output;
    /// All values, or a 422 listing every failed field.
    fn check_all(self) -> Result<Self::Output, ApiError>;
}

macro_rules! check_all_tuple {
    ($($name:ident),+) => {
        impl<$($name),+> CheckAll for ($(Checked<$name>,)+) {
            type Output = ($($name,)+);
            #[allow(non_snake_case)]
            fn check_all(self) -> Result<Self::Output, ApiError> {
                let ($($name,)+) = self;
                let mut errors = Vec::new();
                $(let $name = $name.map_err(|e| errors.extend(e)).ok();)+
                match ($($name,)+) {
                    ($(Some($name),)+) => Ok(($($name,)+)),
                    _ => Err(ApiError::validation(errors)),
                }
            }
        }
    };
}
check_all_tuple!(A);
check_all_tuple!(A, B);
check_all_tuple!(A, B, C);
check_all_tuple!(A, B, C, D);
check_all_tuple!(A, B, C, D, E);
check_all_tuple!(A, B, C, D, E, F);
check_all_tuple!(A, B, C, D, E, F, G);

/// Every element's check, in order: all values or every error.
pub fn check_each<T>(results: impl IntoIterator<Item = Checked<T>>) -> Checked<Vec<T>> {
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(v) => values.push(v),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

/// The `If-Match` precondition: `None` when absent or `*`.
#[derive(Debug, Clone)]
pub struct IfMatch(pub Option<VersionMatch>);

impl FromRequest for IfMatch {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(value) = req.headers().get(IF_MATCH) else {
            return ready(Ok(IfMatch(None)));
        };
        let text = value.to_str().unwrap_or_default().trim();
        if text == "*" {
            return ready(Ok(IfMatch(None)));
        }
        // If-Match compares strongly (RFC 9110 §13.1.1): a weak tag never matches.
        // Of a list, the strong tags we could have issued count, and any may match.
        let versions: Vec<Version> = text
            .split(',')
            .map(str::trim)
            .filter(|tag| !tag.starts_with("W/"))
            .filter_map(|tag| {
                tag.strip_prefix('"')?
                    .strip_suffix('"')?
                    .parse::<i32>()
                    .ok()
            })
            .filter_map(|v| Version::new(v).ok())
            .collect();
        ready(match VersionMatch::any_of(versions) {
            Ok(versions) => Ok(IfMatch(Some(versions))),
            Err(_) => Err(ApiError::precondition_failed(
                "If-Match names no current version of this resource",
            )),
        })
    }
}

/// Adds `ETag` for a resource at `version`.
pub fn etag(builder: &mut HttpResponseBuilder, version: Version) -> &mut HttpResponseBuilder {
    builder.insert_header((ETAG, format!("\"{version}\"")))
}

/// The credentials the principal middleware resolved for `req`.
fn credentials(req: &HttpRequest) -> Credentials {
    req.extensions()
        .get::<Credentials>()
        .copied()
        .unwrap_or(Credentials::None)
}

/// Any authenticated caller; 401 `unauthenticated` otherwise.
fn principal(req: &HttpRequest) -> Result<Principal, ApiError> {
    match credentials(req) {
        Credentials::Valid(principal) => Ok(principal),
        Credentials::None => Err(ApiError::unauthenticated()),
        Credentials::Invalid => Err(ApiError::invalid_token()),
        Credentials::InvalidKey => Err(ApiError::invalid_api_key()),
        Credentials::IpNotAllowed => Err(ApiError::ip_not_allowed()),
        Credentials::Unavailable => Err(ApiError::credentials_unavailable()),
    }
}

/// The caller, user or API client: 401 `unauthenticated` without valid
/// credentials.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Principal);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(principal(req).map(Caller))
    }
}

/// A logged-in user, staff or admin: 401 `unauthenticated` without valid
/// credentials, 403 `forbidden` for an API client.
#[derive(Debug, Clone, Copy)]
pub struct Staff(pub Principal);

impl FromRequest for Staff {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(principal(req).and_then(|p| {
            if p.has_role(Role::Staff) {
                Ok(Staff(p))
            } else {
                Err(ApiError::forbidden("This route is for staff users"))
            }
        }))
    }
}

/// An administrator: 401 `unauthenticated` without valid credentials, 403
/// `forbidden` for anyone else.
#[derive(Debug, Clone, Copy)]
pub struct Admin(pub Principal);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(principal(req).and_then(|p| {
            if p.has_role(Role::Admin) {
                Ok(Admin(p))
            } else {
                Err(ApiError::forbidden("This route is for administrators"))
            }
        }))
    }
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(schema_with = crate::openapi::cursor)]
    pub cursor: Option<String>,
}

impl PageQuery {
    /// Parses limit and cursor.
    pub fn parse(&self) -> Checked<PageRequest> {
        let limit = match &self.limit {
            None => Ok(PageLimit::default()),
            Some(raw) => field(
                "limit",
                raw.parse::<i64>()
                    .map_err(|_| InvalidValue::new("limit must be a whole number"))
                    .and_then(PageLimit::parse),
            ),
        };
        let after = optional("cursor", self.cursor.as_deref(), decode_cursor);
        match (limit, after) {
            (Ok(limit), Ok(after)) => Ok(PageRequest { limit, after }),
            (limit, after) => Err(limit
                .err()
                .into_iter()
                .chain(after.err())
                .flatten()
                .collect()),
        }
    }
}

/// Cursors are opaque to clients: the last id of a page, base64url-encoded.
pub fn encode_cursor(after: uuid::Uuid) -> String {
    URL_SAFE_NO_PAD.encode(after.as_bytes())
}

fn decode_cursor(raw: &str) -> Result<uuid::Uuid, InvalidValue> {
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| uuid::Uuid::from_slice(&bytes).ok())
        .ok_or_else(|| InvalidValue::new("cursor is not one this server issued"))
}

/// Parses a query value as an RFC 3339 instant.
pub fn parse_instant(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, InvalidValue> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| InvalidValue::new("must be an RFC 3339 timestamp like 2026-01-31T09:00:00Z"))
}

/// Parses a query value as a UUID.
pub fn parse_uuid(raw: &str) -> Result<uuid::Uuid, InvalidValue> {
    uuid::Uuid::parse_str(raw).map_err(|_| InvalidValue::new("must be a UUID"))
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Line {
        quantity: i64,
    }

    #[test]
    fn an_integral_float_is_read_as_the_integer_it_is() {
        let line: Line = parse_json(br#"{"quantity": 3.0}"#).expect("3.0 is an integer");
        assert_eq!(line.quantity, 3);
    }

    #[test]
    fn a_fractional_or_inexact_float_is_still_refused() {
        for body in [
            &br#"{"quantity": 2.5}"#[..],
            br#"{"quantity": 1e300}"#,
            br#"{"quantity": 3.0, "extra": 1}"#,
        ] {
            let error = parse_json::<Line>(body).expect_err("not a valid line");
            assert_eq!(error.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
        }
    }
}

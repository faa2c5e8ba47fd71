//! The OpenAPI document: collected from the route registration, then completed with
//! what every operation shares (problem responses of the extractors and of the
//! database, `X-Request-Id`, `If-Match`) so that it describes exactly what the
//! server answers — precise enough for schema-driven fuzzing.

use actix_web::App;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn, PathItem};
use utoipa::openapi::schema::{AnyOf, Object, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{Content, Header, Ref, RefOr, Required, Response, ResponseBuilder, Schema};
use utoipa_actix_web::AppExt;

use crate::middleware::rate_limit;
use crate::problem::FieldError;
use crate::routes::{self, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ordo",
        description = "Order management: catalog, customers, orders with a spacing rule, gapless numbers and stock that never goes negative. Errors are RFC 9457 problem documents (`application/problem+json`). Every response carries `X-Request-Id`. Every `/v1` route is rate-limited: its answers carry `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`, and a request over the caller's allowance is 429 `rate_limited` with `Retry-After`. A path below with a method it does not list answers 405 `method_not_allowed` with `Allow` naming the methods it takes; any other path answers 404 `not_found`."
    ),
    components(schemas(Problem, FieldError, OrderStatusName, ProductKindName, BasketStatusName, routes::reports::RankingName)),
    modifiers(&BearerScheme),
    tags(
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "auth", description = "Logging in, tokens, the caller"),
        (name = "users", description = "Users (administrators only)"),
        (name = "clients", description = "API clients and their keys (administrators only)"),
        (name = "catalog", description = "Products and stock"),
        (name = "customers", description = "Customers"),
        (name = "orders", description = "Orders"),
        (name = "baskets", description = "Baskets: persisted, priced from the catalog"),
        (name = "jobs", description = "Scheduled jobs and their runs (administrators only)"),
        (name = "activity", description = "Hits reported by API clients, and usage figures"),
        (name = "reports", description = "Sales, stock and activity reports (staff): JSON, or CSV with `Accept: text/csv`"),
        (name = "integrations", description = "The external APIs Ordo depends on (administrators only)"),
    )
)]
struct ApiDoc;

/// The name of the security scheme of access tokens.
pub const BEARER: &str = "bearer";

/// The name of the security scheme of API keys.
pub const API_KEY: &str = "api_key";

/// The routes API clients may call with their key besides users with a token.
const CLIENT_ROUTES: &[&str] = &[
    "/v1/auth/me",
    "/v1/logs",
    "/api/logs",
    "/v1/usage/daily",
    "/api/usage/daily",
];

/// The routes whose answers a client may cache: `ETag` and `Cache-Control` on
/// 200, and 304 for an `If-None-Match` naming the current tag.
const CACHEABLE_ROUTES: &[&str] = &[
    "/v1/usage/daily",
    "/api/usage/daily",
    "/v1/usage/top",
    "/api/usage/top",
    "/v1/usage/hourly",
];

/// The routes open to anyone besides the operations routes: those that obtain or
/// end a session.
const OPEN_ROUTES: &[&str] = &["/v1/auth/login", "/v1/auth/token", "/v1/auth/logout"];

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        let mut scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .build();
        scheme.description = Some("An access token from `/v1/auth/login` or `/v1/auth/token`, sent as `Authorization: Bearer <token>`.".into());
        components.add_security_scheme(BEARER, SecurityScheme::Http(scheme));
        let mut key = utoipa::openapi::security::ApiKeyValue::new("X-API-Key");
        key.description = Some("An API client's key (`ordo_<prefix>_<secret>`), from `POST /v1/clients`; honoured where a route says so.".into());
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(key)),
        );
    }
}

/// The OpenAPI document of every route, collected from the same registration the
/// server uses, so the two cannot drift apart.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes::register)
        .split_for_parts()
        .1;
    for (path, item) in &mut doc.paths.paths {
        complete_path(path, item);
    }
    constrain_schemas(&mut doc);
    link_created_resources(&mut doc);
    doc
}

/// The media type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An order's status, as the API spells it.
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum OrderStatusName {
    /// Placed through `/v1/orders`; can still be changed.
    Placed,
    /// Checked out; the payment outcome is not known yet.
    PendingPayment,
    /// Paid.
    Paid,
    /// The payment was declined.
    PaymentFailed,
    /// Cancelled; its stock returned.
    Cancelled,
}

/// A basket's status, as the API spells it.
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum BasketStatusName {
    /// Lines may be set and removed.
    Open,
    /// An order was made of it; it no longer changes.
    CheckedOut,
    /// Its time ran out before checkout.
    Expired,
}

/// Whether a product is work done (`service`, never stocked) or a thing handed over
/// (`good`).
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ProductKindName {
    /// Work done; never stocked.
    Service,
    /// A thing handed over; may track stock.
    Good,
}

/// The body of `/healthz` and `/readyz` when all is well.
#[derive(Debug, utoipa::ToSchema)]
pub struct HealthStatus {
    /// `ok` (alive) or `ready` (the database answers).
    #[schema(pattern = "^(ok|ready)$")]
    pub status: String,
}

fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            Content::new(Some(Ref::from_schema_name("Problem"))),
        )
        .build()
}

fn string_header(description: &str) -> Header {
    let mut header = Header::new(ObjectBuilder::new().schema_type(Type::String).build());
    header.description = Some(description.to_owned());
    header
}

fn integer_header(description: &str) -> Header {
    let mut header = Header::new(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .build(),
    );
    header.description = Some(description.to_owned());
    header
}

/// The routes that log in with a password: their rate limits fail closed.
const LOGIN_ROUTES: &[&str] = &["/v1/auth/login", "/v1/auth/token"];

/// What the answers of an operation share, by its path.
#[derive(Debug, Clone, Copy)]
struct Shared {
    uses_database: bool,
    rate_limited: bool,
    logs_in: bool,
}

/// Adds the answers every operation of `path` can give besides its own.
fn complete_path(path: &str, item: &mut PathItem) {
    // Everything under /v1 and /api reads or writes the database, and /readyz asks it.
    let shared = Shared {
        uses_database: path.starts_with("/v1/") || path.starts_with("/api/") || path == "/readyz",
        rate_limited: rate_limit::is_limited(path),
        logs_in: LOGIN_ROUTES.contains(&path),
    };
    let protected = is_protected(path);
    let for_clients = CLIENT_ROUTES.contains(&path);
    let operations = [
        (&mut item.get, false),
        (&mut item.post, false),
        (&mut item.put, true),
        (&mut item.patch, true),
        (&mut item.delete, false),
    ];
    let cacheable = CACHEABLE_ROUTES.contains(&path);
    for (operation, conditional) in operations {
        if let Some(operation) = operation {
            if protected {
                protect(operation, for_clients);
            }
            if cacheable {
                make_cacheable(operation);
            }
            complete_operation(operation, shared, conditional);
        }
    }
}

/// Whether `path` needs credentials: everything under `/v1` but the session
/// routes, and the seed's `/api` aliases.
fn is_protected(path: &str) -> bool {
    (path.starts_with("/v1/") && !OPEN_ROUTES.contains(&path)) || path.starts_with("/api/")
}

/// Requires an access token (or, `for_clients`, an API key): the security
/// requirement, 401 without valid credentials, 403 for a caller who may not.
fn protect(operation: &mut Operation, for_clients: bool) {
    use utoipa::openapi::security::SecurityRequirement;
    let mut requirements = vec![SecurityRequirement::new(BEARER, Vec::<String>::new())];
    if for_clients {
        requirements.push(SecurityRequirement::new(API_KEY, Vec::<String>::new()));
    }
    operation.security = Some(requirements);
    let responses = &mut operation.responses.responses;
    let mut unauthenticated = problem(
        "`unauthenticated`: no credentials, or an access token or API key that is not valid, has expired or was revoked (`WWW-Authenticate` says which)",
    );
    unauthenticated.headers.insert(
        "WWW-Authenticate".into(),
        RefOr::T(string_header(
            "`Bearer`; `Bearer error=\"invalid_token\"` for a token that is not valid; `ApiKey header=\"X-API-Key\"` for a key that is not",
        )),
    );
    responses
        .entry("401".to_owned())
        .or_insert(RefOr::T(unauthenticated));
    responses.entry("403".to_owned()).or_insert_with(|| {
        RefOr::T(problem(
            "`forbidden`: the caller's role (or an API client) may not do this; `ip_not_allowed`: an API client calling from outside its allow-list",
        ))
    });
}

/// Documents validation by `ETag`: `If-None-Match`, the headers of a 200, and 304.
fn make_cacheable(operation: &mut Operation) {
    let mut if_none_match = Parameter::new("If-None-Match");
    if_none_match.parameter_in = ParameterIn::Header;
    if_none_match.required = Required::False;
    if_none_match.description =
        Some("`ETag`s of answers held (or `*`); when one is current, 304 without a body".into());
    if_none_match.schema = Some(ObjectBuilder::new().schema_type(Type::String).into());
    operation
        .parameters
        .get_or_insert_with(Vec::new)
        .push(RefOr::T(if_none_match));
    let headers = [
        ("ETag", "A digest of the body"),
        (
            "Cache-Control",
            "`private, max-age=<seconds>`: how long the answer may be reused",
        ),
    ];
    let responses = &mut operation.responses.responses;
    let mut not_modified = ResponseBuilder::new()
        .description("`If-None-Match` names the current `ETag`: the held answer is still good")
        .build();
    for (name, description) in headers {
        not_modified
            .headers
            .insert(name.into(), RefOr::T(string_header(description)));
        if let Some(RefOr::T(ok)) = responses.get_mut("200") {
            ok.headers
                .insert(name.into(), RefOr::T(string_header(description)));
        }
    }
    responses.insert("304".to_owned(), RefOr::T(not_modified));
}

fn complete_operation(operation: &mut Operation, shared: Shared, conditional: bool) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    let located = |place: ParameterIn| {
        parameters
            .iter()
            .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place))
    };
    let has_path_id = located(ParameterIn::Path);
    let has_query = located(ParameterIn::Query);
    if conditional {
        let mut if_match = Parameter::new("If-Match");
        if_match.parameter_in = ParameterIn::Header;
        if_match.required = Required::False;
        if_match.description = Some(
            "The `ETag` last seen (`\"<version>\"`, or `*`); another version gives 412 `precondition_failed`. A weak tag never matches."
                .into(),
        );
        // RFC 9110: `*` or a list of entity tags, each optionally weak.
        if_match.schema = Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(
                    r#"^[ \t]*(\*|(W/)?"[\x21\x23-\x7e]*"([ \t]*,[ \t]*(W/)?"[\x21\x23-\x7e]*")*)[ \t]*$"#,
                ))
                .into(),
        );
        parameters.push(RefOr::T(if_match));
    }
    let has_body = operation.request_body.is_some();
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(problem(description)));
    };
    if has_body {
        add("400", "`invalid_json`: the body is not JSON");
        add("413", "`payload_too_large`: the body exceeds 1 MiB");
        add(
            "415",
            "`unsupported_media_type`: the body is not sent as `application/json`",
        );
        add(
            "422",
            "`validation_failed`: a field is missing, unknown or invalid (see `errors`)",
        );
    }
    if has_path_id {
        add("404", "`not_found`: no such resource");
    }
    if has_query {
        add(
            "422",
            "`validation_failed`: a query parameter is invalid (see `errors`)",
        );
    }
    if conditional {
        add(
            "412",
            "`precondition_failed`: `If-Match` names another version",
        );
    }
    if shared.rate_limited {
        add(
            "429",
            "`rate_limited`: the caller's allowance is used up (a login attempt's also its address's and its e-mail address's); `Retry-After` says when to try again",
        );
    }
    if shared.logs_in {
        add(
            "503",
            "`database_unavailable` (with `Retry-After`): the database is busy or unreachable; `rate_limits_unavailable` (with `Retry-After`): login attempts cannot be counted now, so they are refused",
        );
    } else if shared.uses_database {
        add(
            "503",
            "`database_unavailable` (with `Retry-After`): the database is busy or unreachable",
        );
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        complete_response(status, response, shared.rate_limited);
    }
}

/// The `RateLimit-*` headers of a limited route's answers. Not marked required:
/// while the rate-limit store cannot be reached, requests other than logins go
/// ahead without them.
const RATE_LIMIT_HEADERS: [(&str, &str); 3] = [
    (
        "RateLimit-Limit",
        "Requests allowed at once by the tightest limit this request was checked against",
    ),
    (
        "RateLimit-Remaining",
        "Requests that could still be made right now under that limit",
    ),
    (
        "RateLimit-Reset",
        "Seconds until that limit's allowance is whole again",
    ),
];

fn complete_response(status: &str, response: &mut Response, rate_limited: bool) {
    let is_error = status.starts_with('4') || status.starts_with('5');
    if is_error {
        // Every error is a problem document, whatever the attribute said.
        response.content.clear();
        response.content.insert(
            PROBLEM_JSON.into(),
            RefOr::T(Content::new(Some(Ref::from_schema_name("Problem")))),
        );
    }
    if status == "503" {
        response.headers.insert(
            "Retry-After".into(),
            RefOr::T(integer_header("Seconds to wait before trying again")),
        );
    }
    if rate_limited {
        for (name, description) in RATE_LIMIT_HEADERS {
            response
                .headers
                .insert(name.into(), RefOr::T(integer_header(description)));
        }
    }
    if status == "429" {
        response.headers.insert(
            "Retry-After".into(),
            RefOr::T(integer_header(
                "Seconds to wait before the same request would be allowed, rounded up",
            )),
        );
    }
    response.headers.insert(
        "X-Request-Id".into(),
        RefOr::T(string_header(
            "The request's id: the client's `X-Request-Id` when it is up to 200 printable ASCII characters, otherwise a new UUID",
        )),
    );
    // These are always sent where they are documented; `Retry-After` is on a 429
    // but not on every 503 (`order_numbers_exhausted` or `not_ready` have none).
    let always_retry_after = status == "429";
    for (name, header) in &mut response.headers {
        let always = match name.as_str() {
            "X-Request-Id" | "ETag" | "Location" => true,
            "Retry-After" => always_retry_after,
            _ => false,
        };
        if let (true, RefOr::T(header)) = (always, header) {
            header
                .extensions
                .get_or_insert_with(Default::default)
                .insert("required".into(), true.into());
        }
    }
}

/// Where a created resource can be used next: OpenAPI links from the `201` of each
/// create to the operations on that resource, so stateful testing (and readers)
/// can follow them.
fn link_created_resources(doc: &mut utoipa::openapi::OpenApi) {
    let chains: [(&str, &[&str]); 6] = [
        (
            "register_client",
            &[
                "get_client",
                "update_client",
                "rotate_client_key",
                "delete_client",
            ],
        ),
        (
            "register_client_alias",
            &[
                "get_client",
                "update_client",
                "rotate_client_key",
                "delete_client",
            ],
        ),
        (
            "create_product",
            &[
                "get_product",
                "update_product",
                "delete_product",
                "adjust_stock",
            ],
        ),
        (
            "create_customer",
            &["get_customer", "update_customer", "delete_customer"],
        ),
        (
            "place_order",
            &["get_order", "revise_order", "delete_order", "cancel_order"],
        ),
        ("create_basket", &["get_basket", "delete_basket"]),
    ];
    for item in doc.paths.paths.values_mut() {
        let Some(operation) = item.post.as_mut() else {
            continue;
        };
        let Some((_, targets)) = chains
            .iter()
            .find(|(create, _)| operation.operation_id.as_deref() == Some(*create))
        else {
            continue;
        };
        let Some(RefOr::T(created)) = operation.responses.responses.get_mut("201") else {
            continue;
        };
        for target in *targets {
            let link = utoipa::openapi::link::LinkBuilder::new()
                .operation_id(*target)
                .parameter("id", "$response.body#/id")
                .build();
            created.links.insert((*target).to_owned(), RefOr::T(link));
        }
    }
}

/// Whitespace as Rust's `str::trim` removes it (Unicode `White_Space`): the domain
/// trims text before checking it, so the document accepts it around a value.
const WS: &str = r"[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
/// Neither whitespace nor a control character.
const SOLID: &str = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
/// Not a control character.
const PRINTABLE: &str = r"[^\x00-\x1f\x7f-\x9f]";

fn string(pattern: String, nullable: bool) -> Object {
    let schema_type = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(schema_type)
        .pattern(Some(pattern))
        .build()
}

/// Free text as the domain's `parse_text` takes it: 1 to `max` characters after
/// trimming, no control characters.
pub(crate) fn text(max: usize, nullable: bool) -> Object {
    let inner = max - 2;
    string(
        format!("^{WS}*{SOLID}(?:{PRINTABLE}{{0,{inner}}}{SOLID})?{WS}*$"),
        nullable,
    )
}

/// A SKU: 1 to 64 letters, digits, `-`, `_`, `.`.
pub fn sku() -> Object {
    string(format!("^{WS}*[A-Za-z0-9._-]{{1,64}}{WS}*$"), false)
}

/// A SKU, or `null` for "unchanged".
pub fn sku_or_null() -> Object {
    string(format!("^{WS}*[A-Za-z0-9._-]{{1,64}}{WS}*$"), true)
}

/// A product's or customer's name: 1 to 200 characters.
pub fn name() -> Object {
    text(200, false)
}

/// A name, or `null` for "unchanged".
pub fn name_or_null() -> Object {
    text(200, true)
}

/// A city: 1 to 100 characters.
pub fn city() -> Object {
    text(100, false)
}

/// A city, or `null` for "unchanged".
pub fn city_or_null() -> Object {
    text(100, true)
}

/// An order's note, 1 to 2000 characters, or `null` for none.
pub fn note_or_null() -> Object {
    text(2000, true)
}

/// The reason of a stock adjustment: 1 to 500 characters.
pub fn reason() -> Object {
    text(500, false)
}

fn email_pattern() -> String {
    let part = r"[^@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
    let label_end = r"[^.@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
    format!("^{WS}*{part}+@{label_end}{part}*\\.{part}*{label_end}{WS}*$")
}

/// An e-mail address: a local part, `@`, a domain with a dot inside.
///
/// The domain also limits the trimmed address to 254 bytes of UTF-8, which JSON
/// Schema cannot state (`maxLength` counts characters, whitespace around the value
/// included), so the limit is given in words only.
fn email_schema(nullable: bool) -> Object {
    let mut schema = string(email_pattern(), nullable);
    schema.description = Some("An e-mail address like name@example.com: at most 254 bytes (UTF-8) once surrounding whitespace is trimmed.".into());
    schema
}

/// An e-mail address.
pub fn email() -> Object {
    email_schema(false)
}

/// An e-mail address, or `null` for "unchanged".
pub fn email_or_null() -> Object {
    email_schema(true)
}

/// A phone number: at least 3 digits, with `+`, spaces, `-`, `(`, `)`; up to 32
/// characters; or `null`.
pub fn phone_or_null() -> Object {
    let class = "[0-9+ ()-]";
    let mut schema = string(
        format!("^{class}*[0-9]{class}*[0-9]{class}*[0-9]{class}*$"),
        true,
    );
    schema.max_length = Some(32);
    schema
}

/// An ISO 4217 currency code (case-insensitive), or `null` for the default.
pub fn currency_or_null() -> Object {
    string(format!("^{WS}*[A-Za-z]{{3}}{WS}*$"), true)
}

/// A currency as returned: three upper-case letters.
pub fn currency() -> Object {
    let mut schema = string("^[A-Z]{3}$".into(), false);
    schema.max_length = Some(3);
    schema
}

/// A stock change: non-zero, at most 10¹² units either way.
pub fn stock_delta() -> Schema {
    let range = |min: i64, max: i64| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Int64,
            )))
            .minimum(Some(min))
            .maximum(Some(max))
            .build()
    };
    let mut delta = AnyOf::with_capacity(2);
    delta.items.push(range(1, 1_000_000_000_000).into());
    delta.items.push(range(-1_000_000_000_000, -1).into());
    delta.description = Some("Units added (positive) or removed (negative); never zero.".into());
    Schema::AnyOf(delta)
}

/// A new password: 12 to 128 characters, not only white space.
pub fn password() -> Object {
    let inner = &WS[1..WS.len() - 1];
    let mut schema = string(format!("^{WS}*[^{inner}][\\s\\S]*$"), false);
    schema.min_length = Some(12);
    schema.max_length = Some(128);
    schema
}

/// A cursor as the server issues it: a base64url-encoded id.
pub fn cursor() -> Object {
    let mut schema = string("^[A-Za-z0-9_-]{21}[AQgw]$".into(), false);
    schema.min_length = Some(22);
    schema.max_length = Some(22);
    schema
}

/// Rules that span fields, which the derives cannot state.
fn constrain_schemas(doc: &mut utoipa::openapi::OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    // A service never tracks stock: `kind: "service"` with a stock level is 422.
    if let Some(RefOr::T(Schema::Object(input))) = components.schemas.get_mut("ProductInput") {
        let extensions = input.extensions.get_or_insert_with(Default::default);
        extensions.insert(
            "anyOf".into(),
            serde_json::json!([
                {"properties": {"kind": {"const": "good"}}},
                {"properties": {"stock": {"type": "null"}}},
            ]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_has_one_template_per_path_and_problem_errors_everywhere() {
        let doc = openapi();
        let json = serde_json::to_value(&doc).expect("the document serialises");
        for (path, item) in json["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert!(
                            response["content"][PROBLEM_JSON].is_object(),
                            "{method} {path} {status} is not a problem document"
                        );
                    }
                    assert!(
                        response["headers"]["X-Request-Id"].is_object(),
                        "{method} {path} {status} lacks X-Request-Id"
                    );
                }
            }
        }
        assert!(json["paths"]["/v1/orders/{id}"].is_object());
        assert!(json["paths"]["/api/register"]["post"].is_object());
        assert!(json["paths"]["/v1/clients/{id}/rotate-key"]["post"].is_object());
        assert!(json["paths"]["/v1/orders/{id_or_number}"].is_null());
    }

    #[test]
    fn usage_answers_are_documented_as_cacheable_and_logs_as_reachable_with_a_key() {
        let json = serde_json::to_value(openapi()).expect("the document serialises");
        for path in CACHEABLE_ROUTES {
            let get = &json["paths"][path]["get"];
            assert!(
                get["responses"]["304"]["headers"]["ETag"].is_object(),
                "{path}"
            );
            assert!(
                get["responses"]["200"]["headers"]["Cache-Control"].is_object(),
                "{path}"
            );
            assert!(
                get["parameters"]
                    .as_array()
                    .expect("parameters")
                    .iter()
                    .any(|p| p["name"] == "If-None-Match"),
                "{path}"
            );
        }
        let logs = &json["paths"]["/v1/logs"]["post"];
        assert!(logs["security"][1][API_KEY].is_array());
        assert!(logs["responses"]["503"]["headers"]["Retry-After"].is_object());
        assert_eq!(
            json["components"]["schemas"]["HitInput"]["properties"]["endpoint"]["type"],
            "string"
        );
    }

    #[test]
    fn every_v1_route_but_the_session_ones_requires_credentials() {
        let doc = openapi();
        let json = serde_json::to_value(&doc).expect("the document serialises");
        assert_eq!(
            json["components"]["securitySchemes"][BEARER]["scheme"],
            "bearer"
        );
        for (path, item) in json["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                let protected = (path.starts_with("/v1/") && !OPEN_ROUTES.contains(&path.as_str()))
                    || path.starts_with("/api/");
                let responses = &operation["responses"];
                assert_eq!(
                    operation["security"][0][BEARER].is_array(),
                    protected,
                    "{method} {path}"
                );
                assert_eq!(
                    operation["security"][1][API_KEY].is_array(),
                    CLIENT_ROUTES.contains(&path.as_str()),
                    "{method} {path}: API keys reach only the routes API.md grants them"
                );
                // The api_key grant of /v1/auth/token also answers 403 ip_not_allowed.
                let may_forbid = protected || path == "/v1/auth/token";
                assert_eq!(responses["403"].is_object(), may_forbid, "{method} {path}");
                if protected {
                    assert!(responses["401"]["headers"]["WWW-Authenticate"].is_object());
                }
            }
        }
    }

    #[test]
    fn every_api_route_documents_its_rate_limit_and_the_operations_routes_do_not() {
        let doc = openapi();
        let json = serde_json::to_value(&doc).expect("the document serialises");
        for (path, item) in json["paths"].as_object().expect("paths") {
            let limited = path.starts_with("/v1/") || path.starts_with("/api/");
            for (method, operation) in item.as_object().expect("a path item") {
                let responses = operation["responses"].as_object().expect("responses");
                let too_many = &responses.get("429");
                assert_eq!(too_many.is_some(), limited, "{method} {path}");
                if let Some(too_many) = too_many {
                    assert_eq!(
                        too_many["headers"]["Retry-After"]["required"], true,
                        "{method} {path}"
                    );
                }
                for (status, response) in responses {
                    for header in ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] {
                        assert_eq!(
                            response["headers"][header].is_object(),
                            limited,
                            "{method} {path} {status} {header}"
                        );
                    }
                }
            }
        }
        let login_503 = &json["paths"]["/v1/auth/login"]["post"]["responses"]["503"];
        assert!(
            login_503["description"]
                .as_str()
                .is_some_and(|d| d.contains("rate_limits_unavailable"))
        );
    }
}

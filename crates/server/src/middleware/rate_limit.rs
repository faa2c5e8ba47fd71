//! Rate limits on every `/v1` and `/api` route (the operations routes, `/docs` and
//! `/openapi.json` are not limited): each request draws on its caller's allowance
//! — a user's, an API client's, or its network address's without credentials —
//! and a login attempt also on its address's and its e-mail address's login
//! allowances, all decided at once (see `ordo_domain::ratelimit`).
//!
//! Runs after the caller is resolved and before any handler, so a refused request
//! costs no database query and no password hash. A login route's body is read
//! here, to find the e-mail address, and handed on to the handler unchanged.
//! Every limited response, the handler's errors included, tells the caller where
//! it stands with `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use ordo_domain::auth::Principal;
use ordo_domain::clients::ClientRateLimit;
use ordo_domain::ratelimit::{Admission, LimitedCaller, LimitedRequest, LoginAttempt, Quota};
use serde::Deserialize;

use crate::extract::{body_error, is_json};
use crate::middleware::client_ip::ClientIp;
use crate::middleware::principal::Credentials;
use crate::problem::ApiError;
use crate::state::AppState;

/// Requests allowed at once by the tightest policy the request was checked against.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// Requests that could still be made right now.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// Seconds until the allowance is whole again, rounded up.
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Whether requests to `path` are rate-limited.
pub fn is_limited(path: &str) -> bool {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    under("/v1") || under("/api")
}

/// The routes that log in with a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoginRoute {
    /// `POST /v1/auth/login`.
    Login,
    /// `POST /v1/auth/token`, a login only with `grant_type: password`.
    Token,
}

fn login_route(req: &ServiceRequest) -> Option<LoginRoute> {
    if req.method() != Method::POST {
        return None;
    }
    match req.path() {
        "/v1/auth/login" => Some(LoginRoute::Login),
        "/v1/auth/token" => Some(LoginRoute::Token),
        _ => None,
    }
}

/// The fields of a login body that limits care about; anything else is the
/// handler's to judge.
#[derive(Deserialize)]
struct LoginFields<'a> {
    #[serde(borrow, default)]
    email: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    grant_type: Option<Cow<'a, str>>,
}

/// What a login route's body says about the request.
#[derive(Debug, Default)]
struct LoginBody {
    /// Whether it tries to log in with a password.
    is_login: bool,
    /// The e-mail address it names.
    email: Option<String>,
    /// Why it could not be read: the handler's answer, given here instead.
    unreadable: Option<ApiError>,
}

/// Reads a login route's body and puts it back for the handler. A body that
/// cannot be read is a login attempt without an address.
async fn login_body(req: &mut ServiceRequest, route: LoginRoute) -> LoginBody {
    if !is_json(req.headers()) {
        // The handler answers 415 without reading it.
        return LoginBody {
            is_login: route == LoginRoute::Login,
            ..LoginBody::default()
        };
    }
    let bytes = match req.extract::<web::Bytes>().await {
        Ok(bytes) => bytes,
        Err(e) => {
            return LoginBody {
                is_login: true,
                email: None,
                unreadable: Some(body_error(&e)),
            };
        }
    };
    let fields = serde_json::from_slice::<LoginFields<'_>>(&bytes).ok();
    let is_login = match route {
        LoginRoute::Login => true,
        LoginRoute::Token => fields
            .as_ref()
            .and_then(|f| f.grant_type.as_deref())
            .is_some_and(|grant| grant == "password"),
    };
    let email = fields.and_then(|f| f.email).map(Cow::into_owned);
    req.set_payload(Payload::from(bytes));
    LoginBody {
        is_login,
        email,
        unreadable: None,
    }
}

/// Who the caller is, as rate limits see it.
fn caller(req: &ServiceRequest) -> LimitedCaller {
    let extensions = req.extensions();
    match extensions.get::<Credentials>() {
        Some(Credentials::Valid(Principal::User { id, .. })) => LimitedCaller::User(id.as_uuid()),
        Some(Credentials::Valid(Principal::Client { id })) => LimitedCaller::Client {
            id: *id,
            policy: extensions
                .get::<ClientRateLimit>()
                .copied()
                .unwrap_or_default()
                .policy(),
        },
        // Whoever could not prove who they are draws on their address's allowance:
        // that includes a genuine client calling from outside its allow-list.
        Some(
            Credentials::None
            | Credentials::Invalid
            | Credentials::InvalidKey
            | Credentials::IpNotAllowed
            | Credentials::Unavailable,
        )
        | None => LimitedCaller::Anonymous,
    }
}

/// Whole seconds, rounded up.
fn seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn tell(headers: &mut HeaderMap, quota: Quota) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(quota.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(quota.remaining));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(seconds(quota.reset)));
}

/// Counts a request the rate-limit store could not decide, by what became of it
/// (`unchecked`: served anyway; `refused`: a login, answered 503), so an outage of
/// a shared store shows on `/metrics`, not only in the log.
fn count_store_failure(outcome: &'static str) {
    metrics::counter!(RATE_LIMITS_UNAVAILABLE, "outcome" => outcome).increment(1);
}

/// The counter of requests the rate-limit store could not decide.
pub const RATE_LIMITS_UNAVAILABLE: &str = "rate_limits_unavailable_total";

/// Middleware: admits or refuses the request, and tells the caller its quota.
///
/// # Errors
/// Only those of the wrapped service.
pub async fn middleware<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    if !is_limited(req.path()) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let address = req
        .extensions()
        .get::<ClientIp>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ip| ip.0);
    let caller = caller(&req);
    let body = match login_route(&req) {
        Some(route) => login_body(&mut req, route).await,
        None => LoginBody::default(),
    };
    let request = LimitedRequest {
        caller,
        address,
        login: body.is_login.then_some(LoginAttempt {
            email: body.email.as_deref(),
        }),
    };
    let quota = match state.rate_limits.admit(request).await {
        Ok(Admission::Allowed(quota)) => Some(quota),
        Ok(Admission::Unchecked) => {
            count_store_failure("unchecked");
            None
        }
        Ok(Admission::Refused { quota, retry_after }) => {
            let mut refused = req.error_response(ApiError::rate_limited(retry_after));
            tell(refused.headers_mut(), quota);
            return Ok(refused.map_into_right_body());
        }
        Err(e) => {
            count_store_failure("refused");
            return Ok(req.error_response(ApiError::from(e)).map_into_right_body());
        }
    };
    let mut response = match body.unreadable {
        Some(error) => req.error_response(error).map_into_right_body(),
        // A handler's error arrives here as a response (actix renders it where
        // the handler ran), so it gets the headers too.
        None => next.call(req).await?.map_into_left_body(),
    };
    if let Some(quota) = quota {
        tell(response.headers_mut(), quota);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use ordo_domain::auth::{Role, UserId};
    use ordo_domain::ratelimit::RatePolicy;

    use super::*;

    fn caller_with(
        credentials: Option<Credentials>,
        limit: Option<ClientRateLimit>,
    ) -> LimitedCaller {
        let req = TestRequest::default().to_srv_request();
        if let Some(credentials) = credentials {
            req.extensions_mut().insert(credentials);
        }
        if let Some(limit) = limit {
            req.extensions_mut().insert(limit);
        }
        caller(&req)
    }

    #[test]
    fn a_client_is_limited_by_its_record_and_a_caller_without_valid_credentials_by_its_address() {
        let id = uuid::Uuid::from_u128(5);
        let client = Credentials::Valid(Principal::Client { id });
        let own = ClientRateLimit::new(60, 3).unwrap();
        assert_eq!(
            caller_with(Some(client), Some(own)),
            LimitedCaller::Client {
                id,
                policy: RatePolicy::per_minute(60, 3).unwrap()
            }
        );
        assert_eq!(
            caller_with(Some(client), None),
            LimitedCaller::Client {
                id,
                policy: ClientRateLimit::default().policy()
            }
        );
        let user = Credentials::Valid(Principal::User {
            id: UserId::from_uuid(id),
            role: Role::Staff,
        });
        assert_eq!(caller_with(Some(user), None), LimitedCaller::User(id));
        for anonymous in [Some(Credentials::Invalid), Some(Credentials::None), None] {
            assert_eq!(caller_with(anonymous, None), LimitedCaller::Anonymous);
        }
    }

    #[test]
    fn the_api_is_limited_and_the_operations_routes_are_not() {
        for limited in [
            "/v1",
            "/v1/orders",
            "/v1/auth/login",
            "/api/logs",
            "/v1/nope",
        ] {
            assert!(is_limited(limited), "{limited}");
        }
        for open in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/docs/",
            "/v10/orders",
            "/apis",
        ] {
            assert!(!is_limited(open), "{open}");
        }
    }

    #[test]
    fn reset_and_retry_after_round_up_to_whole_seconds() {
        assert_eq!(seconds(Duration::from_millis(10)), 1);
        assert_eq!(seconds(Duration::from_secs(2)), 2);
        assert_eq!(seconds(Duration::ZERO), 0);
    }
}

//! Rate limits over HTTP: exact at the boundary, per caller, stricter on login,
//! all-or-nothing across policies, and exact under concurrent requests.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use ordo_api_tests::{
    ADMIN_EMAIL, ManualClock, Reply, STAFF_EMAIL, TEST_PASSWORD, TestApp, spawn_app,
};
use ordo_domain::ratelimit::{MockRateLimitStore, RateLimitError};
use ordo_server::config::LimitSettings;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn limit(requests_per_minute: u32, burst: u32) -> LimitSettings {
    LimitSettings {
        requests_per_minute,
        burst,
    }
}

/// A test app whose users may make `burst` requests at once and then one a second,
/// on a clock that moves only when told.
async fn app_with_user_burst(burst: u32) -> (TestApp, ManualClock) {
    let clock = ManualClock::at(Utc::now());
    let app = spawn_app()
        .with_clock(Arc::new(clock.clone()))
        .with_settings(move |s| s.rate_limits.user = limit(60, burst))
        .await;
    (app, clock)
}

fn header_number(reply: &Reply, name: &str) -> u64 {
    reply
        .header(name)
        .unwrap_or_else(|| panic!("{name} missing: {reply:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number: {reply:?}"))
}

/// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`.
fn quota(reply: &Reply) -> (u64, u64, u64) {
    (
        header_number(reply, "ratelimit-limit"),
        header_number(reply, "ratelimit-remaining"),
        header_number(reply, "ratelimit-reset"),
    )
}

fn assert_rate_limited(reply: &Reply, retry_after: u64) {
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{reply:?}");
    assert_eq!(reply.problem_code(), "rate_limited");
    assert_eq!(
        header_number(reply, "retry-after"),
        retry_after,
        "{reply:?}"
    );
    assert_eq!(header_number(reply, "ratelimit-remaining"), 0);
}

#[tokio::test]
async fn exactly_the_burst_passes_and_the_next_request_waits_for_retry_after() {
    let (app, clock) = app_with_user_burst(5).await;

    for remaining in (0..5).rev() {
        let reply = app.get("/v1/auth/me").await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        let (limit, left, reset) = quota(&reply);
        assert_eq!((limit, left), (5, remaining));
        // One request a second refills the allowance: the used ones, rounded up.
        assert_eq!(reset, 5 - remaining);
    }
    let refused = app.get("/v1/auth/me").await;
    assert_rate_limited(&refused, 1);
    assert_eq!(header_number(&refused, "ratelimit-limit"), 5);

    clock.advance(TimeDelta::milliseconds(500));
    assert_rate_limited(&app.get("/v1/auth/me").await, 1);
    clock.advance(TimeDelta::milliseconds(500));
    let again = app.get("/v1/auth/me").await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(quota(&again).1, 0);
    assert_rate_limited(&app.get("/v1/auth/me").await, 1);
}

#[tokio::test]
async fn handler_errors_carry_the_headers_and_the_operations_routes_are_not_limited() {
    let (app, _clock) = app_with_user_burst(10).await;

    let missing = app
        .get(&format!("/v1/products/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(quota(&missing).1, 9);
    let unknown_route = app.get("/v1/no-such-thing").await;
    assert_eq!(unknown_route.status, StatusCode::NOT_FOUND);
    assert_eq!(quota(&unknown_route).1, 8);

    let anonymous = Reply::read(
        app.anonymous
            .get(format!("{}/v1/products", app.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    // Without credentials the address's allowance is drawn on (default burst 100;
    // the harness's login took one).
    assert_eq!(quota(&anonymous).0, 100);
    assert_eq!(quota(&anonymous).1, 98);

    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.header("ratelimit-limit").is_none(), "{path}");
    }
    // The staff user's allowance was not touched by those.
    assert_eq!(quota(&app.get("/v1/auth/me").await).1, 7);
}

/// `POST /v1/auth/login` without credentials.
pub(crate) async fn log_in(app: &TestApp, email: &str, password: &str) -> Reply {
    let response = app
        .anonymous
        .post(format!("{}/v1/auth/login", app.address))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("the login is sent");
    Reply::read(response).await
}

async fn password_grant(app: &TestApp, email: &str, password: &str) -> Reply {
    let response = app
        .anonymous
        .post(format!("{}/v1/auth/token", app.address))
        .json(&json!({"grant_type": "password", "email": email, "password": password}))
        .send()
        .await
        .expect("the token request is sent");
    Reply::read(response).await
}

#[tokio::test]
async fn each_user_has_an_allowance_of_their_own() {
    let (app, _clock) = app_with_user_burst(3).await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/auth/me").await.status, StatusCode::OK);
    }
    assert_rate_limited(&app.get("/v1/auth/me").await, 1);

    let admin = log_in(&app, ADMIN_EMAIL, TEST_PASSWORD).await;
    let token = admin.body["access_token"].as_str().expect("a token");
    let reply = Reply::read(
        app.anonymous
            .get(format!("{}/v1/auth/me", app.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["email"], ADMIN_EMAIL);
    assert_eq!(quota(&reply).1, 2);
}

/// An app without a harness login, whose logins are limited per address and per
/// e-mail address as given, on a clock that stands still.
async fn login_app(per_ip: LimitSettings, per_email: LimitSettings) -> TestApp {
    spawn_app()
        .anonymous()
        .with_clock(Arc::new(ManualClock::at(Utc::now())))
        .with_settings(move |s| {
            s.rate_limits.login_per_ip = per_ip;
            s.rate_limits.login_per_email = per_email;
        })
        .await
}

/// The parts of a problem document that do not name the request.
fn problem_without_request(reply: &Reply) -> Value {
    let mut body = reply.body.clone();
    body["request_id"] = Value::Null;
    body
}

#[tokio::test]
async fn login_attempts_per_email_are_limited_alike_for_known_and_unknown_addresses() {
    let app = login_app(limit(60, 50), limit(1, 3)).await;

    // Three attempts, spelled differently and through both login routes, are one
    // address's; the fourth is refused even with the right password.
    assert_eq!(
        log_in(&app, STAFF_EMAIL, "wrong password!").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        password_grant(&app, " Staff@Ordo.Test ", "wrong password!")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        log_in(&app, "STAFF@ordo.test", "wrong password!")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let known = log_in(&app, STAFF_EMAIL, TEST_PASSWORD).await;
    assert_rate_limited(&known, 60);
    assert_rate_limited(&password_grant(&app, STAFF_EMAIL, TEST_PASSWORD).await, 60);

    for _ in 0..3 {
        let reply = log_in(&app, "nobody@ordo.test", "wrong password!").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let unknown = log_in(&app, "nobody@ordo.test", "wrong password!").await;
    assert_rate_limited(&unknown, 60);
    assert_eq!(
        problem_without_request(&known),
        problem_without_request(&unknown)
    );
    assert_eq!(quota(&known), quota(&unknown));

    // Another user is not affected.
    assert_eq!(
        log_in(&app, ADMIN_EMAIL, TEST_PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn login_attempts_per_address_are_limited_whatever_the_email() {
    let app = login_app(limit(2, 4), limit(60, 10)).await;

    for i in 0..4 {
        let reply = log_in(&app, &format!("user{i}@ordo.test"), "wrong password!").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
    }
    let refused = log_in(&app, STAFF_EMAIL, TEST_PASSWORD).await;

    // Two a minute: the next attempt is allowed 30 s from now.
    assert_rate_limited(&refused, 30);
    assert_eq!(header_number(&refused, "ratelimit-limit"), 4);
    // A refresh-token exchange is not a login attempt: only the address's general
    // allowance applies, so it is judged on its token.
    let exchange = Reply::read(
        app.anonymous
            .post(format!("{}/v1/auth/token", app.address))
            .json(&json!({"grant_type": "refresh_token", "refresh_token": "not-a-token"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(exchange.status, StatusCode::UNAUTHORIZED, "{exchange:?}");
}

#[tokio::test]
async fn a_login_refused_by_one_policy_uses_up_none_of_the_others() {
    let app = login_app(limit(1, 5), limit(1, 2)).await;
    for _ in 0..2 {
        assert_eq!(
            log_in(&app, STAFF_EMAIL, "wrong password!").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Refused by the e-mail's policy, three times.
    for _ in 0..3 {
        assert_rate_limited(&log_in(&app, STAFF_EMAIL, "wrong password!").await, 60);
    }

    // The address has used two of its five: three more attempts are judged.
    for email in ["a@ordo.test", "b@ordo.test", "c@ordo.test"] {
        let reply = log_in(&app, email, "wrong password!").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{email}: {reply:?}");
    }
    assert_rate_limited(&log_in(&app, "d@ordo.test", "wrong password!").await, 60);
}

#[tokio::test]
async fn of_burst_plus_20_simultaneous_requests_exactly_the_burst_succeed() {
    const BURST: usize = 30;
    let (app, _clock) = app_with_user_burst(u32::try_from(BURST).unwrap()).await;

    let replies = futures::future::join_all((0..BURST + 20).map(|_| app.get("/v1/auth/me"))).await;

    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let limited = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((ok, limited), (BURST, 20));
    let mut remaining: Vec<u64> = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .map(|r| quota(r).1)
        .collect();
    remaining.sort_unstable();
    let expected: Vec<u64> = (0..u64::try_from(BURST).unwrap()).collect();
    assert_eq!(remaining, expected, "each success took its own unit");
}

#[tokio::test]
async fn without_a_rate_limit_store_logins_are_refused_and_other_requests_go_ahead() {
    let mut store = MockRateLimitStore::new();
    store
        .expect_check()
        .returning(|_, _| Err(RateLimitError(anyhow::anyhow!("connection refused"))));
    let app = spawn_app()
        .anonymous()
        .with_rate_limit_store(Arc::new(store))
        .await;

    let login = log_in(&app, STAFF_EMAIL, TEST_PASSWORD).await;
    assert_eq!(login.status, StatusCode::SERVICE_UNAVAILABLE, "{login:?}");
    assert_eq!(login.problem_code(), "rate_limits_unavailable");
    assert_eq!(header_number(&login, "retry-after"), 1);

    let other = app.get("/v1/products").await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED, "{other:?}");
    assert!(other.header("ratelimit-limit").is_none());
}

#[tokio::test]
async fn a_login_body_that_cannot_be_read_is_answered_as_before_and_counted_per_address() {
    let app = login_app(limit(1, 2), limit(60, 10)).await;
    let send = |content_type: &'static str, body: Vec<u8>| {
        let request = app
            .anonymous
            .post(format!("{}/v1/auth/login", app.address))
            .header("content-type", content_type)
            .body(body);
        async move { Reply::read(request.send().await.unwrap()).await }
    };

    let too_large = send("application/json", vec![b' '; 2 * 1024 * 1024]).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.problem_code(), "payload_too_large");
    assert_eq!(quota(&too_large), (2, 1, 60));
    let not_json = send("text/plain", b"email=a@b.c".to_vec()).await;
    assert_eq!(not_json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(quota(&not_json).1, 0);

    // Both were attempts from this address, whose two are now used up.
    assert_rate_limited(&log_in(&app, STAFF_EMAIL, TEST_PASSWORD).await, 60);
}

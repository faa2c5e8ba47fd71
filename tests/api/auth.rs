//! Logging in, refresh-token rotation and reuse, logout, and who may call what.

use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use ordo_api_tests::{
    ADMIN_EMAIL, ManualClock, Reply, STAFF_EMAIL, TEST_JWT_SECRET, TEST_PASSWORD, TestApp,
    spawn_app,
};
use ordo_crypto::{JwtConfig, JwtTokens};
use ordo_domain::auth::{AccessClaims, AccessTokens, Principal, Role, UserId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn login(app: &TestApp, email: &str, password: &str) -> Reply {
    send_as(
        app,
        None,
        Method::POST,
        "/v1/auth/login",
        Some(&json!({"email": email, "password": password})),
    )
    .await
}

async fn send_as(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Reply {
    let mut request = app
        .anonymous
        .request(method, format!("{}{path}", app.address));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    Reply::read(request.send().await.expect("the request is sent")).await
}

async fn refresh(app: &TestApp, token: &Value) -> Reply {
    send_as(
        app,
        None,
        Method::POST,
        "/v1/auth/token",
        Some(&json!({"grant_type": "refresh_token", "refresh_token": token})),
    )
    .await
}

fn without_request(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(fields) = body.as_object_mut() {
        fields.remove("request_id");
        fields.remove("instance");
    }
    body
}

#[tokio::test]
async fn a_login_gives_a_bearer_session_that_opens_staff_routes() {
    let app = spawn_app().anonymous().await;
    let session = login(&app, STAFF_EMAIL, TEST_PASSWORD).await;
    assert_eq!(session.status, StatusCode::OK, "{session:?}");
    assert_eq!(session.body["token_type"], "Bearer");
    assert_eq!(session.body["expires_in"], 365 * 24 * 3600);
    let token = session.body["access_token"]
        .as_str()
        .expect("an access token");
    assert!(
        session.body["refresh_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 43)
    );

    let products = send_as(&app, Some(token), Method::GET, "/v1/products", None).await;
    assert_eq!(products.status, StatusCode::OK, "{products:?}");
    let me = send_as(&app, Some(token), Method::GET, "/v1/auth/me", None).await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(me.body["kind"], "user");
    assert_eq!(me.body["email"], STAFF_EMAIL);
    assert_eq!(me.body["role"], "staff");
    assert!(me.body["id"].as_str().is_some());
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_address_get_the_same_answer() {
    let app = spawn_app().await;
    let wrong = login(&app, STAFF_EMAIL, "not the password at all").await;
    let unknown = login(&app, "nobody@ordo.test", "not the password at all").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.problem_code(), "invalid_credentials");
    assert_eq!(without_request(&wrong.body), without_request(&unknown.body));
    assert_eq!(wrong.status, unknown.status);
}

#[tokio::test]
async fn sql_injection_in_the_login_is_just_a_wrong_login() {
    let app = spawn_app().await;
    for (email, password) in [
        ("' OR '1'='1", "' OR '1'='1"),
        ("staff@ordo.test' --", "x"),
        ("a@b.c'; DROP TABLE users; --", "'; DROP TABLE users; --"),
        (STAFF_EMAIL, "' OR 1=1 --"),
    ] {
        let reply = login(&app, email, password).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{email}: {reply:?}");
        assert_eq!(reply.problem_code(), "invalid_credentials");
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, 2);
    assert_eq!(
        login(&app, STAFF_EMAIL, TEST_PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_ends_the_login() {
    let app = spawn_app().await;
    let first = login(&app, STAFF_EMAIL, TEST_PASSWORD).await.body;
    let second = refresh(&app, &first["refresh_token"]).await;
    assert_eq!(second.status, StatusCode::OK, "{second:?}");
    assert_ne!(second.body["refresh_token"], first["refresh_token"]);
    let token = second.body["access_token"]
        .as_str()
        .expect("an access token");
    assert_eq!(
        send_as(&app, Some(token), Method::GET, "/v1/auth/me", None)
            .await
            .status,
        StatusCode::OK
    );

    let reused = refresh(&app, &first["refresh_token"]).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reused.problem_code(), "token_reused");
    let newer = refresh(&app, &second.body["refresh_token"]).await;
    assert_eq!(newer.status, StatusCode::UNAUTHORIZED, "{newer:?}");
}

#[tokio::test]
async fn the_password_grant_works_and_a_bad_api_key_or_grant_is_refused() {
    let app = spawn_app().await;
    let session = send_as(
        &app,
        None,
        Method::POST,
        "/v1/auth/token",
        Some(&json!({"grant_type": "password", "email": ADMIN_EMAIL, "password": TEST_PASSWORD})),
    )
    .await;
    assert_eq!(session.status, StatusCode::OK, "{session:?}");
    let api_key = send_as(
        &app,
        None,
        Method::POST,
        "/v1/auth/token",
        Some(&json!({"grant_type": "api_key", "api_key": "k"})),
    )
    .await;
    assert_eq!(api_key.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api_key.problem_code(), "invalid_credentials");
    let unknown = send_as(
        &app,
        None,
        Method::POST,
        "/v1/auth/token",
        Some(&json!({"grant_type": "client_credentials"})),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.body["errors"][0]["field"], "grant_type");
}

#[tokio::test]
async fn logout_revokes_the_refresh_token() {
    let app = spawn_app().await;
    let session = login(&app, STAFF_EMAIL, TEST_PASSWORD).await.body;
    let out = send_as(
        &app,
        None,
        Method::POST,
        "/v1/auth/logout",
        Some(&json!({"refresh_token": session["refresh_token"]})),
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let after = refresh(&app, &session["refresh_token"]).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.problem_code(), "unauthenticated");
}

#[tokio::test]
async fn an_anonymous_call_to_a_staff_route_is_401_with_a_challenge() {
    let app = spawn_app().anonymous().await;
    let reply = app.get("/v1/orders").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.problem_code(), "unauthenticated");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    // Operations stay open.
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn users_are_for_administrators() {
    let staff = spawn_app().await;
    let reply = staff.get("/v1/users").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.problem_code(), "forbidden");

    let admin = spawn_app().as_admin().await;
    let created = admin
        .post(
            "/v1/users",
            &json!({"email": "New.Person@ordo.test", "password": "a long enough password", "role": "staff"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.body["role"], "staff");
    let text = created.body.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "{text}"
    );
    let again = admin
        .post(
            "/v1/users",
            &json!({"email": "new.person@ordo.test", "password": "another long password", "role": "admin"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.problem_code(), "email_taken");
    let list = admin.get("/v1/users?limit=2").await;
    assert_eq!(list.status, StatusCode::OK, "{list:?}");
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(2));
    assert!(list.body["next_cursor"].is_string());
    assert!(!list.body.to_string().contains("argon2"));
    let new_login = login(&admin, "new.person@ordo.test", "a long enough password").await;
    assert_eq!(new_login.status, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let clock = ManualClock::at(Utc.with_ymd_and_hms(2031, 3, 4, 5, 6, 7).unwrap());
    let app = spawn_app()
        .with_settings(|s| s.auth.access_ttl_secs = 900)
        .with_clock(Arc::new(clock.clone()))
        .await;
    assert_eq!(app.get("/v1/products").await.status, StatusCode::OK);
    clock.advance(TimeDelta::minutes(16));
    let reply = app.get("/v1/products").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.problem_code(), "unauthenticated");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
    // An expired token does not stand in the way of logging in again.
    let again = app
        .post(
            "/v1/auth/login",
            &json!({"email": STAFF_EMAIL, "password": TEST_PASSWORD}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
}

#[tokio::test]
async fn a_tampered_or_foreign_token_is_refused() {
    let app = spawn_app().anonymous().await;
    let token = login(&app, ADMIN_EMAIL, TEST_PASSWORD).await.body["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    // Flip one character of the signature, and separately of the claims.
    let flip = |s: &str| {
        let mut chars: Vec<char> = s.chars().collect();
        chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    let signature = format!("{}.{}.{}", parts[0], parts[1], flip(&parts[2]));
    parts[1] = flip(&parts[1]);
    let claims = parts.join(".");
    for bad in [signature.as_str(), claims.as_str(), "not-a-jwt", "e30.e30."] {
        let reply = send_as(&app, Some(bad), Method::GET, "/v1/users", None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{bad}: {reply:?}");
        assert_eq!(reply.problem_code(), "unauthenticated");
    }
}

#[tokio::test]
async fn the_administrator_of_the_settings_is_created_on_the_first_start() {
    let app = spawn_app()
        .anonymous()
        .with_settings(|s| {
            s.auth.admin_email = Some("boss@example.com".into());
            s.auth.admin_password = Some("the boss's password".into());
        })
        .await;
    let session = login(&app, "boss@example.com", "the boss's password").await;
    assert_eq!(session.status, StatusCode::OK, "{session:?}");
    let token = session.body["access_token"].as_str().expect("a token");
    let me = send_as(&app, Some(token), Method::GET, "/v1/auth/me", None).await;
    assert_eq!(me.body["role"], "admin");
}

#[tokio::test]
async fn without_a_jwt_secret_an_external_database_refuses_to_start() {
    let mut settings = ordo_server::Settings::default();
    settings.database.url = Some("postgres://nobody@127.0.0.1:1/none".into());
    let error = ordo_server::Application::build(settings)
        .await
        .expect_err("no secret, no start");
    assert!(error.to_string().contains("ORDO_JWT_SECRET"), "{error:#}");
}

/// `claims` signed with the test application's own secret, as a token of
/// `issuer` for `audience`: only what the test changes is wrong with it.
fn signed_with_our_secret(claims: &AccessClaims, issuer: &str, audience: &str) -> String {
    let tokens = JwtTokens::new(JwtConfig {
        secret: TEST_JWT_SECRET.as_bytes().to_vec(),
        issuer: issuer.to_owned(),
        audience: audience.to_owned(),
        leeway: TimeDelta::seconds(30),
    })
    .expect("a signer");
    tokens.issue(claims).expect("a token")
}

#[tokio::test]
async fn tokens_with_another_algorithm_audience_or_issuer_or_from_the_future_are_refused() {
    let app = spawn_app().anonymous().await;
    let genuine = login(&app, ADMIN_EMAIL, TEST_PASSWORD).await.body["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let me = send_as(&app, Some(&genuine), Method::GET, "/v1/auth/me", None).await;
    let admin = Principal::User {
        id: UserId::from_uuid(
            me.body["id"]
                .as_str()
                .expect("an id")
                .parse()
                .expect("a uuid"),
        ),
        role: Role::Admin,
    };
    let auth = ordo_server::Settings::default().auth;
    let now = Utc::now();
    let claims = |issued_at| AccessClaims {
        principal: admin,
        issued_at,
        expires_at: issued_at + TimeDelta::minutes(15),
    };
    // The control: signed alike with nothing wrong, it is accepted.
    let sound = signed_with_our_secret(&claims(now), &auth.issuer, &auth.audience);
    assert_eq!(
        send_as(&app, Some(&sound), Method::GET, "/v1/users", None)
            .await
            .status,
        StatusCode::OK
    );
    let [_, payload, signature] =
        <[&str; 3]>::try_from(sound.split('.').collect::<Vec<_>>()).expect("three parts");
    // {"alg":"none","typ":"JWT"} and {"alg":"RS256","typ":"JWT"}, base64url.
    let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    let rs256 = format!("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.{payload}.{signature}");
    let other_audience = signed_with_our_secret(&claims(now), &auth.issuer, "someone-else");
    let other_issuer = signed_with_our_secret(&claims(now), "someone-else", &auth.audience);
    let from_the_future = signed_with_our_secret(
        &claims(now + TimeDelta::minutes(5)),
        &auth.issuer,
        &auth.audience,
    );

    for (what, token) in [
        ("alg none", alg_none),
        ("RS256 header", rs256),
        ("another audience", other_audience),
        ("another issuer", other_issuer),
        ("issued in 5 minutes (leeway 30 s)", from_the_future),
    ] {
        let reply = send_as(&app, Some(&token), Method::GET, "/v1/users", None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}: {reply:?}");
        assert_eq!(reply.problem_code(), "unauthenticated", "{what}");
    }
}

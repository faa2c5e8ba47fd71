//! What a hostile client or a struggling database must not be able to do: hold
//! connections with stalled bodies, grow the metrics without bound, or turn a
//! lock wait into a hung request.

use std::time::Duration;

use ordo_api_tests::{TestApp, spawn_app};
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opens a connection and sends a request head that promises a body of 100 bytes,
/// then one byte of it, then nothing.
/// An authenticated request (an anonymous one is refused before its body is read).
async fn stall_body(app: &TestApp, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("a connection");
    let token = app.access_token().expect("a logged-in harness");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: ordo\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("the head is sent");
    stream
}

/// Reads until the server closes the connection; what it said before closing.
async fn read_until_closed(mut stream: TcpStream) -> Option<String> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    match read {
        Ok(Ok(_)) => Some(String::from_utf8_lossy(&answer).into_owned()),
        // A reset is the server closing too.
        Ok(Err(_)) => Some(String::from_utf8_lossy(&answer).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn thousands_of_stalled_bodies_neither_starve_the_service_nor_stay_open() {
    let app = spawn_app()
        .with_settings(|s| {
            s.http.request_timeout_secs = 2;
            // 2 000 requests of one user within seconds are beyond its default
            // allowance (burst 1 000); refusing them is not what this test is about.
            s.rate_limits.user.burst = 10_000;
        })
        .await;
    let mut stalled = Vec::new();
    for i in 0..2_000 {
        // Half on a route that reads its body, half on one that does not.
        let path = if i % 2 == 0 {
            "/v1/orders"
        } else {
            "/v1/orders/0190aaaa-0000-7000-8000-000000000000/cancel"
        };
        stalled.push(stall_body(&app, path).await);
    }

    let health = app.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);

    let closed = futures::future::join_all(stalled.into_iter().map(read_until_closed)).await;
    let still_open = closed.iter().filter(|c| c.is_none()).count();
    assert_eq!(still_open, 0, "connections the server never closed");
    let timed_out = closed
        .iter()
        .flatten()
        .filter(|answer| answer.starts_with("HTTP/1.1 408"))
        .count();
    assert!(
        timed_out >= 1_000,
        "every stalled JSON body is answered 408, got {timed_out}"
    );
    // A 408 with a body is Ordo's body deadline and a problem document; under load,
    // the HTTP server's own head deadline may answer first, with an empty 408
    // before any of Ordo's code runs.
    let bare = closed
        .iter()
        .flatten()
        .filter(|a| a.starts_with("HTTP/1.1 408") && !a.contains("content-length: 0"))
        .find(|a| !(a.contains("application/problem+json") && a.contains("request_timeout")));
    assert_eq!(bare, None, "a 408 with a body is a problem document");
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn made_up_methods_and_paths_do_not_grow_the_metrics() {
    let app = spawn_app().await;
    for i in 0..30 {
        let method = Method::from_bytes(format!("BREW{i}").as_bytes()).expect("a method token");
        app.send(method, &format!("/made-up/{i}"), None).await;
    }

    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await;
    let text = metrics.expect("metrics").text().await.expect("text");

    assert!(!text.contains("BREW"), "a made-up method became a label");
    assert!(!text.contains("/made-up/"), "a raw path became a label");
    assert!(text.contains(r#"method="other""#), "{text}");
    assert!(text.contains(r#"route="unmatched""#), "{text}");
}

#[tokio::test]
async fn head_is_answered_wherever_get_is_without_a_body() {
    let app = spawn_app().await;
    let product = app.create_product("SVC-HEAD", 100, None).await;

    for path in [
        "/healthz".to_owned(),
        "/v1/products".to_owned(),
        format!("/v1/products/{}", ordo_api_tests::id_of(&product)),
    ] {
        let response = app
            .client
            .head(format!("{}{path}", app.address))
            .send()
            .await
            .expect("a response");
        assert_eq!(response.status(), StatusCode::OK, "HEAD {path}");
        assert!(response.headers().contains_key("x-request-id"));
        let body = response.bytes().await.expect("a body");
        assert!(body.is_empty(), "HEAD {path} sent a body");
    }
}

#[tokio::test]
async fn a_request_id_of_up_to_200_printable_characters_is_echoed() {
    let app = spawn_app().await;
    let longest = "r".repeat(200);
    let too_long = "r".repeat(201);

    let echoed = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", &longest)
        .send()
        .await
        .expect("a response");
    let replaced = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", &too_long)
        .send()
        .await
        .expect("a response");

    assert_eq!(echoed.headers()["x-request-id"], longest.as_str());
    let replacement = replaced.headers()["x-request-id"].to_str().expect("text");
    assert_ne!(replacement, too_long);
    assert!(uuid::Uuid::parse_str(replacement).is_ok(), "{replacement}");
}

#[tokio::test]
async fn a_statement_stuck_behind_a_lock_is_answered_503_with_retry_after() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let app = spawn_app()
        .with_settings(|s| s.database.lock_timeout_ms = 300)
        .await;
    let mut blocker = AsyncPgConnection::establish(&app.database.url)
        .await
        .expect("a connection");
    diesel::sql_query("BEGIN")
        .execute(&mut blocker)
        .await
        .expect("begin");
    diesel::sql_query("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        .execute(&mut blocker)
        .await
        .expect("the table is locked");

    let products = app.get("/v1/products").await;

    assert_eq!(
        products.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{products:?}"
    );
    assert_eq!(products.problem_code(), "database_unavailable");
    assert_eq!(products.header("retry-after"), Some("1"));
    diesel::sql_query("ROLLBACK")
        .execute(&mut blocker)
        .await
        .expect("rollback");
    assert_eq!(app.get("/v1/products").await.status, StatusCode::OK);
}

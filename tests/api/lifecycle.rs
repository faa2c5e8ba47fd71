//! The application's lifecycle through the test harness: a swapped clock seen over
//! HTTP, background tasks that finish their work on a graceful stop, a shutting
//! down instance that is not ready but finishes what it has, and a task that dies
//! making the service not ready.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use ordo_api_tests::{ManualClock, id_of, spawn_app};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_clock_given_to_the_builder_is_the_time_the_api_sees() {
    let clock = ManualClock::at(Utc.with_ymd_and_hms(2031, 3, 4, 5, 6, 7).unwrap());
    let app = spawn_app().with_clock(Arc::new(clock.clone())).await;
    let service = app.create_product("SVC-CLOCK", 1_000, None).await;
    let customer = app.create_customer("clock@example.com", "Oslo").await;
    let order = |note: &str| json!({"customer_id": id_of(&customer), "items": [{"product_id": id_of(&service), "quantity": 1}], "note": note});

    let first = app.post("/v1/orders", &order("now")).await;
    let too_soon = app.post("/v1/orders", &order("an hour later")).await;
    clock.advance(TimeDelta::hours(1));
    let still_too_soon = app.post("/v1/orders", &order("an hour later")).await;
    clock.advance(TimeDelta::hours(3));
    let later = app.post("/v1/orders", &order("four hours later")).await;

    assert_eq!(service["created_at"], "2031-03-04T05:06:07Z");
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(first.body["scheduled_at"], "2031-03-04T05:06:07Z");
    assert_eq!(first.body["created_at"], "2031-03-04T05:06:07Z");
    assert_eq!(first.body["number"], "ORD-20310304-000001");
    assert_eq!(too_soon.problem_code(), "order_too_close");
    assert_eq!(still_too_soon.problem_code(), "order_too_close");
    assert_eq!(later.status, StatusCode::CREATED, "{later:?}");
    assert_eq!(later.body["scheduled_at"], "2031-03-04T09:06:07Z");
}

#[tokio::test]
async fn a_graceful_stop_waits_for_background_tasks_to_finish_their_work() {
    let flushed = Arc::new(AtomicBool::new(false));
    let seen = flushed.clone();
    let app = spawn_app()
        .with_task("slow-flusher", move |cancel| async move {
            cancel.cancelled().await;
            // Work accepted before the stop, written out after it was asked for.
            tokio::time::sleep(Duration::from_millis(300)).await;
            seen.store(true, Ordering::SeqCst);
            Ok(())
        })
        .await;
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
    assert!(!flushed.load(Ordering::SeqCst));

    app.stop().await;

    assert!(
        flushed.load(Ordering::SeqCst),
        "stop returned before the task flushed"
    );
}

/// A product creation whose head and first half of the body are sent: a request
/// in flight. The rest of the body, to send later.
async fn begin_creating_a_product(port: u16, token: &str) -> (TcpStream, String) {
    let body = r#"{"sku":"SVC-DRAINING","name":"In flight","kind":"service","price_minor":100}"#;
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("a connection");
    let head = format!(
        "POST /v1/products HTTP/1.1\r\nHost: ordo\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    stream
        .write_all(format!("{head}{first}").as_bytes())
        .await
        .expect("the head and half the body are sent");
    (stream, rest.to_owned())
}

#[tokio::test]
async fn a_shutting_down_instance_is_not_ready_but_serves_and_finishes_what_it_has() {
    const DRAIN: Duration = Duration::from_millis(1_500);
    let mut app = spawn_app()
        .with_settings(|s| s.http.shutdown_drain_ms = 1_500)
        .await;
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
    let token = app.access_token().expect("a logged-in harness").to_owned();
    let (mut in_flight, rest) = begin_creating_a_product(app.port, &token).await;
    // A fresh connection for every request: what a load balancer's check opens.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .expect("a client");
    let address = app.address.clone();

    let during_shutdown = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let ready = fresh
            .get(format!("{address}/readyz"))
            .send()
            .await
            .expect("still accepting while draining");
        let ready_status = ready.status();
        let ready_body: serde_json::Value = ready.json().await.expect("a problem");
        let alive = fresh
            .get(format!("{address}/healthz"))
            .send()
            .await
            .expect("still accepting while draining")
            .status();
        // Past the drain period new connections are not served; the request in
        // flight still is.
        tokio::time::sleep(DRAIN).await;
        let not_served = fresh
            .get(format!("{address}/healthz"))
            .send()
            .await
            .is_err();
        in_flight
            .write_all(rest.as_bytes())
            .await
            .expect("the rest of the body is sent");
        let mut answer = vec![0_u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), in_flight.read(&mut answer))
            .await
            .expect("an answer in time")
            .expect("the answer is read");
        let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
        (ready_status, ready_body, alive, not_served, answer)
    };
    let ((ready, ready_body, alive, not_served_after_drain, in_flight_answer), ()) =
        tokio::join!(during_shutdown, app.shut_down());

    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE, "{ready_body}");
    assert_eq!(ready_body["code"], "not_ready");
    assert!(
        ready_body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("shutting down")),
        "{ready_body}"
    );
    assert_eq!(alive, StatusCode::OK);
    assert!(
        not_served_after_drain,
        "new connections are still served after the drain period"
    );
    assert!(
        in_flight_answer.starts_with("HTTP/1.1 201"),
        "the request in flight was cut off: {in_flight_answer}"
    );
}

#[tokio::test]
async fn a_background_task_that_panics_makes_the_service_not_ready() {
    let app = spawn_app()
        .with_task("doomed", |_| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            panic!("lost the disk");
        })
        .await;

    let mut ready = app.get("/readyz").await;
    for _ in 0..50 {
        if ready.status != StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        ready = app.get("/readyz").await;
    }

    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.problem_code(), "not_ready");
    let detail = ready.body["detail"].as_str().expect("a detail");
    assert!(
        detail.contains("doomed") && detail.contains("lost the disk"),
        "{detail}"
    );
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
}

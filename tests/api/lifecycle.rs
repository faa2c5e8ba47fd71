//! The application's lifecycle through the test harness: a swapped clock seen over
//! HTTP, background tasks that finish their work on a graceful stop, and a task
//! that dies making the service not ready.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use ordo_api_tests::{ManualClock, id_of, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

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

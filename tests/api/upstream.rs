//! The upstream as the composition root wires it: in sandbox mode the
//! application starts the simulator itself and owns it; otherwise it calls the
//! upstream it is given; administrators see its recent health. (Checkout, which
//! uses it over HTTP, comes next.)

use std::time::Duration;

use ordo_api_tests::spawn_app;
use ordo_domain::orders::OrderId;
use ordo_domain::upstream::{CircuitState, IdempotencyKey, NewUpstreamOrder};
use ordo_domain::{Currency, Money};
use ordo_upstream_sim::SimConfig;
use reqwest::StatusCode;

#[tokio::test]
async fn sandbox_mode_starts_the_simulator_and_the_adapter_reaches_it() {
    let app = spawn_app().await;

    let products = app
        .upstream
        .catalog
        .list_products()
        .await
        .expect("products");
    let audit = reqwest::get(format!("{}/_audit", app.upstream_url))
        .await
        .expect("the simulator answers");

    assert_eq!(products.len(), 10, "the simulator's sample catalog");
    assert!(app.upstream_url.starts_with("http://127.0.0.1:"));
    assert_eq!(audit.status(), StatusCode::OK);
    let health = app.upstream.monitor.health();
    assert_eq!(health.circuit, CircuitState::Closed);
    assert!(health.recent_calls >= 1);
}

#[tokio::test]
async fn the_sandbox_simulator_is_a_task_of_the_application_and_stops_with_it() {
    let app = spawn_app().await;
    let url = app.upstream_url.clone();

    app.stop().await;

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("a client");
    assert!(
        client.get(format!("{url}/_audit")).send().await.is_err(),
        "the simulator no longer answers"
    );
}

#[tokio::test]
async fn a_configured_upstream_is_called_instead_of_a_sandbox_simulator() {
    let app = spawn_app().with_upstream_sim(SimConfig::healthy()).await;
    let sim = app.upstream_sim.as_ref().expect("the test's simulator");
    let order_id = OrderId::generate();

    let created = app
        .upstream
        .orders
        .create_order(NewUpstreamOrder {
            order_id,
            total: Money::new(1250, Currency::parse("EUR").expect("a currency")),
            basket_id: None,
            idempotency_key: IdempotencyKey::for_id("order", order_id.as_uuid()),
        })
        .await
        .expect("created upstream");

    assert_eq!(app.upstream_url, sim.url());
    assert_eq!(created.id.as_str(), order_id.to_string());
    assert!(sim.audit_order(&order_id.to_string()).is_some());
}

#[tokio::test]
async fn administrators_see_the_upstreams_recent_health_and_staff_may_not() {
    let healthy = spawn_app()
        .as_admin()
        .with_upstream_sim(SimConfig::healthy())
        .await;
    let down = spawn_app()
        .as_admin()
        .with_upstream_sim(SimConfig::down())
        .await;
    let staff = spawn_app().sharing_database_of(&healthy).await;
    healthy
        .upstream
        .catalog
        .list_products()
        .await
        .expect("products");
    assert!(down.upstream.catalog.list_products().await.is_err());

    let seen = healthy.get("/v1/integrations/upstream").await;
    let failing = down.get("/v1/integrations/upstream").await;
    let refused = staff.get("/v1/integrations/upstream").await;

    assert_eq!(seen.status, StatusCode::OK, "{seen:?}");
    assert_eq!(seen.body["circuit"], "closed");
    assert_eq!(seen.body["recent_error_rate"], 0.0);
    assert!(seen.body["recent_calls"].as_u64().is_some_and(|n| n >= 1));
    assert!(
        seen.body["latency_p50_ms"]
            .as_f64()
            .is_some_and(|ms| ms > 0.0)
    );
    assert!(
        seen.body["latency_p99_ms"].as_f64() >= seen.body["latency_p50_ms"].as_f64(),
        "{seen:?}"
    );
    assert_eq!(failing.status, StatusCode::OK);
    assert_eq!(failing.body["recent_error_rate"], 1.0, "{failing:?}");
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.problem_code(), "forbidden");
}

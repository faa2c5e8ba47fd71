//! The upstream as the composition root wires it: in sandbox mode the
//! application starts the simulator itself and owns it; otherwise it calls the
//! upstream it is given. (Checkout, which uses it over HTTP, comes next.)

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

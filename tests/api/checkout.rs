//! `POST /v1/baskets/{id}/checkout` against the upstream simulator: healthy,
//! slow, flaky, declining and down; concurrent checkouts of one basket;
//! idempotent replays; a key left running by a crashed process taken over;
//! reconciliation of a payment in doubt. Every claim about
//! money is checked in the simulator's audit of charges.

use std::collections::BTreeMap;
use std::time::Duration;

use ordo_api_tests::{Reply, TestApp, id_of, spawn_app};
use ordo_upstream_sim::{Endpoint, FailureRates, OrderAudit, SimConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A customer, a product with 10 units, and an open basket of the customer
/// holding `quantity` of it at 12.50.
async fn filled_basket(app: &TestApp, tag: &str, quantity: i64) -> (Value, Value) {
    let customer = app
        .create_customer(&format!("{tag}@example.com"), "Oslo")
        .await;
    let product = app
        .create_product(&format!("SKU-{tag}"), 1_250, Some(10))
        .await;
    let basket = app
        .post("/v1/baskets", &json!({"customer_id": id_of(&customer)}))
        .await;
    assert_eq!(basket.status, StatusCode::CREATED, "{basket:?}");
    let path = format!(
        "/v1/baskets/{}/items/{}",
        id_of(&basket.body),
        id_of(&product)
    );
    let filled = app
        .send(
            reqwest::Method::PUT,
            &path,
            Some(&json!({"quantity": quantity})),
        )
        .await;
    assert_eq!(filled.status, StatusCode::OK, "{filled:?}");
    (filled.body, product)
}

async fn check_out_with(app: &TestApp, basket: &Value, key: Option<&str>, body: &Value) -> Reply {
    let mut request = app
        .client
        .post(format!(
            "{}/v1/baskets/{}/checkout",
            app.address,
            id_of(basket)
        ))
        .json(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    Reply::read(request.send().await.expect("sent")).await
}

async fn check_out(app: &TestApp, basket: &Value, key: &str, token: &str) -> Reply {
    check_out_with(
        app,
        basket,
        Some(key),
        &json!({"payment": {"token": token}}),
    )
    .await
}

fn sim_audit(app: &TestApp, order_id: &str) -> Option<OrderAudit> {
    app.upstream_sim
        .as_ref()
        .expect("the test's simulator")
        .audit_order(order_id)
}

fn charges(app: &TestApp, order_id: &str) -> Vec<i64> {
    sim_audit(app, order_id)
        .map(|audit| audit.charges.iter().map(|c| c.amount.minor()).collect())
        .unwrap_or_default()
}

async fn stock_of(app: &TestApp, product: &Value) -> i64 {
    app.get(&format!("/v1/products/{}", id_of(product)))
        .await
        .body["stock"]
        .as_i64()
        .expect("a stock")
}

async fn basket_status(app: &TestApp, basket: &Value) -> String {
    app.get(&format!("/v1/baskets/{}", id_of(basket)))
        .await
        .body["status"]
        .as_str()
        .expect("a status")
        .to_owned()
}

/// Every payment is made, but its answer never arrives.
fn lost_payment_answers() -> SimConfig {
    SimConfig {
        endpoint_failures: [(
            Endpoint::CreatePayment,
            FailureRates {
                drop_connection: 1.0,
                ..FailureRates::default()
            },
        )]
        .into(),
        fail_after_effect_ratio: 1.0,
        ..SimConfig::healthy()
    }
}

/// Runs reconciliation until no checkout is unsettled (it takes a checkout up
/// once its pause after the last attempt has passed).
async fn reconcile_until_settled(app: &TestApp) {
    for _ in 0..30 {
        let unsettled = app
            .count(
                "SELECT count(*) AS n FROM checkouts WHERE state NOT IN ('paid', 'payment_failed')",
            )
            .await;
        if unsettled == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        app.checkout.reconcile_due(100).await.expect("reconciled");
    }
    panic!("checkouts stayed unsettled");
}

#[tokio::test]
async fn a_healthy_checkout_charges_the_total_once_and_the_dispatcher_completes_the_upstream_order()
{
    let app = spawn_app().with_upstream_sim(SimConfig::healthy()).await;
    let (basket, product) = filled_basket(&app, "healthy", 2).await;

    let reply = check_out(&app, &basket, "key-healthy", "tok_ok").await;

    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let order = &reply.body;
    assert_eq!(order["status"], "paid");
    assert_eq!(order["total_minor"], 2_500);
    assert_eq!(order["payment"]["status"], "completed");
    assert_eq!(order["fulfillment"]["status"], "pending");
    assert!(order["payment"]["reference"].is_string(), "{order}");
    assert_eq!(
        reply.header("location"),
        Some(format!("/v1/orders/{}", id_of(order)).as_str())
    );
    assert_eq!(charges(&app, id_of(order)), [2_500]);
    assert_eq!(stock_of(&app, &product).await, 8);
    assert_eq!(basket_status(&app, &basket).await, "checked_out");
    // The background dispatcher delivers the completion off the request path.
    let mut completed = false;
    for _ in 0..50 {
        let audit = sim_audit(&app, id_of(order)).expect("the upstream order");
        if audit.upstream_order_status == ordo_upstream_sim::OrderStatus::Completed {
            completed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(completed, "the upstream order was completed");
    let mut fulfillment = Value::Null;
    for _ in 0..20 {
        fulfillment =
            app.get(&format!("/v1/orders/{}", id_of(order))).await.body["fulfillment"].clone();
        if fulfillment["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        fulfillment,
        json!({"status": "completed", "reference": id_of(order), "attempts": 1})
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM outbox WHERE status = 'delivered' AND attempts = 1")
            .await,
        1
    );
}

#[tokio::test]
async fn a_declined_payment_is_402_and_releases_the_stock_and_reopens_the_basket() {
    let app = spawn_app().with_upstream_sim(SimConfig::healthy()).await;
    let (basket, product) = filled_basket(&app, "declined", 3).await;

    let reply = check_out(&app, &basket, "key-declined", "tok_declined").await;

    assert_eq!(reply.status, StatusCode::PAYMENT_REQUIRED, "{reply:?}");
    assert_eq!(reply.problem_code(), "payment_declined");
    let order_id = reply.body["order_id"].as_str().expect("the order's id");
    let order = app.get(&format!("/v1/orders/{order_id}")).await;
    assert_eq!(order.body["status"], "payment_failed");
    assert_eq!(order.body["payment"]["status"], "declined");
    assert!(charges(&app, order_id).is_empty());
    assert_eq!(stock_of(&app, &product).await, 10);
    assert_eq!(basket_status(&app, &basket).await, "open");
    // The reopened basket checks out again, with a new key.
    let again = check_out(&app, &basket, "key-declined-2", "tok_ok").await;
    assert_eq!(again.status, StatusCode::CREATED, "{again:?}");
    assert_eq!(stock_of(&app, &product).await, 7);
}

#[tokio::test]
async fn a_slow_upstream_and_a_flaky_token_still_pay_once() {
    let app = spawn_app().with_upstream_sim(SimConfig::slow()).await;
    let (slow, _) = filled_basket(&app, "slow", 1).await;
    let (flaky, _) = filled_basket(&app, "flaky-token", 1).await;

    let slow_reply = check_out(&app, &slow, "key-slow", "tok_ok").await;
    let flaky_reply = check_out(&app, &flaky, "key-flaky", "tok_flaky").await;

    for reply in [&slow_reply, &flaky_reply] {
        assert!(
            [StatusCode::CREATED, StatusCode::ACCEPTED].contains(&reply.status),
            "{reply:?}"
        );
    }
    reconcile_until_settled(&app).await;
    for reply in [&slow_reply, &flaky_reply] {
        let id = id_of(&reply.body);
        assert_eq!(
            app.get(&format!("/v1/orders/{id}")).await.body["status"],
            "paid"
        );
        assert_eq!(charges(&app, id), [1_250]);
    }
}

#[tokio::test]
async fn under_thirty_percent_upstream_failures_every_checkout_ends_paid_and_charged_exactly_once()
{
    let app = spawn_app().with_upstream_sim(SimConfig::chaos(0.3)).await;
    let mut statuses = BTreeMap::new();
    let mut orders = Vec::new();
    for i in 0..8 {
        let (basket, _) = filled_basket(&app, &format!("chaos-{i}"), 1).await;
        let reply = check_out(&app, &basket, &format!("key-chaos-{i}"), "tok_ok").await;
        *statuses.entry(reply.status.as_u16()).or_insert(0) += 1;
        assert!(
            [StatusCode::CREATED, StatusCode::ACCEPTED].contains(&reply.status),
            "{reply:?}"
        );
        orders.push(id_of(&reply.body).to_owned());
    }

    reconcile_until_settled(&app).await;

    for id in &orders {
        assert_eq!(
            app.get(&format!("/v1/orders/{id}")).await.body["status"],
            "paid",
            "{statuses:?}"
        );
        assert_eq!(charges(&app, id), [1_250], "order {id} charged once");
    }
}

#[tokio::test]
async fn a_down_upstream_opens_the_circuit_and_then_checkout_is_503_with_nothing_written() {
    let app = spawn_app()
        .with_upstream_sim(SimConfig::down())
        .with_settings(|s| s.upstream.breaker_min_calls = 4)
        .await;
    let mut pending = 0;
    let mut refused = None;
    for i in 0..10 {
        let (basket, product) = filled_basket(&app, &format!("down-{i}"), 2).await;
        let reply = check_out(&app, &basket, &format!("key-down-{i}"), "tok_ok").await;
        if reply.status == StatusCode::ACCEPTED {
            assert_eq!(reply.body["status"], "pending_payment");
            pending += 1;
            continue;
        }
        refused = Some((reply, basket, product));
        break;
    }

    let (reply, basket, product) = refused.expect("the circuit opened");
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    assert_eq!(reply.problem_code(), "upstream_unavailable");
    assert!(reply.header("retry-after").is_some());
    assert_eq!(basket_status(&app, &basket).await, "open");
    assert_eq!(stock_of(&app, &product).await, 10);
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, pending);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM checkouts").await,
        pending
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM idempotency_keys")
            .await,
        pending
    );
}

#[tokio::test]
async fn ten_concurrent_checkouts_of_one_basket_make_one_order_and_one_charge() {
    let app = spawn_app().with_upstream_sim(SimConfig::healthy()).await;
    let (basket, product) = filled_basket(&app, "race", 2).await;

    let replies = futures::future::join_all((0..10).map(|i| {
        let (app, basket) = (&app, &basket);
        async move { check_out(app, basket, &format!("key-race-{i}"), "tok_ok").await }
    }))
    .await;

    let created: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    assert_eq!(created.len(), 1, "{replies:?}");
    for reply in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(reply.status, StatusCode::CONFLICT, "{reply:?}");
        assert_eq!(reply.problem_code(), "basket_not_open");
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 1);
    let audit = app.upstream_sim.as_ref().expect("simulator").audit();
    let all_charges: usize = audit.iter().map(|a| a.charges.len()).sum();
    assert_eq!(all_charges, 1);
    assert_eq!(charges(&app, id_of(&created[0].body)), [2_500]);
    assert_eq!(stock_of(&app, &product).await, 8);
}

#[tokio::test]
async fn the_same_key_replays_the_first_response_and_another_body_under_it_is_refused() {
    let app = spawn_app().with_upstream_sim(SimConfig::healthy()).await;
    let (basket, _) = filled_basket(&app, "replay", 1).await;

    let first = check_out(&app, &basket, "key-replay", "tok_ok").await;
    let replayed = check_out(&app, &basket, "key-replay", "tok_ok").await;
    let reused = check_out(&app, &basket, "key-replay", "tok_flaky").await;
    let missing = check_out_with(
        &app,
        &basket,
        None,
        &json!({"payment": {"token": "tok_ok"}}),
    )
    .await;
    let malformed = check_out(&app, &basket, "has space", "tok_ok").await;

    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(replayed.status, StatusCode::CREATED, "{replayed:?}");
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(replayed.body, first.body);
    assert_eq!(replayed.header("location"), first.header("location"));
    assert_eq!(
        reused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{reused:?}"
    );
    assert_eq!(reused.problem_code(), "idempotency_key_reused");
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{missing:?}");
    assert_eq!(missing.problem_code(), "idempotency_key_required");
    assert_eq!(
        malformed.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{malformed:?}"
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 1);
    assert_eq!(charges(&app, id_of(&first.body)), [1_250]);
}

#[tokio::test]
async fn a_repetition_while_the_first_request_runs_is_409_in_use() {
    let slow = SimConfig {
        latency_ms: 600,
        ..SimConfig::healthy()
    };
    let app = spawn_app().with_upstream_sim(slow).await;
    let (basket, _) = filled_basket(&app, "in-use", 1).await;

    let (first, second) = tokio::join!(check_out(&app, &basket, "key-in-use", "tok_ok"), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        check_out(&app, &basket, "key-in-use", "tok_ok").await
    });

    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(second.status, StatusCode::CONFLICT, "{second:?}");
    assert_eq!(second.problem_code(), "idempotency_key_in_use");
    let after = check_out(&app, &basket, "key-in-use", "tok_ok").await;
    assert_eq!(after.header("idempotent-replayed"), Some("true"));
}

#[tokio::test]
async fn reconciliation_settles_a_payment_whose_answer_was_lost_without_charging_again() {
    let app = spawn_app().with_upstream_sim(lost_payment_answers()).await;
    let (basket, product) = filled_basket(&app, "lost", 2).await;

    let reply = check_out(&app, &basket, "key-lost", "tok_ok").await;

    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    assert_eq!(reply.body["status"], "pending_payment");
    let id = id_of(&reply.body).to_owned();
    assert_eq!(charges(&app, &id), [2_500], "charged, though nobody heard");
    app.upstream_sim
        .as_ref()
        .expect("simulator")
        .set_config(SimConfig::healthy())
        .expect("configured");
    reconcile_until_settled(&app).await;
    let order = app.get(&format!("/v1/orders/{id}")).await;
    assert_eq!(order.body["status"], "paid");
    assert_eq!(charges(&app, &id), [2_500], "still charged once");
    assert_eq!(stock_of(&app, &product).await, 8);
    assert_eq!(basket_status(&app, &basket).await, "checked_out");
}

#[tokio::test]
async fn a_checkout_refused_by_the_order_rules_writes_nothing() {
    let app = spawn_app().with_upstream_sim(SimConfig::healthy()).await;
    let (basket, product) = filled_basket(&app, "rules", 4).await;
    let adjust = app
        .post(
            &format!("/v1/products/{}/stock-adjustments", id_of(&product)),
            &json!({"delta": -8, "reason": "breakage"}),
        )
        .await;
    assert_eq!(adjust.status, StatusCode::OK, "{adjust:?}");

    let reply = check_out(&app, &basket, "key-rules", "tok_ok").await;

    assert_eq!(reply.status, StatusCode::CONFLICT, "{reply:?}");
    assert_eq!(reply.problem_code(), "insufficient_stock");
    assert_eq!(basket_status(&app, &basket).await, "open");
    assert_eq!(stock_of(&app, &product).await, 2);
    for table in ["orders", "checkouts", "outbox"] {
        assert_eq!(
            app.count(&format!("SELECT count(*) AS n FROM {table}"))
                .await,
            0,
            "{table}"
        );
    }
    assert!(
        app.upstream_sim
            .as_ref()
            .expect("simulator")
            .audit()
            .is_empty()
    );
}

#[tokio::test]
async fn checkout_input_is_validated_before_anything_happens() {
    let app = spawn_app().with_upstream_sim(SimConfig::healthy()).await;
    let (basket, _) = filled_basket(&app, "input", 1).await;
    let empty = app.post("/v1/baskets", &json!({})).await.body;

    let no_payment = check_out_with(&app, &basket, Some("k1"), &json!({})).await;
    let blank_token = check_out(&app, &basket, "k2", " ").await;
    let empty_basket = check_out(&app, &empty, "k3", "tok_ok").await;
    let unknown = check_out_with(
        &app,
        &json!({"id": uuid::Uuid::now_v7().to_string()}),
        Some("k4"),
        &json!({"payment": {"token": "tok_ok"}}),
    )
    .await;

    assert_eq!(
        no_payment.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{no_payment:?}"
    );
    assert_eq!(
        blank_token.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{blank_token:?}"
    );
    assert_eq!(
        empty_basket.status,
        StatusCode::CONFLICT,
        "{empty_basket:?}"
    );
    assert_eq!(empty_basket.problem_code(), "basket_empty");
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{unknown:?}");
    assert_eq!(unknown.problem_code(), "basket_not_found");
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 0);
}

#[tokio::test]
async fn a_key_left_running_by_a_crashed_process_is_taken_over_after_its_lease_and_charges_once() {
    // The first request leaves its checkout in doubt, linked to the key.
    let app = spawn_app().with_upstream_sim(lost_payment_answers()).await;
    let (basket, product) = filled_basket(&app, "crashed", 2).await;
    let first = check_out(&app, &basket, "key-crashed", "tok_ok").await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{first:?}");
    let id = id_of(&first.body).to_owned();
    app.upstream_sim
        .as_ref()
        .expect("simulator")
        .set_config(SimConfig::healthy())
        .expect("configured");
    // What a process that died before answering leaves: the key linked to its
    // order, no response, held for its lease.
    let crash = |lease: &str| {
        format!(
            "UPDATE idempotency_keys SET response_status = NULL, response_header_names = NULL, \
             response_header_values = NULL, response_body = NULL, lease_until = now() + interval '{lease}' \
             WHERE key = 'key-crashed' RETURNING 1::bigint AS n"
        )
    };
    assert_eq!(app.count(&crash("30 seconds")).await, 1);

    let within_lease = check_out(&app, &basket, "key-crashed", "tok_ok").await;
    assert_eq!(app.count(&crash("-1 second")).await, 1);
    let taken_over = check_out(&app, &basket, "key-crashed", "tok_ok").await;
    let replayed = check_out(&app, &basket, "key-crashed", "tok_ok").await;

    assert_eq!(
        within_lease.status,
        StatusCode::CONFLICT,
        "{within_lease:?}"
    );
    assert_eq!(within_lease.problem_code(), "idempotency_key_in_use");
    assert_eq!(taken_over.status, StatusCode::CREATED, "{taken_over:?}");
    assert_eq!(id_of(&taken_over.body), id, "the same order, carried on");
    assert_eq!(taken_over.body["status"], "paid");
    assert_eq!(taken_over.header("idempotent-replayed"), None);
    assert_eq!(replayed.status, StatusCode::CREATED);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(charges(&app, &id), [2_500], "charged once, never twice");
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 1);
    assert_eq!(stock_of(&app, &product).await, 8);
    assert_eq!(basket_status(&app, &basket).await, "checked_out");
}

#[tokio::test]
async fn the_outbox_backlog_shows_completions_the_upstream_has_not_taken_yet() {
    // Checkouts pay, but every completion (`PATCH /orders/{id}`) is refused for now.
    let completions_failing = SimConfig {
        endpoint_failures: [(
            Endpoint::PatchOrder,
            FailureRates {
                error_503: 1.0,
                ..FailureRates::default()
            },
        )]
        .into(),
        ..SimConfig::healthy()
    };
    let app = spawn_app()
        .as_admin()
        .with_upstream_sim(completions_failing)
        .await;
    let empty = app.get("/v1/integrations/upstream").await;
    let (basket, _) = filled_basket(&app, "backlog", 1).await;
    let paid = check_out(&app, &basket, "key-backlog", "tok_ok").await;
    assert_eq!(paid.status, StatusCode::CREATED, "{paid:?}");

    let waiting = app.get("/v1/integrations/upstream").await;
    app.upstream_sim
        .as_ref()
        .expect("simulator")
        .set_config(SimConfig::healthy())
        .expect("configured");
    app.count("UPDATE outbox SET next_attempt_at = now() RETURNING 1::bigint AS n")
        .await;
    // Delivered by this call or by the application's own dispatcher task.
    let mut delivered = None;
    for _ in 0..50 {
        app.checkout
            .dispatch_outbox_once(10)
            .await
            .expect("dispatched");
        let seen = app.get("/v1/integrations/upstream").await;
        if seen.body["outbox_backlog"] == 0 {
            delivered = Some(seen);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered = delivered.expect("the completion is delivered once the upstream takes it");

    assert_eq!(empty.status, StatusCode::OK, "{empty:?}");
    assert_eq!(empty.body["outbox_backlog"], 0);
    assert_eq!(empty.body["oldest_pending_at"], Value::Null);
    assert_eq!(waiting.body["outbox_backlog"], 1, "{waiting:?}");
    let since = waiting.body["oldest_pending_at"]
        .as_str()
        .expect("a time")
        .to_owned();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&since).is_ok(),
        "{since}"
    );
    assert_eq!(delivered.body["outbox_backlog"], 0, "{delivered:?}");
    assert_eq!(delivered.body["oldest_pending_at"], Value::Null);
}

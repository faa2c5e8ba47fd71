use ordo_api_tests::{Reply, TestApp, id_of, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn an_order_is_created_priced_numbered_and_found_by_id_and_number() {
    let app = spawn_app().await;
    let inspection = app.create_product("SVC-INSPECTION", 10_000, None).await;
    let gloves = app.create_product("GD-GLOVES", 450, Some(100)).await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;

    let created = app
        .post(
            "/v1/orders",
            &json!({
                "customer_id": id_of(&customer),
                "scheduled_at": "2026-12-01T10:00:00+01:00",
                "items": [
                    {"product_id": id_of(&inspection), "quantity": 1},
                    {"product_id": id_of(&gloves), "quantity": 4}
                ],
                "note": "first visit"
            }),
        )
        .await;

    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let order = &created.body;
    assert_eq!(
        created.header("location"),
        Some(format!("/v1/orders/{}", id_of(order)).as_str())
    );
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(order["status"], "placed");
    assert_eq!(order["scheduled_at"], "2026-12-01T09:00:00Z");
    assert_eq!(order["total_minor"], 11_800);
    assert_eq!(order["currency"], "EUR");
    assert_eq!(order["items"][1]["line_total_minor"], 1_800);
    assert_eq!(order["items"][1]["sku"], "GD-GLOVES");
    assert_eq!(order["payment"], serde_json::Value::Null);
    let number = order["number"].as_str().expect("number");
    assert!(
        number.starts_with("ORD-") && number.ends_with("-000001"),
        "{number}"
    );

    let by_id = app.get(&format!("/v1/orders/{}", id_of(order))).await;
    let by_number = app.get(&format!("/v1/orders/{number}")).await;
    assert_eq!(by_id.body, *order);
    assert_eq!(by_number.body, *order);
    let stock = app.get(&format!("/v1/products/{}", id_of(&gloves))).await;
    assert_eq!(stock.body["stock"], 96);
}

#[tokio::test]
async fn a_leap_second_is_stored_returned_and_read_back_as_the_same_instant() {
    let app = spawn_app().await;
    let svc = app.create_product("SVC", 100, None).await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;

    let created = app
        .post(
            "/v1/orders",
            &json!({"customer_id": id_of(&customer), "scheduled_at": "2030-06-30T23:59:60Z", "items": [{"product_id": id_of(&svc), "quantity": 1}]}),
        )
        .await;

    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.body["scheduled_at"], "2030-07-01T00:00:00Z");
    let read = app
        .get(&format!("/v1/orders/{}", id_of(&created.body)))
        .await;
    assert_eq!(read.body["scheduled_at"], created.body["scheduled_at"]);
    assert_eq!(read.body, created.body);
}

#[tokio::test]
async fn scheduled_at_defaults_to_now() {
    let app = spawn_app().await;
    let svc = app.create_product("SVC", 100, None).await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;
    let before = chrono::Utc::now();

    let created = app
        .post(
            "/v1/orders",
            &json!({"customer_id": id_of(&customer), "items": [{"product_id": id_of(&svc), "quantity": 1}]}),
        )
        .await;

    let scheduled: chrono::DateTime<chrono::Utc> = created.body["scheduled_at"]
        .as_str()
        .expect("time")
        .parse()
        .expect("RFC 3339");
    assert!(scheduled >= before - chrono::TimeDelta::seconds(1));
    assert!(scheduled <= chrono::Utc::now());
}

#[tokio::test]
async fn an_order_within_three_hours_of_another_is_refused_with_the_conflict_named() {
    let app = spawn_app().await;
    let svc = app.create_product("SVC", 100, None).await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;
    let order = |at: &str| json!({"customer_id": id_of(&customer), "scheduled_at": at, "items": [{"product_id": id_of(&svc), "quantity": 1}]});
    let first = app.post("/v1/orders", &order("2026-12-01T09:00:00Z")).await;

    let too_close = app.post("/v1/orders", &order("2026-12-01T11:59:59Z")).await;
    let exactly_three_hours = app.post("/v1/orders", &order("2026-12-01T12:00:00Z")).await;
    let before_too_close = app.post("/v1/orders", &order("2026-12-01T06:30:00Z")).await;

    assert_eq!(too_close.status, StatusCode::CONFLICT);
    assert_eq!(too_close.problem_code(), "order_too_close");
    assert_eq!(too_close.body["conflicting_order_id"], first.body["id"]);
    assert_eq!(too_close.body["window_minutes"], 180);
    assert_eq!(exactly_three_hours.status, StatusCode::CREATED);
    assert_eq!(before_too_close.status, StatusCode::CONFLICT);
    // Another customer is not affected.
    let other = app.create_customer("bob@example.com", "Oslo").await;
    let theirs = app
        .post(
            "/v1/orders",
            &json!({"customer_id": id_of(&other), "scheduled_at": "2026-12-01T09:00:00Z", "items": [{"product_id": id_of(&svc), "quantity": 1}]}),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED);
}

#[tokio::test]
async fn the_spacing_window_is_configurable() {
    let app = spawn_app()
        .with_settings(|s| s.orders.spacing_window_minutes = 30)
        .await;
    let svc = app.create_product("SVC", 100, None).await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;
    let order = |at: &str| json!({"customer_id": id_of(&customer), "scheduled_at": at, "items": [{"product_id": id_of(&svc), "quantity": 1}]});
    app.post("/v1/orders", &order("2026-12-01T09:00:00Z")).await;

    let after_half_an_hour = app.post("/v1/orders", &order("2026-12-01T09:30:00Z")).await;
    let after_twenty_minutes = app.post("/v1/orders", &order("2026-12-01T09:20:00Z")).await;

    assert_eq!(after_half_an_hour.status, StatusCode::CREATED);
    assert_eq!(after_twenty_minutes.status, StatusCode::CONFLICT);
    assert_eq!(after_twenty_minutes.body["window_minutes"], 30);
}

#[tokio::test]
async fn a_create_that_fails_on_stock_changes_nothing() {
    let app = spawn_app().await;
    let plenty = app.create_product("PLENTY", 100, Some(50)).await;
    let scarce = app.create_product("SCARCE", 100, Some(2)).await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;

    let refused = app
        .post(
            "/v1/orders",
            &json!({
                "customer_id": id_of(&customer),
                "items": [
                    {"product_id": id_of(&plenty), "quantity": 10},
                    {"product_id": id_of(&scarce), "quantity": 3}
                ]
            }),
        )
        .await;

    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.problem_code(), "insufficient_stock");
    assert_eq!(refused.body["product_id"], scarce["id"]);
    assert_eq!(refused.body["available"], 2);
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 0);
    assert_eq!(app.count("SELECT count(*) AS n FROM order_lines").await, 0);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM order_number_counters")
            .await,
        0
    );
    assert_eq!(
        app.get(&format!("/v1/products/{}", id_of(&plenty)))
            .await
            .body["stock"],
        50
    );
    assert_eq!(
        app.get(&format!("/v1/products/{}", id_of(&scarce)))
            .await
            .body["stock"],
        2
    );
}

#[tokio::test]
async fn unknown_and_inactive_products_and_customers_are_refused() {
    let app = spawn_app().await;
    let svc = app.create_product("SVC", 100, None).await;
    let retired = app.create_product("RETIRED", 100, None).await;
    app.send(
        Method::PATCH,
        &format!("/v1/products/{}", id_of(&retired)),
        Some(&json!({"active": false})),
    )
    .await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;
    let missing = "01900000-0000-7000-8000-000000000000";
    let order = |customer: &str, product: &str| json!({"customer_id": customer, "items": [{"product_id": product, "quantity": 1}]});

    let unknown_product = app
        .post("/v1/orders", &order(id_of(&customer), missing))
        .await;
    let inactive = app
        .post("/v1/orders", &order(id_of(&customer), id_of(&retired)))
        .await;
    let unknown_customer = app.post("/v1/orders", &order(missing, id_of(&svc))).await;

    assert_eq!(unknown_product.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown_product.problem_code(), "unknown_product");
    assert_eq!(unknown_product.body["product_id"], missing);
    assert_eq!(inactive.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(inactive.problem_code(), "inactive_product");
    assert_eq!(unknown_customer.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown_customer.problem_code(), "customer_not_found");
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 0);
}

#[tokio::test]
async fn a_placed_order_can_be_revised_with_if_match_and_stock_follows() {
    let app = spawn_app().await;
    let gloves = app.create_product("GLOVES", 100, Some(10)).await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;
    let order = app
        .post(
            "/v1/orders",
            &json!({"customer_id": id_of(&customer), "scheduled_at": "2026-12-01T09:00:00Z", "items": [{"product_id": id_of(&gloves), "quantity": 2}]}),
        )
        .await
        .body;
    let path = format!("/v1/orders/{}", id_of(&order));
    let revision = json!({"scheduled_at": "2026-12-02T09:00:00Z", "items": [{"product_id": id_of(&gloves), "quantity": 5}], "note": "bigger"});

    let stale = app
        .client
        .put(format!("{}{path}", app.address))
        .header("if-match", "\"7\"")
        .json(&revision)
        .send()
        .await
        .expect("sent");
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);

    let revised = app
        .client
        .put(format!("{}{path}", app.address))
        .header("if-match", "\"1\"")
        .json(&revision)
        .send()
        .await
        .expect("sent");
    assert_eq!(revised.status(), StatusCode::OK);
    assert_eq!(
        revised.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some("\"2\"")
    );
    let revised: serde_json::Value = revised.json().await.expect("json");
    assert_eq!(revised["scheduled_at"], "2026-12-02T09:00:00Z");
    assert_eq!(revised["total_minor"], 500);
    assert_eq!(revised["note"], "bigger");
    assert_eq!(revised["number"], order["number"]);
    assert_eq!(
        app.get(&format!("/v1/products/{}", id_of(&gloves)))
            .await
            .body["stock"],
        5
    );
}

#[tokio::test]
async fn a_revision_too_close_to_another_order_is_refused() {
    let app = spawn_app().await;
    let svc = app.create_product("SVC", 100, None).await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;
    let place = |at: &str| json!({"customer_id": id_of(&customer), "scheduled_at": at, "items": [{"product_id": id_of(&svc), "quantity": 1}]});
    let first = app
        .post("/v1/orders", &place("2026-12-01T09:00:00Z"))
        .await
        .body;
    let second = app
        .post("/v1/orders", &place("2026-12-01T15:00:00Z"))
        .await
        .body;

    let moved = app
        .send(
            Method::PUT,
            &format!("/v1/orders/{}", id_of(&second)),
            Some(&json!({"scheduled_at": "2026-12-01T10:00:00Z", "items": [{"product_id": id_of(&svc), "quantity": 1}]})),
        )
        .await;
    // Moving within its own window is fine: the order itself is excluded.
    let nudged = app
        .send(
            Method::PUT,
            &format!("/v1/orders/{}", id_of(&first)),
            Some(&json!({"scheduled_at": "2026-12-01T08:00:00Z", "items": [{"product_id": id_of(&svc), "quantity": 1}]})),
        )
        .await;

    assert_eq!(moved.status, StatusCode::CONFLICT);
    assert_eq!(moved.problem_code(), "order_too_close");
    assert_eq!(moved.body["conflicting_order_id"], first["id"]);
    assert_eq!(nudged.status, StatusCode::OK);
}

#[tokio::test]
async fn cancelling_returns_stock_frees_the_slot_and_cannot_happen_twice() {
    let app = spawn_app().await;
    let gloves = app.create_product("GLOVES", 100, Some(10)).await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;
    let place = json!({"customer_id": id_of(&customer), "scheduled_at": "2026-12-01T09:00:00Z", "items": [{"product_id": id_of(&gloves), "quantity": 4}]});
    let order = app.post("/v1/orders", &place).await.body;
    let cancel_path = format!("/v1/orders/{}/cancel", id_of(&order));

    let cancelled = app.post(&cancel_path, &json!({})).await;
    let again = app.send(Method::POST, &cancel_path, None).await;
    let edit = app
        .send(
            Method::PUT,
            &format!("/v1/orders/{}", id_of(&order)),
            Some(&json!({"scheduled_at": "2026-12-01T09:00:00Z", "items": [{"product_id": id_of(&gloves), "quantity": 1}]})),
        )
        .await;
    let replacement = app.post("/v1/orders", &place).await;

    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.problem_code(), "order_not_cancellable");
    // The order's status travels beside the problem's HTTP status, not over it.
    assert_eq!(again.body["order_status"], "cancelled");
    assert_eq!(again.body["status"], 409);
    assert_eq!(edit.status, StatusCode::CONFLICT);
    assert_eq!(edit.problem_code(), "order_not_editable");
    assert_eq!(replacement.status, StatusCode::CREATED);
    assert_eq!(
        app.get(&format!("/v1/products/{}", id_of(&gloves)))
            .await
            .body["stock"],
        6
    );
}

#[tokio::test]
async fn deleting_an_order_returns_stock_and_it_is_gone() {
    let app = spawn_app().await;
    let gloves = app.create_product("GLOVES", 100, Some(10)).await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;
    let order = app
        .post(
            "/v1/orders",
            &json!({"customer_id": id_of(&customer), "items": [{"product_id": id_of(&gloves), "quantity": 4}]}),
        )
        .await
        .body;
    let path = format!("/v1/orders/{}", id_of(&order));

    let deleted = app.send(Method::DELETE, &path, None).await;
    let gone = app.get(&path).await;
    let again = app.send(Method::DELETE, &path, None).await;

    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/v1/products/{}", id_of(&gloves)))
            .await
            .body["stock"],
        10
    );
}

#[tokio::test]
async fn a_paid_order_cannot_be_deleted() {
    let app = spawn_app().await;
    let svc = app.create_product("SVC", 100, None).await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;
    let order = app
        .post(
            "/v1/orders",
            &json!({"customer_id": id_of(&customer), "items": [{"product_id": id_of(&svc), "quantity": 1}]}),
        )
        .await
        .body;
    // Checkout (a later feature) is what marks orders paid; here the row is set directly.
    app.count(&format!(
        "WITH paid AS (UPDATE orders SET status = 'paid', version = version + 1 WHERE id = '{}' RETURNING 1) SELECT count(*) AS n FROM paid",
        id_of(&order)
    ))
    .await;

    let refused = app
        .send(
            Method::DELETE,
            &format!("/v1/orders/{}", id_of(&order)),
            None,
        )
        .await;

    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.problem_code(), "order_not_deletable");
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 1);
}

#[tokio::test]
async fn lists_are_newest_first_filtered_and_paged_with_cursors() {
    let app = spawn_app().await;
    let svc = app.create_product("SVC", 100, None).await;
    let ada = app.create_customer("ada@example.com", "Oslo").await;
    let bob = app.create_customer("bob@example.com", "Oslo").await;
    for day in 1..=5 {
        for customer in [&ada, &bob] {
            let reply = app
                .post(
                    "/v1/orders",
                    &json!({"customer_id": id_of(customer), "scheduled_at": format!("2026-12-0{day}T09:00:00Z"), "items": [{"product_id": id_of(&svc), "quantity": 1}]}),
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED);
        }
    }

    let mut numbers = Vec::new();
    let mut path = format!("/v1/orders?customer_id={}&limit=2", id_of(&ada));
    loop {
        let page = app.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        for order in page.body["items"].as_array().expect("items") {
            assert_eq!(order["customer_id"], ada["id"]);
            numbers.push(order["number"].as_str().expect("number").to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!(
                    "/v1/orders?customer_id={}&limit=2&cursor={cursor}",
                    id_of(&ada)
                )
            }
            None => break,
        }
    }
    let mut newest_first = numbers.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(numbers.len(), 5);
    assert_eq!(numbers, newest_first);

    let window = app
        .get("/v1/orders?from=2026-12-02T00:00:00Z&to=2026-12-04T00:00:00Z&status=placed")
        .await;
    assert_eq!(window.body["items"].as_array().map(Vec::len), Some(4));
    let bad_filter = app.get("/v1/orders?status=shipped&limit=500").await;
    assert_eq!(bad_filter.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = bad_filter.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["limit", "status"]);
}

/// `POST /v1/orders` with `body` under the `Idempotency-Key` `key`.
async fn place_under_key(app: &TestApp, key: &str, body: &serde_json::Value) -> Reply {
    let response = app
        .client
        .post(format!("{}/v1/orders", app.address))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("sent");
    Reply::read(response).await
}

#[tokio::test]
async fn an_order_placed_with_an_idempotency_key_is_placed_once_however_often_it_is_sent() {
    let app = spawn_app().await;
    let product = app.create_product("SVC-ONCE", 5_000, None).await;
    let customer = app.create_customer("once@example.com", "Bergen").await;
    let body = json!({
        "customer_id": id_of(&customer),
        "scheduled_at": "2031-05-01T10:00:00Z",
        "items": [{"product_id": id_of(&product), "quantity": 1}],
    });

    let first = place_under_key(&app, "order-once-1", &body).await;
    let again = place_under_key(&app, "order-once-1", &body).await;
    let mut other = body.clone();
    other["scheduled_at"] = json!("2031-06-01T10:00:00Z");
    let reused = place_under_key(&app, "order-once-1", &other).await;

    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(again.status, StatusCode::CREATED, "{again:?}");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(
        reused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{reused:?}"
    );
    assert_eq!(reused.problem_code(), "idempotency_key_reused");
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 1);
}

#[tokio::test]
async fn a_key_left_running_by_a_crashed_order_request_is_taken_over_and_answered_with_its_order() {
    let app = spawn_app().await;
    let gloves = app.create_product("GD-CRASH", 450, Some(10)).await;
    let customer = app.create_customer("crash@example.com", "Bergen").await;
    let body = json!({
        "customer_id": id_of(&customer),
        "scheduled_at": "2031-05-01T10:00:00Z",
        "items": [{"product_id": id_of(&gloves), "quantity": 3}],
    });
    let first = place_under_key(&app, "order-crashed", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let id = id_of(&first.body).to_owned();
    // What a process that died between the order's commit and storing its
    // answer leaves: the key (linked to the order in the order's transaction)
    // with no response, its lease run out.
    let linked = app
        .count(&format!(
            "UPDATE idempotency_keys SET response_status = NULL, response_header_names = NULL, \
             response_header_values = NULL, response_body = NULL, lease_until = now() - interval '1 second' \
             WHERE key = 'order-crashed' AND order_id = '{id}' RETURNING 1::bigint AS n"
        ))
        .await;
    assert_eq!(linked, 1, "the key names the order it placed");

    let taken_over = place_under_key(&app, "order-crashed", &body).await;
    let replayed = place_under_key(&app, "order-crashed", &body).await;

    assert_eq!(taken_over.status, StatusCode::CREATED, "{taken_over:?}");
    assert_eq!(id_of(&taken_over.body), id, "the first order, not a second");
    assert_eq!(taken_over.header("idempotent-replayed"), None);
    assert_eq!(
        taken_over.header("location"),
        Some(format!("/v1/orders/{id}").as_str())
    );
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(id_of(&replayed.body), id);
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 1);
    assert_eq!(
        app.count("SELECT stock::bigint AS n FROM products WHERE sku = 'GD-CRASH'")
            .await,
        7,
        "stock reserved once"
    );
}

#[tokio::test]
async fn a_key_whose_request_died_before_placing_anything_places_the_order_on_takeover() {
    let app = spawn_app().await;
    let product = app.create_product("SVC-NOTHING", 5_000, None).await;
    let customer = app.create_customer("nothing@example.com", "Bergen").await;
    let body = json!({
        "customer_id": id_of(&customer),
        "scheduled_at": "2031-05-01T10:00:00Z",
        "items": [{"product_id": id_of(&product), "quantity": 1}],
    });
    let first = place_under_key(&app, "order-died-early", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    // A first request that died before its transaction committed left its key
    // claimed and nothing else.
    app.count("DELETE FROM orders RETURNING 1::bigint AS n")
        .await;
    let unlinked = app
        .count(
            "UPDATE idempotency_keys SET response_status = NULL, response_header_names = NULL, \
             response_header_values = NULL, response_body = NULL, order_id = NULL, \
             lease_until = now() - interval '1 second' \
             WHERE key = 'order-died-early' RETURNING 1::bigint AS n",
        )
        .await;
    assert_eq!(unlinked, 1);

    let taken_over = place_under_key(&app, "order-died-early", &body).await;

    assert_eq!(taken_over.status, StatusCode::CREATED, "{taken_over:?}");
    assert_ne!(id_of(&taken_over.body), id_of(&first.body));
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 1);
}

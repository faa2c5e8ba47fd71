//! No input, however malformed, produces a 500: every case below is a 4xx problem
//! document and leaves the database untouched.

use ordo_api_tests::{TestApp, id_of, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn app_with_customer_and_product() -> (TestApp, String, String) {
    let app = spawn_app().await;
    let product = app.create_product("SVC", 100, None).await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;
    (app, id_of(&customer).to_owned(), id_of(&product).to_owned())
}

#[tokio::test]
async fn malformed_json_is_400_invalid_json() {
    let (app, _, _) = app_with_customer_and_product().await;
    for body in ["{", "not json", "{\"customer_id\": }", "", "{}{}", "[1,2"] {
        let reply = app
            .send_raw(
                Method::POST,
                "/v1/orders",
                "application/json",
                body.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body:?}: {reply:?}");
        assert_eq!(reply.problem_code(), "invalid_json");
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 0);
}

#[tokio::test]
async fn wrong_types_unknown_fields_and_bad_values_name_the_field() {
    let (app, customer, product) = app_with_customer_and_product().await;
    let item = |quantity: Value| json!([{"product_id": product, "quantity": quantity}]);
    let cases = [
        (
            json!({"customer_id": 5, "items": item(json!(1))}),
            "customer_id",
        ),
        (
            json!({"customer_id": "abc", "items": item(json!(1))}),
            "customer_id",
        ),
        (
            json!({"customer_id": customer, "items": item(json!("one"))}),
            "items[0].quantity",
        ),
        (
            json!({"customer_id": customer, "items": item(json!(0))}),
            "items[0].quantity",
        ),
        (
            json!({"customer_id": customer, "items": item(json!(-3))}),
            "items[0].quantity",
        ),
        (
            json!({"customer_id": customer, "items": item(json!(1.5))}),
            "items[0].quantity",
        ),
        (
            json!({"customer_id": customer, "items": item(json!(99_999_999_999_i64))}),
            "items[0].quantity",
        ),
        (
            json!({"customer_id": customer, "items": item(json!(1e300))}),
            "items[0].quantity",
        ),
        (
            json!({"customer_id": customer, "items": item(json!(1)), "colour": "red"}),
            "colour",
        ),
        (json!({"customer_id": customer, "items": []}), "items"),
        (json!({"customer_id": customer}), "items"),
        (
            json!({"customer_id": customer, "items": item(json!(1)), "scheduled_at": "tomorrow"}),
            "scheduled_at",
        ),
        (
            json!({"customer_id": customer, "items": item(json!(1)), "scheduled_at": "1900-01-01T00:00:00Z"}),
            "scheduled_at",
        ),
        (
            json!({"customer_id": customer, "items": item(json!(1)), "note": "x".repeat(2001)}),
            "note",
        ),
        (json!([1, 2, 3]), "body"),
        (json!("a string"), "body"),
        (json!(null), "body"),
    ];
    for (body, field) in cases {
        let reply = app.post("/v1/orders", &body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {reply:?}"
        );
        assert_eq!(reply.problem_code(), "validation_failed");
        let named = reply.body["errors"][0]["field"]
            .as_str()
            .unwrap_or_default();
        assert!(
            named.starts_with(field),
            "{body}: expected {field}, got {named}"
        );
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 0);
}

#[tokio::test]
async fn huge_numbers_in_products_are_refused_not_overflowed() {
    let app = spawn_app().await;
    for body in [
        json!({"sku": "A", "name": "A", "kind": "good", "price_minor": 1e40}),
        json!({"sku": "A", "name": "A", "kind": "good", "price_minor": 18_446_744_073_709_551_615_u64}),
        json!({"sku": "A", "name": "A", "kind": "good", "price_minor": 1, "stock": -1}),
        json!({"sku": "A", "name": "A", "kind": "gadget", "price_minor": 1}),
        json!({"sku": "A B", "name": "A", "kind": "good", "price_minor": 1}),
        json!({"sku": "A", "name": "A", "kind": "good", "price_minor": 1, "currency": "EURO"}),
    ] {
        let reply = app.post("/v1/products", &body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {reply:?}"
        );
    }
    let adjust = app
        .post(
            "/v1/products/01900000-0000-7000-8000-000000000000/stock-adjustments",
            &json!({"delta": 9_223_372_036_854_775_807_i64, "reason": "x"}),
        )
        .await;
    // The delta is out of range whatever the product, so it is refused first.
    assert_eq!(adjust.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(adjust.body["errors"][0]["field"], "delta");
    assert_eq!(app.count("SELECT count(*) AS n FROM products").await, 0);
}

#[tokio::test]
async fn an_order_total_that_would_overflow_is_refused() {
    let app = spawn_app().await;
    let pricey = app.create_product("PRICEY", i64::MAX / 2, None).await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;

    let reply = app
        .post(
            "/v1/orders",
            &json!({"customer_id": id_of(&customer), "items": [{"product_id": id_of(&pricey), "quantity": 3}]}),
        )
        .await;

    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.problem_code(), "amount_too_large");
}

#[tokio::test]
async fn non_uuid_ids_in_paths_are_404_problems() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/v1/products/42"),
        (Method::GET, "/v1/customers/not-a-uuid"),
        (Method::GET, "/v1/orders/%00%ff"),
        (Method::GET, "/v1/orders/ORD-2026-1"),
        (Method::DELETE, "/v1/orders/42"),
        (Method::POST, "/v1/orders/42/cancel"),
        (Method::PATCH, "/v1/customers/..%2F..%2Fetc"),
    ] {
        let reply = app.send(method.clone(), path, Some(&json!({}))).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {reply:?}"
        );
        reply.problem_code();
    }
}

#[tokio::test]
async fn bad_query_parameters_are_422() {
    let app = spawn_app().await;
    for query in [
        "limit=0",
        "limit=abc",
        "limit=201",
        "cursor=!!!",
        "customer_id=x",
        "from=yesterday",
    ] {
        let reply = app.get(&format!("/v1/orders?{query}")).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {reply:?}"
        );
        assert_eq!(reply.problem_code(), "validation_failed");
    }
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413_and_other_media_types_415() {
    let app = spawn_app().await;

    let huge = app
        .send_raw(
            Method::POST,
            "/v1/customers",
            "application/json",
            vec![b' '; 1024 * 1024 + 10],
        )
        .await;
    let form = app
        .send_raw(
            Method::POST,
            "/v1/customers",
            "application/x-www-form-urlencoded",
            b"name=a".to_vec(),
        )
        .await;

    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(huge.problem_code(), "payload_too_large");
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(form.problem_code(), "unsupported_media_type");
}

#[tokio::test]
async fn a_malformed_if_match_never_matches() {
    let app = spawn_app().await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;

    let reply = app
        .client
        .patch(format!("{}/v1/customers/{}", app.address, id_of(&customer)))
        .header("if-match", "\"banana\"")
        .json(&json!({"city": "Bergen"}))
        .send()
        .await
        .expect("sent");

    assert_eq!(reply.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        app.get(&format!("/v1/customers/{}", id_of(&customer)))
            .await
            .body["city"],
        "Oslo"
    );
}

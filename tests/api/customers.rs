use ordo_api_tests::{id_of, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_customer_is_created_changed_and_deleted() {
    let app = spawn_app().await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;
    let path = format!("/v1/customers/{}", id_of(&customer));

    let patched = app
        .send(
            Method::PATCH,
            &path,
            Some(&json!({"city": "Bergen", "phone": "+47 55 00 00 00"})),
        )
        .await;
    let cleared = app
        .send(Method::PATCH, &path, Some(&json!({"phone": null})))
        .await;
    let deleted = app.send(Method::DELETE, &path, None).await;

    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.body["city"], "Bergen");
    assert_eq!(patched.body["phone"], "+47 55 00 00 00");
    assert_eq!(cleared.body["phone"], serde_json::Value::Null);
    assert_eq!(cleared.body["version"], 3);
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn emails_are_unique_regardless_of_case() {
    let app = spawn_app().await;
    app.create_customer("ada@example.com", "Oslo").await;

    let again = app
        .post(
            "/v1/customers",
            &json!({"name": "Ada", "email": "ADA@EXAMPLE.COM", "city": "Oslo"}),
        )
        .await;

    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.problem_code(), "email_taken");
}

#[tokio::test]
async fn a_customer_with_orders_cannot_be_deleted() {
    let app = spawn_app().await;
    let svc = app.create_product("SVC", 100, None).await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;
    app.post(
        "/v1/orders",
        &json!({"customer_id": id_of(&customer), "items": [{"product_id": id_of(&svc), "quantity": 1}]}),
    )
    .await;

    let refused = app
        .send(
            Method::DELETE,
            &format!("/v1/customers/{}", id_of(&customer)),
            None,
        )
        .await;

    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.problem_code(), "customer_has_orders");
}

#[tokio::test]
async fn invalid_customer_fields_are_all_reported_at_once() {
    let app = spawn_app().await;

    let reply = app
        .post(
            "/v1/customers",
            &json!({"name": " ", "email": "not-an-email", "city": "Oslo", "phone": "x"}),
        )
        .await;

    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = reply.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["name", "email", "phone"]);
    assert_eq!(app.count("SELECT count(*) AS n FROM customers").await, 0);
}

#[tokio::test]
async fn emails_are_unique_regardless_of_case_beyond_ascii() {
    let app = spawn_app().await;
    app.create_customer("\u{c9}x@example.com", "Oslo").await;

    let again = app
        .post(
            "/v1/customers",
            &json!({"name": "Ex", "email": "\u{e9}x@example.com", "city": "Oslo"}),
        )
        .await;

    assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
    assert_eq!(again.problem_code(), "email_taken");
    assert_eq!(app.count("SELECT count(*) AS n FROM customers").await, 1);
}

#[tokio::test]
async fn an_empty_patch_changes_nothing_not_even_the_version() {
    let app = spawn_app().await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;
    let path = format!("/v1/customers/{}", id_of(&customer));

    let patched = app.send(Method::PATCH, &path, Some(&json!({}))).await;

    assert_eq!(patched.status, StatusCode::OK, "{patched:?}");
    assert_eq!(patched.header("etag"), Some("\"1\""));
    assert_eq!(patched.body, customer);
    assert_eq!(app.get(&path).await.body, customer);
}

#[tokio::test]
async fn stored_customers_show_no_address_or_phone_number_yet_read_back_whole() {
    let app = spawn_app().await;
    let customer = app
        .post(
            "/v1/customers",
            &json!({"name": "Grace Hopper", "email": "Grace.Hopper@Navy.example", "city": "Arlington", "phone": "+1 703 555 0100"}),
        )
        .await;
    let path = format!("/v1/customers/{}", id_of(&customer.body));
    let patched = app
        .send(
            Method::PATCH,
            &path,
            Some(&json!({"email": "Amazing.Grace@Navy.example"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);

    let read = app.get(&path).await;

    assert_eq!(read.body["email"], "Amazing.Grace@Navy.example");
    assert_eq!(read.body["phone"], "+1 703 555 0100");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM customers WHERE name = 'Grace Hopper'")
            .await,
        1
    );
    // The whole row as PostgreSQL prints it, bytea columns in hex.
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM customers c WHERE lower(c::text) LIKE '%navy.example%' \
             OR lower(c::text) LIKE '%grace@%' OR c::text LIKE '%555 0100%'"
        )
        .await,
        0
    );
    // And the raw bytes of the sealed columns.
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM customers WHERE position('navy.example'::bytea IN email_sealed) > 0 \
             OR position('555 0100'::bytea IN phone_sealed) > 0"
        )
        .await,
        0
    );
}

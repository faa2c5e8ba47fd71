use ordo_api_tests::{id_of, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_product_is_created_read_listed_and_changed_with_if_match() {
    let app = spawn_app().await;

    let created = app
        .post(
            "/v1/products",
            &json!({"sku": "GD-KIT", "name": "Test kit", "kind": "good", "price_minor": 3900, "currency": "dkk", "stock": 40, "low_stock_threshold": 10}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let product = created.body;
    assert_eq!(product["currency"], "DKK");
    assert_eq!(product["stock"], 40);
    assert_eq!(product["low_stock"], false);
    assert_eq!(product["active"], true);
    let path = format!("/v1/products/{}", id_of(&product));

    let listed = app.get("/v1/products").await;
    assert_eq!(listed.body["items"][0]["id"], product["id"]);
    assert_eq!(listed.body["next_cursor"], serde_json::Value::Null);

    let stale = app
        .client
        .patch(format!("{}{path}", app.address))
        .header("if-match", "\"2\"")
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let patched = app
        .client
        .patch(format!("{}{path}", app.address))
        .header("if-match", "\"1\"")
        .json(&json!({"name": "Renamed", "price_minor": 4200, "low_stock_threshold": null}))
        .send()
        .await
        .expect("sent");
    assert_eq!(patched.status(), StatusCode::OK);
    let patched: serde_json::Value = patched.json().await.expect("json");
    assert_eq!(patched["name"], "Renamed");
    assert_eq!(patched["price_minor"], 4200);
    assert_eq!(patched["currency"], "DKK");
    assert_eq!(patched["low_stock_threshold"], serde_json::Value::Null);
    assert_eq!(patched["version"], 2);
}

#[tokio::test]
async fn skus_are_unique() {
    let app = spawn_app().await;
    app.create_product("SKU-1", 100, None).await;

    let again = app
        .post(
            "/v1/products",
            &json!({"sku": "SKU-1", "name": "Other", "kind": "service", "price_minor": 1}),
        )
        .await;

    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.problem_code(), "sku_taken");
}

#[tokio::test]
async fn services_cannot_track_stock_and_prices_cannot_be_negative() {
    let app = spawn_app().await;

    let reply = app
        .post(
            "/v1/products",
            &json!({"sku": "S", "name": "Svc", "kind": "service", "price_minor": 5, "stock": 3}),
        )
        .await;
    let negative = app
        .post(
            "/v1/products",
            &json!({"sku": "N", "name": "Neg", "kind": "good", "price_minor": -5}),
        )
        .await;

    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["errors"][0]["field"], "stock");
    assert_eq!(negative.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(negative.body["errors"][0]["field"], "price_minor");
    assert_eq!(app.count("SELECT count(*) AS n FROM products").await, 0);
}

#[tokio::test]
async fn stock_adjustments_never_take_stock_below_zero() {
    let app = spawn_app().await;
    let kit = app.create_product("KIT", 100, Some(5)).await;
    let path = format!("/v1/products/{}/stock-adjustments", id_of(&kit));

    let added = app
        .post(&path, &json!({"delta": 10, "reason": "delivery"}))
        .await;
    let too_many = app
        .post(&path, &json!({"delta": -16, "reason": "breakage"}))
        .await;
    let zero = app
        .post(&path, &json!({"delta": 0, "reason": "nothing"}))
        .await;

    assert_eq!(added.status, StatusCode::OK);
    assert_eq!(added.body["stock"], 15);
    assert_eq!(too_many.status, StatusCode::CONFLICT);
    assert_eq!(too_many.problem_code(), "insufficient_stock");
    assert_eq!(too_many.body["available"], 15);
    assert_eq!(zero.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.get(&format!("/v1/products/{}", id_of(&kit))).await.body["stock"],
        15
    );
}

#[tokio::test]
async fn deleting_a_product_used_by_orders_deactivates_it() {
    let app = spawn_app().await;
    let used = app.create_product("USED", 100, None).await;
    let unused = app.create_product("UNUSED", 100, None).await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;
    app.post(
        "/v1/orders",
        &json!({"customer_id": id_of(&customer), "items": [{"product_id": id_of(&used), "quantity": 1}]}),
    )
    .await;

    let deactivated = app
        .send(
            Method::DELETE,
            &format!("/v1/products/{}", id_of(&used)),
            None,
        )
        .await;
    let deleted = app
        .send(
            Method::DELETE,
            &format!("/v1/products/{}", id_of(&unused)),
            None,
        )
        .await;

    assert_eq!(deactivated.status, StatusCode::NO_CONTENT);
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/v1/products/{}", id_of(&used)))
            .await
            .body["active"],
        false
    );
    assert_eq!(
        app.get(&format!("/v1/products/{}", id_of(&unused)))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn stock_is_bounded_so_returns_can_never_overflow() {
    let app = spawn_app().await;
    let too_much = app
        .post(
            "/v1/products",
            &json!({"sku": "BIG", "name": "Big", "kind": "good", "price_minor": 1, "stock": 1_000_000_000_001_i64}),
        )
        .await;
    let kit = app
        .create_product("KIT", 100, Some(1_000_000_000_000))
        .await;
    let path = format!("/v1/products/{}/stock-adjustments", id_of(&kit));

    let over = app
        .post(&path, &json!({"delta": 1, "reason": "delivery"}))
        .await;
    let no_reason = app.post(&path, &json!({"delta": -1, "reason": " "})).await;

    assert_eq!(too_much.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(too_much.body["errors"][0]["field"], "stock");
    assert_eq!(over.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(over.body["errors"][0]["field"], "delta");
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(no_reason.body["errors"][0]["field"], "reason");
    assert_eq!(
        app.get(&format!("/v1/products/{}", id_of(&kit))).await.body["stock"],
        1_000_000_000_000_i64
    );
}

#[tokio::test]
async fn the_most_negative_delta_is_a_validation_error_not_a_conflict() {
    let app = spawn_app().await;
    let kit = app.create_product("KIT", 100, Some(5)).await;

    let reply = app
        .post(
            &format!("/v1/products/{}/stock-adjustments", id_of(&kit)),
            &json!({"delta": i64::MIN, "reason": "x"}),
        )
        .await;

    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
    assert_eq!(reply.problem_code(), "validation_failed");
    assert_eq!(reply.body["errors"][0]["field"], "delta");
    assert_eq!(
        app.get(&format!("/v1/products/{}", id_of(&kit))).await.body["stock"],
        5
    );
}

#[tokio::test]
async fn a_weak_if_match_never_matches() {
    let app = spawn_app().await;
    let kit = app.create_product("KIT", 100, Some(1)).await;

    let reply = app
        .client
        .patch(format!("{}/v1/products/{}", app.address, id_of(&kit)))
        .header("if-match", "W/\"1\"")
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .expect("sent");

    assert_eq!(reply.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        app.get(&format!("/v1/products/{}", id_of(&kit))).await.body["name"],
        "KIT"
    );
}

#[tokio::test]
async fn an_empty_patch_changes_nothing_not_even_the_version() {
    let app = spawn_app().await;
    let kit = app.create_product("KIT", 100, Some(1)).await;
    let path = format!("/v1/products/{}", id_of(&kit));

    let patched = app.send(Method::PATCH, &path, Some(&json!({}))).await;

    assert_eq!(patched.status, StatusCode::OK, "{patched:?}");
    assert_eq!(patched.header("etag"), Some("\"1\""));
    assert_eq!(patched.body, kit);
    assert_eq!(app.get(&path).await.body, kit);
}

#[tokio::test]
async fn if_match_with_a_list_of_tags_matches_any_of_them() {
    let app = spawn_app().await;
    let product = app.create_product("SVC-LIST", 100, None).await;
    let path = format!("{}/v1/products/{}", app.address, id_of(&product));
    let patch = |tags: &'static str, name: &'static str| {
        app.client
            .patch(&path)
            .header("if-match", tags)
            .json(&json!({ "name": name }))
            .send()
    };

    let none_current = patch("\"5\", \"6\"", "Nope").await.expect("sent");
    let weak_only = patch("W/\"1\", W/\"2\"", "Nope").await.expect("sent");
    let one_current = patch("\"5\", \"1\"", "Renamed").await.expect("sent");

    assert_eq!(none_current.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(weak_only.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(one_current.status(), StatusCode::OK);
    let renamed: serde_json::Value = one_current.json().await.expect("json");
    assert_eq!(renamed["name"], "Renamed");
    assert_eq!(renamed["version"], 2);
}

//! `/v1/baskets`: the life cycle, exact prices and totals, validation that changes
//! nothing, expiry by the clock, and concurrent changes of one basket.

use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use ordo_api_tests::{ManualClock, Reply, TestApp, id_of, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn open_basket(app: &TestApp) -> Value {
    let reply = app.post("/v1/baskets", &json!({})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    reply.body
}

fn item_path(basket: &Value, product: &Value) -> String {
    format!("/v1/baskets/{}/items/{}", id_of(basket), id_of(product))
}

async fn put_quantity(app: &TestApp, basket: &Value, product: &Value, quantity: Value) -> Reply {
    app.send(
        Method::PUT,
        &item_path(basket, product),
        Some(&json!({ "quantity": quantity })),
    )
    .await
}

async fn put_if_match(app: &TestApp, path: &str, etag: &str, quantity: i64) -> Reply {
    let response = app
        .client
        .put(format!("{}{path}", app.address))
        .header("if-match", etag)
        .json(&json!({ "quantity": quantity }))
        .send()
        .await
        .expect("sent");
    Reply::read(response).await
}

#[tokio::test]
async fn a_basket_is_opened_filled_priced_emptied_and_deleted() {
    let clock = ManualClock::at(Utc.with_ymd_and_hms(2031, 3, 4, 5, 6, 7).unwrap());
    let app = spawn_app().with_clock(Arc::new(clock.clone())).await;
    let coffee = app.create_product("COFFEE", 250, None).await;
    let beans = app.create_product("BEANS", 1_299, Some(40)).await;
    let customer = app.create_customer("till@example.com", "Oslo").await;

    let created = app
        .post("/v1/baskets", &json!({"customer_id": id_of(&customer)}))
        .await;
    let basket = created.body.clone();
    let path = format!("/v1/baskets/{}", id_of(&basket));
    clock.advance(TimeDelta::minutes(10));
    let with_coffee = put_quantity(&app, &basket, &coffee, json!(3)).await;
    let with_beans = put_quantity(&app, &basket, &beans, json!(2)).await;
    let fewer_coffees = put_quantity(&app, &basket, &coffee, json!(1)).await;
    let read = app.get(&path).await;
    let without_beans = app
        .send(Method::DELETE, &item_path(&basket, &beans), None)
        .await;
    let without_coffee = put_quantity(&app, &basket, &coffee, json!(0)).await;
    let deleted = app.send(Method::DELETE, &path, None).await;
    let gone = app.get(&path).await;
    let change_after = put_quantity(&app, &basket, &coffee, json!(1)).await;

    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.header("location"), Some(path.as_str()));
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(basket["customer_id"], id_of(&customer));
    assert_eq!(basket["status"], "open");
    assert_eq!(basket["items"], json!([]));
    assert_eq!(basket["total_minor"], 0);
    assert_eq!(basket["currency"], "EUR");
    assert_eq!(basket["version"], 1);
    assert_eq!(basket["expires_at"], "2031-03-05T05:06:07Z");

    assert_eq!(with_coffee.status, StatusCode::OK, "{with_coffee:?}");
    assert_eq!(with_coffee.body["total_minor"], 750);
    assert_eq!(with_coffee.body["expires_at"], "2031-03-05T05:16:07Z");
    assert_eq!(with_beans.body["total_minor"], 750 + 2 * 1_299);
    assert_eq!(fewer_coffees.body["version"], 4);
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.header("etag"), Some("\"4\""));
    assert_eq!(read.body["total_minor"], 250 + 2_598);
    assert_eq!(
        read.body["items"],
        json!([
            {"product_id": id_of(&coffee), "sku": "COFFEE", "name": "COFFEE", "quantity": 1, "unit_price_minor": 250, "line_total_minor": 250},
            {"product_id": id_of(&beans), "sku": "BEANS", "name": "BEANS", "quantity": 2, "unit_price_minor": 1_299, "line_total_minor": 2_598},
        ])
    );
    assert_eq!(without_beans.status, StatusCode::OK);
    assert_eq!(without_beans.body["total_minor"], 250);
    assert_eq!(without_coffee.body["items"], json!([]));
    assert_eq!(without_coffee.body["total_minor"], 0);
    assert_eq!(without_coffee.body["version"], 6);
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(gone.problem_code(), "basket_not_found");
    assert_eq!(change_after.status, StatusCode::NOT_FOUND);
    assert_eq!(change_after.problem_code(), "basket_not_found");
    assert_eq!(app.count("SELECT count(*) AS n FROM basket_lines").await, 0);
}

#[tokio::test]
async fn a_line_keeps_the_price_it_was_set_at_until_it_is_set_again() {
    let app = spawn_app().await;
    let coffee = app.create_product("COFFEE", 250, None).await;
    let basket = open_basket(&app).await;
    put_quantity(&app, &basket, &coffee, json!(2)).await;
    let repriced = app
        .send(
            Method::PATCH,
            &format!("/v1/products/{}", id_of(&coffee)),
            Some(&json!({"price_minor": 275})),
        )
        .await;
    assert_eq!(repriced.status, StatusCode::OK);

    let kept = app.get(&format!("/v1/baskets/{}", id_of(&basket))).await;
    let set_again = put_quantity(&app, &basket, &coffee, json!(2)).await;

    assert_eq!(kept.body["total_minor"], 500);
    assert_eq!(set_again.body["items"][0]["unit_price_minor"], 275);
    assert_eq!(set_again.body["total_minor"], 550);
}

#[tokio::test]
async fn invalid_quantities_products_and_ids_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let coffee = app.create_product("COFFEE", 250, None).await;
    let krone = app
        .post(
            "/v1/products",
            &json!({"sku": "KRONE", "name": "Krone", "kind": "service", "price_minor": 100, "currency": "DKK"}),
        )
        .await
        .body;
    let retired = app.create_product("RETIRED", 100, None).await;
    let basket = open_basket(&app).await;
    put_quantity(&app, &basket, &coffee, json!(2)).await;
    // Used by an order, so deleting deactivates it.
    let customer = app.create_customer("ada@example.com", "Oslo").await;
    let order = app
        .post(
            "/v1/orders",
            &json!({"customer_id": id_of(&customer), "items": [{"product_id": id_of(&retired), "quantity": 1}]}),
        )
        .await;
    assert_eq!(order.status, StatusCode::CREATED);
    app.send(
        Method::DELETE,
        &format!("/v1/products/{}", id_of(&retired)),
        None,
    )
    .await;
    let unknown = json!({"id": uuid::Uuid::now_v7().to_string()});
    let basket_path = format!("/v1/baskets/{}", id_of(&basket));

    let refused = [
        (
            "zero is fine, negative is not",
            put_quantity(&app, &basket, &coffee, json!(-1)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "too large",
            put_quantity(&app, &basket, &coffee, json!(1_000_001)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "fractional",
            put_quantity(&app, &basket, &coffee, json!(1.5)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "a string",
            put_quantity(&app, &basket, &coffee, json!("2")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "unknown product",
            put_quantity(&app, &basket, &unknown, json!(1)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_product",
        ),
        (
            "inactive product",
            put_quantity(&app, &basket, &retired, json!(1)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "inactive_product",
        ),
        (
            "another currency",
            put_quantity(&app, &basket, &krone, json!(1)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "mixed_currencies",
        ),
        (
            "unknown basket",
            put_quantity(&app, &unknown, &coffee, json!(1)).await,
            StatusCode::NOT_FOUND,
            "basket_not_found",
        ),
        (
            "unknown field",
            app.send(
                Method::PUT,
                &item_path(&basket, &coffee),
                Some(&json!({"quantity": 1, "price_minor": 1})),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "missing quantity",
            app.send(Method::PUT, &item_path(&basket, &coffee), Some(&json!({})))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "not JSON",
            app.send_raw(
                Method::PUT,
                &item_path(&basket, &coffee),
                "application/json",
                b"{quantity".to_vec(),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "bad basket id",
            app.send(
                Method::PUT,
                &format!("/v1/baskets/not-a-uuid/items/{}", id_of(&coffee)),
                Some(&json!({"quantity": 1})),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "bad product id",
            app.send(
                Method::PUT,
                &format!("{basket_path}/items/42"),
                Some(&json!({"quantity": 1})),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "unknown customer",
            app.post("/v1/baskets", &json!({"customer_id": uuid::Uuid::now_v7()}))
                .await,
            StatusCode::NOT_FOUND,
            "customer_not_found",
        ),
        (
            "customer not a uuid",
            app.post("/v1/baskets", &json!({"customer_id": "ada"}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];

    for (case, reply, status, code) in &refused {
        assert_eq!(reply.status, *status, "{case}: {reply:?}");
        assert_eq!(reply.problem_code(), *code, "{case}");
    }
    let quantity_error = &refused[0].1.body["errors"][0];
    assert_eq!(quantity_error["field"], "quantity");
    assert_eq!(refused[4].1.body["product_id"], unknown["id"]);
    let after = app.get(&basket_path).await;
    assert_eq!(after.body["version"], 2);
    assert_eq!(after.body["total_minor"], 500);
    assert_eq!(app.count("SELECT count(*) AS n FROM baskets").await, 1);
}

#[tokio::test]
async fn an_integral_float_quantity_is_the_integer_it_is() {
    let app = spawn_app().await;
    let coffee = app.create_product("COFFEE", 250, None).await;
    let basket = open_basket(&app).await;

    let reply = put_quantity(&app, &basket, &coffee, json!(2.0)).await;

    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["total_minor"], 500);
}

#[tokio::test]
async fn an_expired_basket_refuses_changes_and_reads_as_expired() {
    let clock = ManualClock::at(Utc.with_ymd_and_hms(2031, 3, 4, 5, 6, 7).unwrap());
    let app = spawn_app()
        .with_clock(Arc::new(clock.clone()))
        .with_settings(|s| s.baskets.ttl_secs = 3600)
        .await;
    let coffee = app.create_product("COFFEE", 250, None).await;
    let basket = open_basket(&app).await;
    clock.advance(TimeDelta::minutes(59));
    let in_time = put_quantity(&app, &basket, &coffee, json!(1)).await;
    clock.advance(TimeDelta::minutes(60));

    let too_late = put_quantity(&app, &basket, &coffee, json!(2)).await;
    let removal = app
        .send(Method::DELETE, &item_path(&basket, &coffee), None)
        .await;
    let read = app.get(&format!("/v1/baskets/{}", id_of(&basket))).await;
    let deleted = app
        .send(
            Method::DELETE,
            &format!("/v1/baskets/{}", id_of(&basket)),
            None,
        )
        .await;

    assert_eq!(basket["expires_at"], "2031-03-04T06:06:07Z");
    assert_eq!(in_time.status, StatusCode::OK);
    assert_eq!(in_time.body["expires_at"], "2031-03-04T07:05:07Z");
    assert_eq!(too_late.status, StatusCode::CONFLICT);
    assert_eq!(too_late.problem_code(), "basket_not_open");
    assert_eq!(too_late.body["basket_status"], "expired");
    assert_eq!(removal.problem_code(), "basket_not_open");
    assert_eq!(read.body["status"], "expired");
    assert_eq!(read.body["items"][0]["quantity"], 1);
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_checked_out_basket_refuses_changes_and_is_kept() {
    let app = spawn_app().await;
    let coffee = app.create_product("COFFEE", 250, None).await;
    let basket = open_basket(&app).await;
    put_quantity(&app, &basket, &coffee, json!(1)).await;
    // Checkout is not built yet; it will mark baskets like this, in its transaction.
    app.count(&format!(
        "WITH marked AS (UPDATE baskets SET status = 'checked_out' WHERE id = '{}' RETURNING 1) SELECT count(*) AS n FROM marked",
        id_of(&basket)
    ))
    .await;

    let change = put_quantity(&app, &basket, &coffee, json!(2)).await;
    let delete = app
        .send(
            Method::DELETE,
            &format!("/v1/baskets/{}", id_of(&basket)),
            None,
        )
        .await;

    assert_eq!(change.problem_code(), "basket_not_open");
    assert_eq!(change.body["basket_status"], "checked_out");
    assert_eq!(delete.status, StatusCode::CONFLICT);
    assert_eq!(delete.problem_code(), "basket_not_open");
    assert_eq!(app.count("SELECT count(*) AS n FROM baskets").await, 1);
}

#[tokio::test]
async fn twenty_concurrent_puts_of_different_products_all_land() {
    let app = spawn_app().await;
    let basket = open_basket(&app).await;
    let mut products = Vec::new();
    for i in 0..20 {
        products.push(app.create_product(&format!("P-{i}"), 100 + i, None).await);
    }

    let replies = futures::future::join_all(
        products
            .iter()
            .map(|p| put_quantity(&app, &basket, p, json!(2))),
    )
    .await;

    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    let read = app.get(&format!("/v1/baskets/{}", id_of(&basket))).await;
    assert_eq!(read.body["items"].as_array().map(Vec::len), Some(20));
    assert_eq!(read.body["version"], 21);
    assert_eq!(read.body["total_minor"], 2 * (100..120).sum::<i64>());
    let mut versions: Vec<i64> = replies
        .iter()
        .map(|r| r.body["version"].as_i64().expect("a version"))
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (2..=21).collect::<Vec<_>>());
}

#[tokio::test]
async fn twenty_concurrent_puts_with_one_if_match_have_exactly_one_winner() {
    let app = spawn_app().await;
    let basket = open_basket(&app).await;
    let coffee = app.create_product("COFFEE", 250, None).await;
    let path = item_path(&basket, &coffee);

    let replies = futures::future::join_all(
        (1..=20).map(|quantity| put_if_match(&app, &path, "\"1\"", quantity)),
    )
    .await;

    let winners: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    assert_eq!(winners.len(), 1, "{replies:?}");
    for loser in replies.iter().filter(|r| r.status != StatusCode::OK) {
        assert_eq!(loser.status, StatusCode::PRECONDITION_FAILED, "{loser:?}");
        assert_eq!(loser.problem_code(), "precondition_failed");
    }
    let read = app.get(&format!("/v1/baskets/{}", id_of(&basket))).await;
    assert_eq!(read.body["version"], 2);
    assert_eq!(
        read.body["items"][0]["quantity"],
        winners[0].body["items"][0]["quantity"]
    );
    let current = put_if_match(&app, &path, "\"2\"", 7).await;
    assert_eq!(current.status, StatusCode::OK);
    assert_eq!(current.header("etag"), Some("\"3\""));
}

#[tokio::test]
async fn a_basket_holds_at_most_a_hundred_lines() {
    let app = spawn_app().await;
    let basket = open_basket(&app).await;
    for i in 0..100 {
        let product = app.create_product(&format!("P-{i}"), 1, None).await;
        let reply = put_quantity(&app, &basket, &product, json!(1)).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    let one_more = app.create_product("P-100", 1, None).await;

    let refused = put_quantity(&app, &basket, &one_more, json!(1)).await;

    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.problem_code(), "basket_full");
    assert_eq!(refused.body["max_lines"], 100);
}

#[tokio::test]
async fn baskets_are_for_logged_in_staff() {
    let app = spawn_app().anonymous().await;

    let reply = app.post("/v1/baskets", &json!({})).await;

    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.problem_code(), "unauthenticated");
}

#[tokio::test]
async fn a_product_synced_from_the_upstream_is_sold_in_a_basket_at_the_upstream_price() {
    let app = spawn_app()
        .with_upstream_sim(ordo_upstream_sim::SimConfig::healthy())
        .await;
    let local = app.create_product("LOCAL", 300, None).await;

    let first = app.catalog_sync.sync_once().await.expect("synced");
    let second = app.catalog_sync.sync_once().await.expect("synced again");

    assert_eq!((first.created, first.skipped), (10, 0), "{first:?}");
    assert_eq!(
        (second.created, second.updated, second.unchanged),
        (0, 0, 10)
    );
    let listed = app.get("/v1/products?limit=100").await;
    let products = listed.body["items"].as_array().expect("items");
    assert_eq!(
        products.len(),
        11,
        "the local product and the upstream's ten"
    );
    let coffee = products
        .iter()
        .find(|p| p["sku"] == "UP-prod_coffee")
        .expect("the simulator's coffee")
        .clone();
    assert_eq!(coffee["name"], "Coffee");
    assert_eq!(coffee["price_minor"], 2_500);
    assert_eq!(coffee["active"], true);
    assert!(products.iter().any(|p| p["id"] == local["id"]));

    let basket = open_basket(&app).await;
    let filled = put_quantity(&app, &basket, &coffee, json!(2)).await;
    assert_eq!(filled.status, StatusCode::OK, "{filled:?}");
    assert_eq!(filled.body["total_minor"], 5_000);
    assert_eq!(filled.body["items"][0]["sku"], "UP-prod_coffee");
    assert_eq!(filled.body["items"][0]["unit_price_minor"], 2_500);
}

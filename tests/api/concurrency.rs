//! Guarantees that only show when requests really race: real parallel HTTP
//! requests against the real server and database.

use std::collections::BTreeMap;

use futures::future::join_all;
use ordo_api_tests::{TestApp, id_of, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn fifty_concurrent_creates_for_one_customer_at_one_time_yield_exactly_one_order() {
    let app = spawn_app().await;
    let svc = app.create_product("SVC", 100, None).await;
    let customer = app.create_customer("ada@example.com", "Oslo").await;
    let body = json!({
        "customer_id": id_of(&customer),
        "scheduled_at": "2026-12-01T09:00:00Z",
        "items": [{"product_id": id_of(&svc), "quantity": 1}]
    });

    let replies = join_all((0..50).map(|_| app.post("/v1/orders", &body))).await;

    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let too_close = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT && r.problem_code() == "order_too_close")
        .count();
    assert_eq!(
        (created, too_close),
        (1, 49),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 1);
}

#[tokio::test]
async fn twenty_concurrent_creates_of_one_address_in_different_cases_store_exactly_one_customer() {
    let app = spawn_app().await;
    let spellings: Vec<String> = (0..20_u32)
        .map(|i| {
            "race.condition@example.com"
                .chars()
                .enumerate()
                .map(|(at, c)| {
                    if (i >> (at % 5)) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect()
        })
        .collect();
    let bodies: Vec<_> = spellings
        .iter()
        .map(|email| json!({"name": "Racer", "email": email, "city": "Oslo"}))
        .collect();

    let replies = join_all(bodies.iter().map(|body| app.post("/v1/customers", body))).await;

    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let taken = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT && r.problem_code() == "email_taken")
        .count();
    assert_eq!(
        (created, taken),
        (1, 19),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM customers").await, 1);
}

#[tokio::test]
async fn two_hundred_concurrent_creates_get_distinct_gapless_numbers() {
    let app = spawn_app().await;
    let svc = app.create_product("SVC", 100, None).await;
    let customers = join_all((0..200).map(|i| customer_id(&app, i))).await;

    let bodies: Vec<_> = customers
        .iter()
        .map(|customer| {
            json!({"customer_id": customer, "scheduled_at": "2026-12-01T09:00:00Z", "items": [{"product_id": id_of(&svc), "quantity": 1}]})
        })
        .collect();
    let replies = join_all(bodies.iter().map(|body| app.post("/v1/orders", body))).await;

    assert!(replies.iter().all(|r| r.status == StatusCode::CREATED));
    // Numbers run per day of placing; a run that straddles midnight UTC has two days.
    let mut by_day: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for reply in &replies {
        let number = reply.body["number"].as_str().expect("number");
        let (day, sequence) = number["ORD-".len()..].split_once('-').expect("ORD-day-seq");
        by_day
            .entry(day.to_owned())
            .or_default()
            .push(sequence.parse().expect("digits"));
    }
    let mut total = 0;
    for sequences in by_day.values_mut() {
        sequences.sort_unstable();
        let expected: Vec<u32> = (1..=u32::try_from(sequences.len()).expect("small")).collect();
        assert_eq!(*sequences, expected, "numbers must be 1..n without gaps");
        total += sequences.len();
    }
    assert_eq!(total, 200);
}

#[tokio::test]
async fn concurrent_orders_never_sell_more_than_the_stock() {
    let app = spawn_app().await;
    let kit = app.create_product("KIT", 100, Some(7)).await;
    let customers = join_all((0..30).map(|i| customer_id(&app, i))).await;

    let bodies: Vec<_> = customers
        .iter()
        .map(|customer| json!({"customer_id": customer, "items": [{"product_id": id_of(&kit), "quantity": 1}]}))
        .collect();
    let replies = join_all(bodies.iter().map(|body| app.post("/v1/orders", body))).await;

    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let short = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT && r.problem_code() == "insufficient_stock")
        .count();
    assert_eq!((created, short), (7, 23));
    assert_eq!(
        app.get(&format!("/v1/products/{}", id_of(&kit))).await.body["stock"],
        0
    );
}

async fn customer_id(app: &TestApp, i: usize) -> String {
    let customer = app
        .create_customer(&format!("c{i}@example.com"), "Oslo")
        .await;
    id_of(&customer).to_owned()
}

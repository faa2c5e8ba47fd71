//! `/v1/reports`: figures worked out by hand from orders placed over HTTP, the
//! same reports as CSV, and parameters refused with 422.

use chrono::{TimeDelta, Utc};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ordo_api_tests::{TestApp, id_of, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The first quarter of 2026, as dates: `to` includes March 31.
const QUARTER: &str = "from=2026-01-01&to=2026-03-31";

struct Sales {
    ada: String,
    bo: String,
    cy: String,
    filter: String,
    valve: String,
}

async fn place(app: &TestApp, customer: &str, at: &str, product: &str, quantity: i64) -> String {
    let reply = app
        .post(
            "/v1/orders",
            &json!({"customer_id": customer, "scheduled_at": at, "items": [{"product_id": product, "quantity": quantity}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    id_of(&reply.body).to_owned()
}

async fn customer(app: &TestApp, name: &str, email: &str, city: &str) -> String {
    let reply = app
        .post(
            "/v1/customers",
            &json!({"name": name, "email": email, "city": city}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    id_of(&reply.body).to_owned()
}

async fn product(app: &TestApp, body: Value) -> String {
    let reply = app.post("/v1/products", &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    id_of(&reply.body).to_owned()
}

/// | order | customer (city as entered) | scheduled | lines | status |
/// | --- | --- | --- | --- | --- |
/// | 1 | Ada (`Oslo`) | 2026-01-10 | Filter 2 × 1000 | placed |
/// | 2 | Ada | 2026-03-05 | Valve 4 × 250 | placed |
/// | 3 | Bo (` oslo `) | 2026-01-20 | Filter 1 × 1000 | placed |
/// | 4 | Bo | 2026-03-15 | Filter 10 × 1000 | cancelled |
/// | 5 | Cy (`OSLO`) | 2026-03-20 | Valve 12 × 250 | paid |
/// | 6 | Di (`Oslo`) | yesterday | Filter 1 × 1000 | placed |
async fn sales(app: &TestApp) -> Sales {
    let filter = product(
        app,
        json!({"sku": "FLT-1", "name": "Filter, \"large\"", "kind": "good", "price_minor": 1000, "stock": 50, "low_stock_threshold": 60}),
    )
    .await;
    let valve = product(
        app,
        json!({"sku": "VLV-2", "name": "Valve", "kind": "good", "price_minor": 250, "stock": 500}),
    )
    .await;
    let ada = customer(app, "Ada, \"the\" Countess", "ada@example.com", "Oslo").await;
    let bo = customer(app, "Bo", "bo@example.com", " oslo ").await;
    let cy = customer(app, "Cy", "cy@example.com", "OSLO").await;
    let di = customer(app, "Di", "di@example.com", "Oslo").await;
    place(app, &ada, "2026-01-10T10:00:00Z", &filter, 2).await;
    place(app, &ada, "2026-03-05T10:00:00Z", &valve, 4).await;
    place(app, &bo, "2026-01-20T10:00:00Z", &filter, 1).await;
    let cancelled = place(app, &bo, "2026-03-15T10:00:00Z", &filter, 10).await;
    let paid = place(app, &cy, "2026-03-20T10:00:00Z", &valve, 12).await;
    let yesterday = (Utc::now() - TimeDelta::days(1)).to_rfc3339();
    place(app, &di, &yesterday, &filter, 1).await;
    let cancel = app
        .post(&format!("/v1/orders/{cancelled}/cancel"), &json!({}))
        .await;
    assert_eq!(cancel.status, StatusCode::OK, "{cancel:?}");
    // No route pays an order yet (checkout does, through the upstream).
    let mut conn = app.pool.get().await.expect("a connection");
    let conn: &mut AsyncPgConnection = &mut conn;
    diesel::sql_query(format!(
        "UPDATE orders SET status = 'paid' WHERE id = '{paid}'"
    ))
    .execute(conn)
    .await
    .expect("the order is paid");
    Sales {
        ada,
        bo,
        cy,
        filter,
        valve,
    }
}

async fn csv(app: &TestApp, path: &str) -> (reqwest::header::HeaderMap, Vec<Vec<String>>) {
    let response = app
        .client
        .get(format!("{}{path}", app.address))
        .header("accept", "text/csv")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("a body");
    let records = csv::Reader::from_reader(&body[..])
        .records()
        .map(|r| r.expect("a CSV record").iter().map(str::to_owned).collect())
        .collect();
    let mut with_header = vec![
        csv::Reader::from_reader(&body[..])
            .headers()
            .expect("a header row")
            .iter()
            .map(str::to_owned)
            .collect(),
    ];
    with_header.extend::<Vec<Vec<String>>>(records);
    (headers, with_header)
}

fn strings(row: &[&str]) -> Vec<String> {
    row.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn top_customers_count_paid_and_placed_orders_of_the_period_only() {
    let app = spawn_app().await;
    let s = sales(&app).await;

    let by_spend = app
        .get(&format!("/v1/reports/top-customers?{QUARTER}"))
        .await;
    let by_orders = app
        .get(&format!(
            "/v1/reports/top-customers?{QUARTER}&by=orders&limit=1"
        ))
        .await;

    assert_eq!(by_spend.status, StatusCode::OK, "{by_spend:?}");
    // Ada: orders 1 and 2 (2000 + 1000); Cy: order 5 (paid, 3000); Bo: order 3
    // (order 4 was cancelled). Ada and Cy spent alike: more orders first. Di's
    // order is after the quarter.
    assert_eq!(
        by_spend.body,
        json!({
            "from": "2026-01-01T00:00:00Z",
            "to": "2026-04-01T00:00:00Z",
            "currency": "EUR",
            "items": [
                {"customer_id": s.ada, "name": "Ada, \"the\" Countess", "city": "Oslo", "orders": 2, "spend_minor": 3000},
                {"customer_id": s.cy, "name": "Cy", "city": "OSLO", "orders": 1, "spend_minor": 3000},
                {"customer_id": s.bo, "name": "Bo", "city": "oslo", "orders": 1, "spend_minor": 1000},
            ]
        })
    );
    assert_eq!(by_orders.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(by_orders.body["items"][0]["customer_id"], json!(s.ada));
}

#[tokio::test]
async fn reports_as_csv_hold_the_same_rows_quoted_where_needed() {
    let app = spawn_app().await;
    let s = sales(&app).await;

    let json_report = app
        .get(&format!("/v1/reports/top-customers?{QUARTER}"))
        .await;
    let (headers, rows) = csv(&app, &format!("/v1/reports/top-customers?{QUARTER}")).await;
    let (_, by_city) = csv(&app, &format!("/v1/reports/sales-by-city?{QUARTER}")).await;
    let (_, months) = csv(&app, &format!("/v1/reports/monthly-sales?{QUARTER}")).await;
    let raw = app
        .client
        .get(format!(
            "{}/v1/reports/top-customers?{QUARTER}&limit=1",
            app.address
        ))
        .header("accept", "text/html;q=0.9, text/csv")
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");

    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(
        headers.get("vary").and_then(|v| v.to_str().ok()),
        Some("accept")
    );
    // Read back, every value is what the JSON report says.
    let from_json: Vec<Vec<String>> = json_report.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            ["customer_id", "name", "city", "orders", "spend_minor"]
                .iter()
                .map(|key| match &item[*key] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    assert_eq!(
        rows[0],
        strings(&["customer_id", "name", "city", "orders", "spend_minor"])
    );
    assert_eq!(rows[1..], from_json[..]);
    // The comma and the quotes of Ada's name are quoted as RFC 4180 says.
    assert_eq!(
        raw,
        format!(
            "customer_id,name,city,orders,spend_minor\n{},\"Ada, \"\"the\"\" Countess\",Oslo,2,3000\n",
            s.ada
        )
    );
    // One city however its customers typed it, spelled as most of them do (Ada
    // and Di: `Oslo`); the valve's 4 + 12 units before the filter's 2 + 1.
    assert_eq!(
        by_city,
        [
            strings(&[
                "city",
                "product_id",
                "sku",
                "name",
                "quantity",
                "revenue_minor"
            ]),
            strings(&["Oslo", &s.valve, "VLV-2", "Valve", "16", "4000"]),
            strings(&["Oslo", &s.filter, "FLT-1", "Filter, \"large\"", "3", "3000"]),
        ]
    );
    assert_eq!(
        months,
        [
            strings(&["month", "units", "revenue_minor"]),
            strings(&["2026-01", "3", "3000"]),
            strings(&["2026-02", "0", "0"]),
            strings(&["2026-03", "16", "4000"]),
        ]
    );
}

#[tokio::test]
async fn monthly_sales_average_over_every_month_and_stock_shows_what_is_left() {
    let app = spawn_app().await;
    let s = sales(&app).await;

    let monthly = app
        .get(&format!("/v1/reports/monthly-sales?{QUARTER}"))
        .await;
    let stock = app.get("/v1/reports/stock").await;

    assert_eq!(monthly.status, StatusCode::OK, "{monthly:?}");
    // 3 + 0 + 16 units over three months; the valve 16 ÷ 3, the filter 3 ÷ 3.
    assert_eq!(monthly.body["average_units_per_month"], json!(6.33));
    assert_eq!(
        monthly.body["by_product"],
        json!([
            {"product_id": s.valve, "sku": "VLV-2", "avg_units_per_month": 5.33},
            {"product_id": s.filter, "sku": "FLT-1", "avg_units_per_month": 1.0},
        ])
    );
    assert_eq!(
        monthly.body["months"][1],
        json!({"month": "2026-02", "units": 0, "revenue_minor": 0})
    );
    assert_eq!(stock.status, StatusCode::OK, "{stock:?}");
    // The filter: 50 − 2 − 1 − 10 + 10 (cancelled, returned) − 1 = 46, at or below
    // its threshold of 60; of its sales only Di's of yesterday is recent. The
    // valve: 500 − 4 − 12 = 484, no threshold.
    assert_eq!(
        stock.body["items"],
        json!([
            {"product_id": s.filter, "sku": "FLT-1", "name": "Filter, \"large\"", "stock": 46, "reserved": 0, "sold_30d": 1, "low_stock": true},
            {"product_id": s.valve, "sku": "VLV-2", "name": "Valve", "stock": 484, "reserved": 0, "sold_30d": 0, "low_stock": false},
        ])
    );
}

#[tokio::test]
async fn bad_report_parameters_are_422_naming_every_field() {
    let app = spawn_app().await;

    let reversed = app
        .get("/v1/reports/sales-by-city?from=2026-03-01&to=2026-02-01")
        .await;
    let malformed = app
        .get("/v1/reports/top-customers?from=2026-13-01&to=yesterday&limit=0&by=best&currency=EURO")
        .await;
    let too_long = app
        .get("/v1/reports/monthly-sales?from=2000-01-01&to=2026-01-01")
        .await;
    let too_many = app.get("/v1/reports/top-customers?limit=201").await;

    for reply in [&reversed, &malformed, &too_long, &too_many] {
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
        assert_eq!(reply.problem_code(), "validation_failed");
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
    }
    let fields = |reply: &ordo_api_tests::Reply| -> Vec<String> {
        reply.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().expect("a field").to_owned())
            .collect()
    };
    assert_eq!(fields(&reversed), ["from"]);
    assert_eq!(
        fields(&malformed),
        ["from", "to", "currency", "limit", "by"]
    );
    assert_eq!(fields(&too_long), ["from"]);
    assert_eq!(fields(&too_many), ["limit"]);
}

#[tokio::test]
async fn reports_are_for_staff_only() {
    let app = spawn_app().as_client().await;

    let as_client = app.get("/v1/reports/stock").await;
    let anonymous = app
        .anonymous
        .get(format!("{}/v1/reports/stock", app.address))
        .send()
        .await
        .expect("sent");

    assert_eq!(as_client.status, StatusCode::FORBIDDEN, "{as_client:?}");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_openapi_document_offers_each_report_as_json_and_csv() {
    let app = spawn_app().await;

    let spec = app.get("/openapi.json").await;

    assert_eq!(
        spec.body["components"]["schemas"]["RankingName"]["enum"],
        json!(["spend", "orders"])
    );
    for report in ["top-customers", "sales-by-city", "stock", "monthly-sales"] {
        let content = &spec.body["paths"][format!("/v1/reports/{report}")]["get"]["responses"]["200"]
            ["content"];
        assert!(
            content["application/json"].is_object(),
            "{report}: {content}"
        );
        assert!(content["text/csv"].is_object(), "{report}: {content}");
    }
}

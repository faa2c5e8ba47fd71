//! `/v1/reports`: figures worked out by hand from orders placed over HTTP and
//! from requests made through the API, the same reports as CSV, and parameters
//! refused with 422.

use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ordo_api_tests::{
    ManualClock, STAFF_EMAIL, TEST_PASSWORD, TestApp, api_key_client, id_of, spawn_app,
};
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
    let hours = app
        .get("/v1/reports/requests-per-hour?from=2026-03-02&to=2026-03-01&limit=0")
        .await;

    for reply in [&reversed, &malformed, &too_long, &too_many, &hours] {
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
    // The limit is refused before the period is looked at.
    assert_eq!(fields(&hours), ["limit"]);
}

#[tokio::test]
async fn reports_are_for_staff_only() {
    let app = spawn_app().as_client().await;

    let as_client = app.get("/v1/reports/stock").await;
    let hours_as_client = app.get("/v1/reports/requests-per-hour").await;
    let anonymous = app
        .anonymous
        .get(format!("{}/v1/reports/stock", app.address))
        .send()
        .await
        .expect("sent");

    assert_eq!(as_client.status, StatusCode::FORBIDDEN, "{as_client:?}");
    assert_eq!(hours_as_client.status, StatusCode::FORBIDDEN);
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
    for report in [
        "top-customers",
        "sales-by-city",
        "stock",
        "monthly-sales",
        "requests-per-hour",
    ] {
        let content = &spec.body["paths"][format!("/v1/reports/{report}")]["get"]["responses"]["200"]
            ["content"];
        assert!(
            content["application/json"].is_object(),
            "{report}: {content}"
        );
        assert!(content["text/csv"].is_object(), "{report}: {content}");
    }
}

/// A fresh access token of the harness's staff user, valid at the app's clock now.
async fn staff_token(app: &TestApp) -> String {
    let session: Value = app
        .anonymous
        .post(format!("{}/v1/auth/login", app.address))
        .json(&json!({"email": STAFF_EMAIL, "password": TEST_PASSWORD}))
        .send()
        .await
        .expect("sent")
        .error_for_status()
        .expect("the staff user logs in")
        .json()
        .await
        .expect("a session");
    session["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// A GET with `token`, asking for `accept`: the status, the content type and the body.
async fn get_as(
    app: &TestApp,
    token: &str,
    path: &str,
    accept: &str,
) -> (StatusCode, Option<String>, String) {
    let response = app
        .anonymous
        .get(format!("{}{path}", app.address))
        .bearer_auth(token)
        .header("accept", accept)
        .send()
        .await
        .expect("sent");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        response.status(),
        content_type,
        response.text().await.expect("a body"),
    )
}

/// Registers an API client; returns its id and a client sending its key.
async fn api_client(app: &TestApp, name: &str) -> (String, reqwest::Client) {
    let reply = app
        .register_client(&json!({"name": name, "email": "robot@example.com"}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let key = reply.body["api_key"].as_str().expect("a key");
    (id_of(&reply.body).to_owned(), api_key_client(key))
}

async fn report_hits(client: &reqwest::Client, app: &TestApp, hits: &Value) {
    let reply = client
        .post(format!("{}/v1/logs", app.address))
        .json(hits)
        .send()
        .await
        .expect("sent");
    assert_eq!(reply.status(), StatusCode::ACCEPTED);
}

/// Waits until the hourly counts of `hour` add up to `expected`: the activity
/// writer stores hits a flush interval after they were made.
async fn until_hour_counts(app: &TestApp, hour: &str, expected: i64) {
    let sql = format!(
        "SELECT coalesce(sum(requests), 0)::int8 AS n FROM activity_hourly WHERE hour = '{hour}'"
    );
    let mut seen = 0;
    for _ in 0..200 {
        seen = app.count(&sql).await;
        if seen == expected {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{hour} counted {seen} requests, not {expected}");
}

#[tokio::test]
async fn requests_per_hour_count_what_users_and_clients_did_through_the_api() {
    let clock = ManualClock::at(
        Utc.with_ymd_and_hms(2026, 3, 10, 9, 50, 0)
            .single()
            .expect("an instant"),
    );
    let app = spawn_app().with_clock(Arc::new(clock.clone())).await;
    // All of this is in the hour of 09:00: the staff user asking who it is, and
    // the administrator registering two clients.
    let me = app.get("/v1/auth/me").await;
    let staff_id = me.body["id"].as_str().expect("an id").to_owned();
    let (a_id, a) = api_client(&app, "A").await;
    let (b_id, b) = api_client(&app, "Robot, \"B\"").await;

    clock.advance(TimeDelta::minutes(75));
    // 11:05. The staff user: three requests. A: two hits it reports and the
    // request carrying them. B: five hits of this hour, one of 10:30, and the
    // request carrying them.
    let staff = staff_token(&app).await;
    for _ in 0..3 {
        let (status, _, body) = get_as(&app, &staff, "/v1/products", "application/json").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    report_hits(
        &a,
        &app,
        &json!([
            {"endpoint": "/a", "occurred_at": "2026-03-10T11:01:00Z"},
            {"endpoint": "/a", "occurred_at": "2026-03-10T11:02:00Z"},
        ]),
    )
    .await;
    let mut b_hits: Vec<Value> = (0..5)
        .map(|m| json!({"endpoint": "/b", "occurred_at": format!("2026-03-10T11:0{m}:30Z")}))
        .collect();
    b_hits.push(json!({"endpoint": "/b", "occurred_at": "2026-03-10T10:30:00Z"}));
    report_hits(&b, &app, &Value::Array(b_hits)).await;
    until_hour_counts(&app, "2026-03-10T11:00:00Z", 12).await;
    until_hour_counts(&app, "2026-03-10T10:00:00Z", 1).await;

    // 12:05: the report's own requests fall in an hour after the period.
    clock.advance(TimeDelta::hours(1));
    let staff = staff_token(&app).await;
    let path = "/v1/reports/requests-per-hour?from=2026-03-10T10:00:00Z&to=2026-03-10T12:00:00Z";
    let (status, _, json_body) = get_as(&app, &staff, path, "application/json").await;
    let (csv_status, csv_type, csv_body) = get_as(&app, &staff, path, "text/csv").await;
    let (_, _, busiest) =
        get_as(&app, &staff, &format!("{path}&limit=1"), "application/json").await;

    assert_eq!(status, StatusCode::OK, "{json_body}");
    let report: Value = serde_json::from_str(&json_body).expect("JSON");
    let busiest: Value = serde_json::from_str(&busiest).expect("JSON");
    assert_eq!(report["from"], "2026-03-10T10:00:00Z");
    assert_eq!(report["to"], "2026-03-10T12:00:00Z");
    // B: 1 + 6; A: 3; the staff user: 3, after A (equal totals: clients first).
    // The requests of 09:00 and the report's own of 12:00 are outside the period.
    let rows = [
        (&b_id, "client", "Robot, \"B\"", "10", 1),
        (&b_id, "client", "Robot, \"B\"", "11", 6),
        (&a_id, "client", "A", "11", 3),
        (&staff_id, "user", STAFF_EMAIL, "11", 3),
    ];
    let expected: Vec<Value> = rows
        .iter()
        .map(|(id, kind, name, hour, requests)| {
            json!({"principal_id": id, "principal_kind": kind, "name": name, "hour": format!("2026-03-10T{hour}:00:00Z"), "requests": requests})
        })
        .collect();
    assert_eq!(report["items"], json!(expected));
    assert_eq!(busiest["items"], json!(expected[..2]));
    assert_eq!(csv_status, StatusCode::OK);
    assert_eq!(csv_type.as_deref(), Some("text/csv; charset=utf-8"));
    // The name with a comma and quotes is quoted, its quotes doubled.
    assert!(
        csv_body.contains(",\"Robot, \"\"B\"\"\",2026-03-10T10:00:00Z,1\n"),
        "{csv_body}"
    );
    let mut reader = csv::Reader::from_reader(csv_body.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("a header row")
        .iter()
        .map(str::to_owned)
        .collect();
    let records: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.expect("a CSV record").iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(
        header,
        ["principal_id", "principal_kind", "name", "hour", "requests"]
    );
    let expected_records: Vec<Vec<String>> = rows
        .iter()
        .map(|(id, kind, name, hour, requests)| {
            vec![
                (*id).clone(),
                (*kind).to_owned(),
                (*name).to_owned(),
                format!("2026-03-10T{hour}:00:00Z"),
                requests.to_string(),
            ]
        })
        .collect();
    assert_eq!(records, expected_records);
}

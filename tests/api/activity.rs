//! Activity over HTTP: reporting hits, the hits the server records itself, the
//! batched writer's guarantees (nothing accepted is lost or counted twice, across
//! a graceful stop and a restart; backpressure refuses instead of dropping), and
//! the usage figures with their windows, ties, scoping and caching.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use ordo_api_tests::{ManualClock, Reply, TestApp, api_key_client, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn post_with(client: &reqwest::Client, app: &TestApp, path: &str, body: &Value) -> Reply {
    Reply::read(
        client
            .post(format!("{}{path}", app.address))
            .json(body)
            .send()
            .await
            .expect("sent"),
    )
    .await
}

async fn get_with(client: &reqwest::Client, app: &TestApp, path: &str) -> Reply {
    Reply::read(
        client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .expect("sent"),
    )
    .await
}

/// Registers a client and returns its id and a client sending its key.
async fn client_named(
    app: &TestApp,
    name: &str,
    rate_limit: Option<Value>,
) -> (String, reqwest::Client) {
    let mut body = json!({"name": name, "email": "robot@example.com"});
    if let Some(limit) = rate_limit {
        body["rate_limit"] = limit;
    }
    let registered = app.register_client(&body).await;
    assert_eq!(registered.status, StatusCode::CREATED, "{registered:?}");
    let key = registered.body["api_key"].as_str().expect("a key");
    (
        registered.body["id"].as_str().expect("an id").to_owned(),
        api_key_client(key),
    )
}

fn unlimited() -> Option<Value> {
    Some(json!({"requests_per_minute": 600_000, "burst": 1_000_000}))
}

async fn reported(app: &TestApp) -> i64 {
    app.count("SELECT count(*) AS n FROM activity_hits WHERE source = 'reported'")
        .await
}

/// Waits until `sql` counts `expected`: hits the server observed are written
/// within a flush interval.
async fn until_counted(app: &TestApp, sql: &str, expected: i64) {
    let mut seen = 0;
    for _ in 0..200 {
        seen = app.count(sql).await;
        if seen == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{sql} counted {seen}, not {expected}");
}

#[tokio::test]
async fn one_hit_or_an_array_is_accepted_and_stored_with_the_request_that_carried_it() {
    let mut app = spawn_app().as_client().await;

    let one = app
        .post("/v1/logs", &json!({"endpoint": "/orders", "status": 200}))
        .await;
    let many = app
        .post(
            "/api/logs",
            &json!([
                {"endpoint": "/orders/1", "method": "delete", "status": 204},
                {"endpoint": "/orders", "occurred_at": Utc::now().to_rfc3339()},
                {"endpoint": "/baskets"},
            ]),
        )
        .await;
    app.shut_down().await;

    assert_eq!(one.status, StatusCode::ACCEPTED, "{one:?}");
    assert_eq!(one.body, json!({"accepted": 1}));
    assert_eq!(many.status, StatusCode::ACCEPTED, "{many:?}");
    assert_eq!(many.body, json!({"accepted": 3}));
    assert_eq!(reported(&app).await, 4);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM activity_hits WHERE source = 'reported' AND method = 'DELETE' AND status = 204 AND endpoint = '/orders/1'").await,
        1
    );
    // Each request is itself a hit, under its route template.
    assert_eq!(
        app.count("SELECT count(*) AS n FROM activity_hits WHERE source = 'observed' AND principal_kind = 'client' AND method = 'POST' AND status = 202 AND endpoint IN ('/v1/logs', '/api/logs') AND ip = '127.0.0.1' AND latency_us >= 0").await,
        2
    );
    assert_eq!(
        app.count("SELECT coalesce(sum(requests), 0)::int8 AS n FROM activity_hourly")
            .await,
        app.count("SELECT count(*) AS n FROM activity_hits").await,
        "every stored hit is counted once in the hourly counts"
    );
}

#[tokio::test]
async fn a_bad_hit_rejects_the_whole_request_naming_its_index() {
    let mut app = spawn_app().as_client().await;

    let bad_status = app
        .post(
            "/v1/logs",
            &json!([{"endpoint": "/a"}, {"endpoint": "/b", "status": 700}]),
        )
        .await;
    let wrong_type = app
        .post("/v1/logs", &json!([{"endpoint": "/a"}, {"endpoint": 5}]))
        .await;
    let unknown_field = app
        .post("/v1/logs", &json!({"endpoint": "/a", "colour": "red"}))
        .await;
    let future = app
        .post(
            "/v1/logs",
            &json!({"endpoint": "/a", "occurred_at": (Utc::now() + TimeDelta::hours(1)).to_rfc3339()}),
        )
        .await;
    let empty = app.post("/v1/logs", &json!([])).await;
    let too_many = app
        .post(
            "/v1/logs",
            &Value::Array(vec![json!({"endpoint": "/a"}); 1001]),
        )
        .await;
    let not_json = app
        .send_raw(
            reqwest::Method::POST,
            "/v1/logs",
            "application/json",
            b"[{".to_vec(),
        )
        .await;
    let scalar = app.post("/v1/logs", &json!(5)).await;
    app.shut_down().await;

    assert_eq!(bad_status.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_status.problem_code(), "validation_failed");
    assert_eq!(bad_status.body["errors"][0]["field"], "[1].status");
    assert_eq!(
        wrong_type.body["errors"][0]["field"], "[1].endpoint",
        "{wrong_type:?}"
    );
    assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        future.body["errors"][0]["field"], "occurred_at",
        "{future:?}"
    );
    for reply in [&empty, &too_many, &scalar] {
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
        assert_eq!(reply.body["errors"][0]["field"], "body");
    }
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_json.problem_code(), "invalid_json");
    assert_eq!(
        reported(&app).await,
        0,
        "nothing of a refused request is kept"
    );
}

#[tokio::test]
async fn only_api_clients_report_hits() {
    let staff = spawn_app().await;
    let anonymous = spawn_app().anonymous().await;

    let by_staff = staff.post("/v1/logs", &json!({"endpoint": "/a"})).await;
    let by_nobody = anonymous.post("/v1/logs", &json!({"endpoint": "/a"})).await;

    assert_eq!(by_staff.status, StatusCode::FORBIDDEN);
    assert_eq!(by_staff.problem_code(), "forbidden");
    assert_eq!(by_nobody.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn twenty_thousand_hits_from_twenty_senders_are_counted_exactly_once_across_a_stop_and_a_restart()
 {
    let mut app = spawn_app()
        .as_admin()
        .with_settings(|s| s.http.shutdown_timeout_secs = 60)
        .await;
    let (client_id, sender) = client_named(&app, "Busy robot", unlimited()).await;
    let sender = Arc::new(sender);

    let senders: Vec<_> = (0..20)
        .map(|s| {
            let (sender, address) = (sender.clone(), app.address.clone());
            tokio::spawn(async move {
                let mut accepted = 0;
                for r in 0..100 {
                    let hits: Vec<Value> = (0..10)
                        .map(|h| json!({"endpoint": format!("/sender/{s}/{r}/{h}")}))
                        .collect();
                    let reply = sender
                        .post(format!("{address}/v1/logs"))
                        .json(&hits)
                        .send()
                        .await
                        .expect("sent");
                    assert_eq!(reply.status(), StatusCode::ACCEPTED);
                    let body: Value = reply.json().await.expect("json");
                    accepted += body["accepted"].as_i64().expect("a count");
                }
                accepted
            })
        })
        .collect();
    let mut accepted = 0;
    for sender in senders {
        accepted += sender.await.expect("a sender finished");
    }
    let restarted = spawn_app().as_admin().sharing_database_of(&app);
    app.shut_down().await;
    let restarted = restarted.await;
    let top = restarted.get("/v1/usage/top?hours=2&limit=1").await;

    assert_eq!(accepted, 20_000);
    assert_eq!(reported(&restarted).await, 20_000);
    assert_eq!(
        restarted
            .count(
                "SELECT count(DISTINCT endpoint) AS n FROM activity_hits WHERE source = 'reported'"
            )
            .await,
        20_000,
        "no hit twice"
    );
    // 20 000 reported hits and the 2 000 requests that carried them.
    assert_eq!(top.status, StatusCode::OK, "{top:?}");
    assert_eq!(top.body["clients"][0]["client_id"], client_id.as_str());
    assert_eq!(top.body["clients"][0]["requests"], 22_000);
}

#[tokio::test]
async fn in_durable_mode_a_202_means_the_hits_are_already_stored() {
    let app = spawn_app()
        .as_client()
        .with_settings(|s| {
            s.activity.sync = true;
            s.activity.flush_interval_ms = 60_000;
        })
        .await;

    let sent = app
        .post("/v1/logs", &json!([{"endpoint": "/a"}, {"endpoint": "/b"}]))
        .await;

    assert_eq!(sent.status, StatusCode::ACCEPTED);
    assert_eq!(reported(&app).await, 2, "stored before the answer");
}

#[tokio::test]
async fn a_full_queue_answers_503_and_loses_nothing_it_accepted() {
    let mut app = spawn_app()
        .as_client()
        .with_settings(|s| {
            s.activity.queue_capacity = 1000;
            s.activity.batch_size = 100_000;
            s.activity.flush_interval_ms = 60_000;
        })
        .await;
    let batch = |n: usize| Value::Array(vec![json!({"endpoint": "/a"}); n]);

    let first = app.post("/v1/logs", &batch(900)).await;
    let overflow = app.post("/v1/logs", &batch(200)).await;
    app.shut_down().await;

    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(
        overflow.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{overflow:?}"
    );
    assert_eq!(overflow.problem_code(), "ingestion_backpressure");
    assert!(overflow.header("retry-after").is_some());
    assert_eq!(reported(&app).await, 900);
}

#[tokio::test]
async fn the_clients_rate_limit_applies_to_reporting() {
    let mut app = spawn_app().as_admin().await;
    let (_, sender) = client_named(
        &app,
        "Chatty robot",
        Some(json!({"requests_per_minute": 1, "burst": 3})),
    )
    .await;

    let mut statuses = Vec::new();
    for _ in 0..4 {
        let reply = post_with(&sender, &app, "/v1/logs", &json!({"endpoint": "/a"})).await;
        statuses.push(reply.status);
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(reply.problem_code(), "rate_limited");
        }
    }
    app.shut_down().await;

    assert_eq!(
        statuses,
        [
            StatusCode::ACCEPTED,
            StatusCode::ACCEPTED,
            StatusCode::ACCEPTED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(reported(&app).await, 3);
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 10, 20, 0)
        .single()
        .expect("an instant")
}

fn days_of(reply: &Reply, client: usize) -> Vec<i64> {
    reply.body["clients"][client]["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| d["requests"].as_i64().expect("a number"))
        .collect()
}

fn top_of(reply: &Reply) -> Vec<(String, i64)> {
    reply.body["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("a name").to_owned(),
                c["requests"].as_i64().expect("a number"),
            )
        })
        .collect()
}

#[tokio::test]
async fn usage_figures_zero_fill_days_count_whole_buckets_order_ties_by_id_and_scope_clients() {
    let app = spawn_app()
        .as_admin()
        .with_clock(Arc::new(ManualClock::at(now())))
        .await;
    let (a_id, a) = client_named(&app, "A", unlimited()).await;
    let (_, b) = client_named(&app, "B", unlimited()).await;
    let (_, _c) = client_named(&app, "C", unlimited()).await;
    let at = |t: DateTime<Utc>| t.to_rfc3339();
    let today_ten = now() - TimeDelta::minutes(15);
    let yesterday_eleven = now() - TimeDelta::hours(23) - TimeDelta::minutes(20);
    // A: two hits now and one two days ago; its report is a third hit today.
    let a_sent = post_with(
        &a,
        &app,
        "/v1/logs",
        &json!([
            {"endpoint": "/x", "occurred_at": at(today_ten)},
            {"endpoint": "/x", "occurred_at": at(today_ten)},
            {"endpoint": "/x", "occurred_at": at(now() - TimeDelta::days(2))},
        ]),
    )
    .await;
    // B: two hits in the first bucket of the last 24 hours and one just before it;
    // its report is a hit today.
    let b_sent = post_with(
        &b,
        &app,
        "/v1/logs",
        &json!([
            {"endpoint": "/y", "occurred_at": at(yesterday_eleven)},
            {"endpoint": "/y", "occurred_at": at(yesterday_eleven + TimeDelta::minutes(59))},
            {"endpoint": "/y", "occurred_at": at(yesterday_eleven - TimeDelta::seconds(1))},
        ]),
    )
    .await;
    assert_eq!(
        (a_sent.status, b_sent.status),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    until_counted(
        &app,
        "SELECT coalesce(sum(requests), 0)::int8 AS n FROM activity_hourly WHERE principal_kind = 'client'",
        8,
    )
    .await;

    let daily = app.get("/v1/usage/daily?days=3").await;
    let top = app.get("/v1/usage/top").await;
    let top_one = app.get("/api/usage/top?limit=1").await;
    let top_wider = app.get("/v1/usage/top?hours=25").await;
    let hourly = app
        .get(&format!(
            "/v1/usage/hourly?from={}&to={}&principal_id={a_id}",
            "2026-03-10T10:00:00Z", "2026-03-10T10:59:59Z"
        ))
        .await;
    let unknown = app
        .get("/v1/usage/daily?client_id=0190aaaa-0000-7000-8000-000000000000")
        .await;
    let bad_days = app.get("/v1/usage/daily?days=91").await;
    let bad_hours = app.get("/v1/usage/top?hours=0&limit=101").await;
    let own = get_with(&a, &app, "/api/usage/daily").await;
    let others = get_with(
        &a,
        &app,
        &format!(
            "/v1/usage/daily?client_id={}",
            daily.body["clients"][1]["client_id"]
                .as_str()
                .expect("an id")
        ),
    )
    .await;
    let top_by_client = get_with(&a, &app, "/v1/usage/top").await;

    assert_eq!(daily.status, StatusCode::OK, "{daily:?}");
    assert_eq!(daily.body["clients"].as_array().map(Vec::len), Some(3));
    assert_eq!(daily.body["clients"][0]["name"], "A");
    assert_eq!(daily.body["clients"][0]["days"][2]["date"], "2026-03-10");
    assert_eq!(daily.body["clients"][0]["days"][0]["date"], "2026-03-08");
    assert_eq!(days_of(&daily, 0), [1, 0, 3]);
    assert_eq!(days_of(&daily, 1), [0, 3, 1]);
    assert_eq!(days_of(&daily, 2), [0, 0, 0]);
    assert_eq!(top.status, StatusCode::OK);
    assert_eq!(top.body["window_start"], "2026-03-09T11:00:00Z");
    assert_eq!(
        top_of(&top),
        [("A".to_owned(), 3), ("B".to_owned(), 3)],
        "a tie, by id"
    );
    assert_eq!(top_of(&top_one), [("A".to_owned(), 3)]);
    assert_eq!(
        top_of(&top_wider),
        [("B".to_owned(), 4), ("A".to_owned(), 3)]
    );
    assert_eq!(hourly.status, StatusCode::OK, "{hourly:?}");
    assert_eq!(
        hourly.body["items"],
        json!([{"principal_id": a_id, "principal_kind": "client", "hour": "2026-03-10T10:00:00Z", "requests": 3}])
    );
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.problem_code(), "client_not_found");
    assert_eq!(bad_days.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bad_hours.body["errors"].as_array().map(Vec::len),
        Some(2),
        "{bad_hours:?}"
    );
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.body["clients"].as_array().map(Vec::len), Some(1));
    assert_eq!(own.body["clients"][0]["client_id"], a_id.as_str());
    assert_eq!(
        own.body["clients"][0]["days"].as_array().map(Vec::len),
        Some(7)
    );
    assert_eq!(others.status, StatusCode::FORBIDDEN);
    assert_eq!(top_by_client.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn daily_figures_start_at_the_first_days_midnight_and_hourly_figures_are_for_administrators()
{
    let app = spawn_app()
        .as_admin()
        .with_clock(Arc::new(ManualClock::at(now())))
        .await;
    let (a_id, a) = client_named(&app, "A", unlimited()).await;
    // The first of three days begins at 2026-03-08T00:00:00Z; its report is a hit
    // at 10:20 today.
    let sent = post_with(
        &a,
        &app,
        "/v1/logs",
        &json!([
            {"endpoint": "/x", "occurred_at": "2026-03-07T23:59:59Z"},
            {"endpoint": "/x", "occurred_at": "2026-03-08T00:00:00Z"},
            {"endpoint": "/x", "occurred_at": "2026-03-09T23:59:59Z"},
            {"endpoint": "/x", "occurred_at": "2026-03-10T09:59:59Z"},
        ]),
    )
    .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{sent:?}");
    until_counted(
        &app,
        "SELECT coalesce(sum(requests), 0)::int8 AS n FROM activity_hourly WHERE principal_kind = 'client'",
        5,
    )
    .await;

    let three_days = app.get("/v1/usage/daily?days=3").await;
    let four_days = app.get("/api/usage/daily?days=4").await;
    let two_hours = app
        .get(&format!(
            "/v1/usage/hourly?from=2026-03-10T09:30:00Z&to=2026-03-10T10:00:00Z&principal_id={a_id}"
        ))
        .await;
    let reversed = app
        .get("/v1/usage/hourly?from=2026-03-10T10:00:00Z&to=2026-03-10T09:00:00Z")
        .await;
    let by_client = get_with(&a, &app, "/v1/usage/hourly").await;
    let staff = spawn_app().await;
    let hourly_by_staff = staff.get("/v1/usage/hourly").await;
    let top_by_staff = staff.get("/v1/usage/top").await;

    assert_eq!(three_days.status, StatusCode::OK, "{three_days:?}");
    assert_eq!(days_of(&three_days, 0), [1, 1, 2]);
    assert_eq!(days_of(&four_days, 0), [1, 1, 1, 2]);
    assert_eq!(
        four_days.body["clients"][0]["days"][0]["date"],
        "2026-03-07"
    );
    assert_eq!(two_hours.status, StatusCode::OK, "{two_hours:?}");
    assert_eq!(
        two_hours.body["items"],
        json!([
            {"principal_id": a_id, "principal_kind": "client", "hour": "2026-03-10T09:00:00Z", "requests": 1},
            {"principal_id": a_id, "principal_kind": "client", "hour": "2026-03-10T10:00:00Z", "requests": 1},
        ])
    );
    assert_eq!(reversed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reversed.problem_code(), "validation_failed");
    assert_eq!(by_client.status, StatusCode::FORBIDDEN);
    assert_eq!(hourly_by_staff.status, StatusCode::FORBIDDEN);
    assert_eq!(top_by_staff.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn usage_answers_are_cacheable_and_revalidate_to_304() {
    let app = spawn_app().as_admin().await;

    let first = app.get("/v1/usage/top").await;
    let tag = first.header("etag").expect("an ETag").to_owned();
    let revalidated = Reply::read(
        app.client
            .get(format!("{}/v1/usage/top", app.address))
            .header("if-none-match", &tag)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    let other_tag = Reply::read(
        app.client
            .get(format!("{}/v1/usage/top", app.address))
            .header("if-none-match", "\"something-else\"")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    let staff = spawn_app().await;
    let by_staff = staff.get("/v1/usage/daily").await;

    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("cache-control"), Some("private, max-age=5"));
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert_eq!(revalidated.header("etag"), Some(tag.as_str()));
    assert_eq!(revalidated.body, Value::Null);
    assert_eq!(other_tag.status, StatusCode::OK);
    assert_eq!(by_staff.status, StatusCode::FORBIDDEN);
}

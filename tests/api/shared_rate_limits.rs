//! Rate limits shared through Redis: instances given the same `ORDO_REDIS_URL`
//! grant a caller one allowance between them, and an unreachable Redis refuses
//! logins while every other route is served.

use std::sync::Arc;

use futures::future::join_all;
use ordo_api_tests::{
    ManualClock, RedisServer, Reply, STAFF_EMAIL, TEST_PASSWORD, api_key_client, spawn_app,
};
use reqwest::StatusCode;
use serde_json::json;

use crate::rate_limits::log_in;

#[tokio::test]
async fn two_instances_on_one_redis_grant_a_client_its_burst_once_between_them() {
    const BURST: usize = 20;
    let Some(redis) = RedisServer::start_or_skip("two_instances_on_one_redis") else {
        return;
    };
    // One frozen instant for both instances. A decision's remaining figure comes
    // from its own instant, and each HTTP worker sends its decisions over its own
    // connection, so two taken microseconds apart can reach Redis in the other
    // order: the later-taken decided first leaves the earlier one a figure one
    // lower (13, 13 instead of 13, 14). The allowance is exact either way; this
    // test counts units, so it takes time out.
    let clock = ManualClock::at(chrono::Utc::now());
    let first = spawn_app()
        .as_admin()
        .with_clock(Arc::new(clock.clone()))
        .with_redis(&redis)
        .await;
    let second = spawn_app()
        .sharing_database_of(&first)
        .anonymous()
        .with_clock(Arc::new(clock))
        .with_redis(&redis)
        .await;
    let registered = first
        .register_client(&json!({
            "name": "Shared",
            "email": "shared@ordo.test",
            // One a minute: nothing refills while the test runs.
            "rate_limit": {"requests_per_minute": 1, "burst": BURST},
        }))
        .await;
    assert_eq!(registered.status, StatusCode::CREATED, "{registered:?}");
    let caller = api_key_client(registered.body["api_key"].as_str().expect("a key"));

    let replies = join_all((0..=BURST).map(|i| {
        let address = if i % 2 == 0 {
            &first.address
        } else {
            &second.address
        };
        let request = caller.get(format!("{address}/v1/auth/me"));
        async move { Reply::read(request.send().await.expect("the request is sent")).await }
    }))
    .await;

    let statuses: Vec<StatusCode> = replies.iter().map(|r| r.status).collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((ok, limited), (BURST, 1), "{statuses:?}");
    let mut remaining: Vec<u64> = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .map(|r| {
            r.header("ratelimit-remaining")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("RateLimit-Remaining on {r:?}"))
        })
        .collect();
    remaining.sort_unstable();
    let each_once: Vec<u64> = (0..u64::try_from(BURST).unwrap()).collect();
    assert_eq!(
        remaining, each_once,
        "each success took its own unit, on either instance"
    );
}

#[tokio::test]
async fn with_redis_down_logins_are_refused_other_routes_served_and_both_recover() {
    let Some(mut redis) = RedisServer::start_or_skip("with_redis_down") else {
        return;
    };
    let app = spawn_app().with_redis(&redis).await;
    assert_eq!(app.get("/v1/auth/me").await.status, StatusCode::OK);

    redis.stop();

    let login = log_in(&app, STAFF_EMAIL, TEST_PASSWORD).await;
    assert_eq!(login.status, StatusCode::SERVICE_UNAVAILABLE, "{login:?}");
    assert_eq!(login.problem_code(), "rate_limits_unavailable");
    assert_eq!(login.header("retry-after"), Some("1"));
    let other = app.get("/v1/auth/me").await;
    assert_eq!(other.status, StatusCode::OK, "{other:?}");
    assert_eq!(other.body["email"], STAFF_EMAIL);
    assert!(
        other.header("ratelimit-limit").is_none(),
        "served unchecked"
    );

    redis.restart().expect("Redis starts again");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let login = loop {
        let login = log_in(&app, STAFF_EMAIL, TEST_PASSWORD).await;
        if login.status != StatusCode::SERVICE_UNAVAILABLE || std::time::Instant::now() > deadline {
            break login;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(login.status, StatusCode::OK, "{login:?}");
    assert!(
        app.get("/v1/auth/me")
            .await
            .header("ratelimit-limit")
            .is_some()
    );
}

/// The clients connected to the Redis at `url`, besides the one asking.
async fn redis_clients(url: &str) -> usize {
    let mut redis = redis::Client::open(url)
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut redis)
        .await
        .expect("CLIENT LIST");
    list.lines().count() - 1
}

#[tokio::test]
async fn each_http_worker_decides_over_a_redis_connection_of_its_own() {
    let Some(redis) = RedisServer::start_or_skip("each_http_worker") else {
        return;
    };
    // The harness runs two HTTP workers: with the shared connection, three.
    let app = spawn_app().with_redis(&redis).await;
    let mut clients = 0;
    for _ in 0..500 {
        clients = redis_clients(redis.url()).await;
        if clients == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(clients, 3, "the shared connection and one per worker");

    let reply = app.get("/v1/auth/me").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.header("ratelimit-remaining").is_some(),
        "the request was checked against its limit in Redis"
    );
}

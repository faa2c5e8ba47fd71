//! The usage cache shared through Redis: instances given the same
//! `ORDO_REDIS_URL` give one answer (and one `ETag`) to a usage question within
//! its TTL, and an unreachable Redis costs a recomputed answer, never an error.

use ordo_api_tests::{RedisServer, Reply, TestAppBuilder, spawn_app};
use reqwest::StatusCode;

const TTL_MS: u64 = 60_000;

/// An administrator's app whose usage answers live in `redis`, long enough that
/// none expires while a test runs.
fn admin_app_on(redis: &RedisServer) -> TestAppBuilder {
    spawn_app()
        .as_admin()
        .with_redis(redis)
        .with_settings(|s| s.activity.usage_cache_ttl_ms = TTL_MS)
}

fn total_requests(hourly: &Reply) -> u64 {
    hourly.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["requests"].as_u64().expect("requests"))
        .sum()
}

#[tokio::test]
async fn instances_on_one_redis_give_one_usage_answer_with_one_etag() {
    let Some(redis) = RedisServer::start_or_skip("one usage answer between instances") else {
        return;
    };
    let first = admin_app_on(&redis).await;
    let second = admin_app_on(&redis).sharing_database_of(&first).await;
    let answered_first = first.get("/v1/usage/hourly").await;
    assert_eq!(answered_first.status, StatusCode::OK, "{answered_first:?}");
    let cached_total = total_requests(&answered_first);

    // Every request of the administrator is a hit: the figures move on …
    for _ in 0..5 {
        assert_eq!(second.get("/v1/auth/me").await.status, StatusCode::OK);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while u64::try_from(
        second
            .count("SELECT coalesce(sum(requests), 0)::bigint AS n FROM activity_hourly")
            .await,
    )
    .expect("a count")
        <= cached_total + 5
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the hits were written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // … but the other instance answers the question from the shared cache: the
    // same figures, the same tag, and a revalidation with the first's tag is 304.
    let answered_second = second.get("/v1/usage/hourly").await;
    assert_eq!(
        answered_second.status,
        StatusCode::OK,
        "{answered_second:?}"
    );
    assert_eq!(answered_second.body, answered_first.body);
    let tag = answered_first.header("etag").expect("an ETag");
    assert_eq!(answered_second.header("etag"), Some(tag));
    let revalidated = second
        .client
        .get(format!("{}/v1/usage/hourly", second.address))
        .header("if-none-match", tag)
        .send()
        .await
        .expect("sent");
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn with_redis_down_usage_is_computed_and_the_outage_counted() {
    let Some(mut redis) = RedisServer::start_or_skip("usage with Redis down") else {
        return;
    };
    let app = admin_app_on(&redis).await;
    assert_eq!(app.get("/v1/usage/hourly").await.status, StatusCode::OK);

    redis.stop();

    for path in ["/v1/usage/hourly", "/v1/usage/top", "/v1/usage/daily"] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {reply:?}");
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("usage_cache_unavailable_total{operation=\"get\"}"),
        "{metrics}"
    );
}

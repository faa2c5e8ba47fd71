//! What one rate-limit decision costs in each store: the in-memory one every
//! instance has, and the Redis one several instances share (one script round trip
//! to a `redis-server` on this machine). Measured at the port, one decision at a
//! time, so the figure is the latency a request pays, not a throughput.

use std::time::{Duration, Instant};

use chrono::Utc;
use hdrhistogram::Histogram;
use ordo_domain::ratelimit::{LimitCheck, RateKey, RateLimitStore, RatePolicy};
use ordo_redis::testing::RedisServer;
use ordo_redis::{Redis, RedisConfig, RedisRateLimits};
use ordo_server::rate_limits::InMemoryRateLimits;
use serde::Serialize;

/// Distinct callers the decisions are spread over, as a server's traffic is.
const CALLERS: u128 = 500;

/// The p50 and p99 of one decision in one store, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct RoundTrip {
    /// `in-memory` or `redis`.
    pub store: &'static str,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Decisions measured.
    pub decisions: u64,
}

/// Measures `decisions` decisions in memory and in Redis: at `redis_url`, or in a
/// throw-away `redis-server` when none is given (the Redis figure is left out, with
/// the reason printed, when the machine has none).
///
/// # Errors
/// When a store fails.
pub async fn measure(redis_url: Option<&str>, decisions: u64) -> anyhow::Result<Vec<RoundTrip>> {
    let mut results =
        vec![time("in-memory", &InMemoryRateLimits::new(1_000_000), decisions).await?];
    // Kept until the measurement is over: dropping it stops the server.
    let throw_away;
    let url = match redis_url {
        Some(url) => url,
        None => {
            let Some(server) = RedisServer::start_or_skip("the Redis rate-limit round trip") else {
                return Ok(results);
            };
            throw_away = server;
            throw_away.url()
        }
    };
    let redis = Redis::connect(&RedisConfig {
        url: url.to_owned(),
        timeout: Duration::from_secs(1),
    })
    .await?;
    results.push(time("redis", &RedisRateLimits::new(redis), decisions).await?);
    Ok(results)
}

async fn time(
    store: &'static str,
    limits: &dyn RateLimitStore,
    decisions: u64,
) -> anyhow::Result<RoundTrip> {
    let policy = RatePolicy::per_minute(600_000, 100_000)?;
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    // The first decisions load the script and warm the connection; not measured.
    for n in 0..decisions + 100 {
        let check = LimitCheck {
            key: RateKey::Client(uuid::Uuid::from_u128(u128::from(n) % CALLERS)),
            policy,
        };
        let began = Instant::now();
        let outcome = limits
            .check(std::slice::from_ref(&check), Utc::now())
            .await?;
        let took = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
        anyhow::ensure!(outcome.is_allowed(), "{store}: a decision was refused");
        if n >= 100 {
            histogram.record(took.max(1))?;
        }
    }
    Ok(RoundTrip {
        store,
        p50_us: histogram.value_at_quantile(0.5),
        p99_us: histogram.value_at_quantile(0.99),
        decisions,
    })
}

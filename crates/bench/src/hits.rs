//! Raw hits for the activity scenarios: seeded in the database in one statement
//! (`generate_series`, with their hourly counts), and counted after a run — the
//! `log-batch` figure is hits persisted, not hits answered 202.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_postgres::NoTls;

/// The endpoint of the hits `log-batch` sends, to count them apart.
pub const BATCH_ENDPOINT: &str = "/bench/batch";

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, driver) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting to count or seed hits")?;
    tokio::spawn(driver);
    Ok(client)
}

/// Inserts `count` raw hits of the registered clients spread over the last seven
/// days, and adds them to the hourly counts, as the writer would have.
///
/// # Errors
/// When the database fails.
pub async fn seed(url: &str, count: u64) -> anyhow::Result<()> {
    let client = connect(url).await?;
    let count = i64::try_from(count).context("too many hits")?;
    client
        .batch_execute(
            "SELECT activity_hits_ensure_partitions((now() AT TIME ZONE 'UTC')::date - 8, (now() AT TIME ZONE 'UTC')::date + 1)",
        )
        .await?;
    let batch = uuid::Uuid::now_v7();
    client
        .execute(
            "INSERT INTO activity_hits \
                 (occurred_at, principal_kind, principal_id, method, endpoint, status, latency_us, source, batch_id) \
             SELECT now() - random() * interval '7 days', 'client', c.ids[1 + g % c.n], 'GET', '/bench/seeded', 200, 1000, 'reported', $2 \
             FROM generate_series(1, $1::int8) g, \
                  (SELECT array_agg(id) AS ids, count(*)::int8 AS n FROM api_clients) c",
            &[&count, &batch],
        )
        .await
        .context("seeding raw hits")?;
    client
        .execute(
            "INSERT INTO activity_hourly (principal_kind, principal_id, hour, requests) \
             SELECT principal_kind, principal_id, \
                    date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*) \
             FROM activity_hits WHERE batch_id = $1 GROUP BY 1, 2, 3 \
             ON CONFLICT (principal_kind, principal_id, hour) \
             DO UPDATE SET requests = activity_hourly.requests + EXCLUDED.requests",
            &[&batch],
        )
        .await
        .context("counting the seeded hits per hour")?;
    client
        .execute("INSERT INTO activity_batches (id) VALUES ($1)", &[&batch])
        .await?;
    Ok(())
}

/// The `log-batch` hits stored so far.
///
/// # Errors
/// When the database fails.
pub async fn persisted(url: &str) -> anyhow::Result<i64> {
    let client = connect(url).await?;
    let row = client
        .query_one(
            "SELECT count(*) FROM activity_hits WHERE source = 'reported' AND endpoint = $1",
            &[&BATCH_ENDPOINT],
        )
        .await?;
    Ok(row.get(0))
}

/// Waits until the `log-batch` hits stop growing (the writer has written what it
/// accepted) and returns their number and when the last of them was seen stored.
///
/// # Errors
/// When the database fails.
pub async fn settled(url: &str) -> anyhow::Result<(i64, Instant)> {
    let mut last = persisted(url).await?;
    let mut at = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = persisted(url).await?;
        if now == last {
            return Ok((now, at));
        }
        last = now;
        at = Instant::now();
    }
}

//! The hits `log-batch` sent, counted in the database after a run: its figure is
//! hits persisted, not hits answered 202.

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

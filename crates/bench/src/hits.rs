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

/// Every hit stored so far, whatever its source.
async fn stored(client: &tokio_postgres::Client) -> anyhow::Result<i64> {
    let row = client
        .query_one("SELECT count(*) FROM activity_hits", &[])
        .await?;
    Ok(row.get(0))
}

/// Brings the database to rest before a measured run: waits until the hits the
/// server accepted are written (its activity writer flushes them after the load
/// stops), then vacuums and analyses. Without it a run pays for the run before
/// it — the writer's last batches, autovacuum of the rows just inserted, plans
/// made before the seeded tables were analysed — at random, which swung a
/// reference by a third between two runs of one binary.
///
/// # Errors
/// When the database fails.
pub async fn settle(url: &str) -> anyhow::Result<()> {
    // Quiet for two polls in a row (the writer flushes every 100 ms or so), and
    // never longer than the deadline: against a server others load (`--url`) the
    // hits may never stop.
    const POLL: Duration = Duration::from_millis(250);
    const DEADLINE: Duration = Duration::from_secs(30);
    let client = connect(url).await?;
    let started = Instant::now();
    let mut last = stored(&client).await?;
    let mut quiet = 0;
    while quiet < 2 {
        if started.elapsed() > DEADLINE {
            eprintln!("hits still arriving after {DEADLINE:?}; measuring anyway");
            break;
        }
        tokio::time::sleep(POLL).await;
        let now = stored(&client).await?;
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
    }
    client
        .batch_execute("VACUUM (ANALYZE)")
        .await
        .context("vacuuming between runs")?;
    Ok(())
}

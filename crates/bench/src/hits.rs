//! The hits `log-batch` sent, counted in the database after a run: its figure is
//! hits persisted, not hits answered 202.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

/// The endpoint of the hits `log-batch` sends, to count them apart.
pub const BATCH_ENDPOINT: &str = "/bench/batch";

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, driver) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting to count or seed hits")?;
    tokio::spawn(driver);
    Ok(client)
}

/// Counts the `log-batch` hits stored so far.
const BATCH_HITS: &str =
    "SELECT count(*) FROM activity_hits WHERE source = 'reported' AND endpoint = $1";

/// Counts every hit stored so far, whatever its source.
const ALL_HITS: &str = "SELECT count(*) FROM activity_hits";

/// How often a count is read again while waiting for it to stop growing.
const POLL: Duration = Duration::from_millis(250);

/// A count statement with its parameters.
type Count<'a> = (&'a str, &'a [&'a (dyn ToSql + Sync)]);

async fn count(client: &tokio_postgres::Client, (sql, params): Count<'_>) -> anyhow::Result<i64> {
    Ok(client.query_one(sql, params).await?.get(0))
}

/// Reads the count every [`POLL`] until it has stayed the same for `quiet`
/// reads in a row, or `deadline` has passed: the last count and when it last
/// changed.
async fn until_still(
    client: &tokio_postgres::Client,
    counted: Count<'_>,
    quiet: u32,
    deadline: Option<Duration>,
) -> anyhow::Result<(i64, Instant)> {
    let started = Instant::now();
    let mut last = count(client, counted).await?;
    let mut changed_at = started;
    let mut unchanged = 0;
    while unchanged < quiet {
        if let Some(deadline) = deadline
            && started.elapsed() > deadline
        {
            eprintln!("hits still arriving after {deadline:?}; measuring anyway");
            break;
        }
        tokio::time::sleep(POLL).await;
        let now = count(client, counted).await?;
        if now == last {
            unchanged += 1;
        } else {
            unchanged = 0;
            last = now;
            changed_at = Instant::now();
        }
    }
    Ok((last, changed_at))
}

/// The `log-batch` hits stored so far.
///
/// # Errors
/// When the database fails.
pub async fn persisted(url: &str) -> anyhow::Result<i64> {
    count(&connect(url).await?, (BATCH_HITS, &[&BATCH_ENDPOINT])).await
}

/// Waits until the `log-batch` hits stop growing (the writer has written what it
/// accepted) and returns their number and when the last of them was seen stored.
///
/// # Errors
/// When the database fails.
pub async fn settled(url: &str) -> anyhow::Result<(i64, Instant)> {
    until_still(
        &connect(url).await?,
        (BATCH_HITS, &[&BATCH_ENDPOINT]),
        1,
        None,
    )
    .await
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
    // Quiet for two reads in a row (the writer flushes every 100 ms or so), and
    // never longer than the deadline: against a server others load (`--url`) the
    // hits may never stop.
    let client = connect(url).await?;
    until_still(&client, (ALL_HITS, &[]), 2, Some(Duration::from_secs(30))).await?;
    client
        .batch_execute("VACUUM (ANALYZE)")
        .await
        .context("vacuuming between runs")?;
    Ok(())
}

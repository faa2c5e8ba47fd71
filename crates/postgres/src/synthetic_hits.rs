//! Synthetic activity, generated inside PostgreSQL: ten million raw hits with
//! their hourly counts in about a minute, where sending them through
//! `POST /v1/logs` would take far longer than the benchmark that needs them. For
//! the benchmark of the usage figures and for tests; never for a database that
//! serves anyone.
//!
//! The hourly counts are drawn first and the raw hits made from them, so the two
//! agree exactly, cell by cell, as if the activity writer had written them.

use anyhow::Context;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::pool::PgPool;

/// How much activity to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticHits {
    /// Raw hits, all reported by API clients.
    pub hits: u64,
    /// The hours up to now they fall in: the current, partial hour and the
    /// `hours − 1` before it.
    pub hours: u32,
}

/// Synthetic API clients: what the hits are spread over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticClients {
    /// Clients to add.
    pub count: u32,
}

/// What [`generate_hits`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneratedHits {
    /// Raw hits inserted.
    pub hits: u64,
    /// (client, hour) cells of the hourly counts that received hits.
    pub hourly_cells: u64,
}

/// Adds `clients.count` API clients with made-up keys (no request can use them),
/// stored with plaintext contacts, which Ordo seals on its next start.
///
/// # Errors
/// When a statement fails.
pub async fn create_clients(pool: &PgPool, clients: SyntheticClients) -> anyhow::Result<()> {
    let mut conn = pool
        .get()
        .await
        .context("a connection for synthetic clients")?;
    // Integers only are formatted into the statement.
    conn.batch_execute(&format!(
        "INSERT INTO api_clients (id, name, email_plaintext, rate_limit_per_minute, rate_limit_burst, \
                                  key_digest, key_prefix, key_issued_at, created_at, updated_at) \
         SELECT id, 'Synthetic client ' || n, 'synthetic-client-' || n || '@example.com', 600, 100, \
                'synthetic-' || id, 'synthetic', now(), now(), now() \
         FROM (SELECT n, gen_random_uuid() AS id FROM generate_series(1, {count}) n) c",
        count = clients.count
    ))
    .await
    .context("creating synthetic API clients")?;
    Ok(())
}

/// Adds `scale.hits` raw hits of the API clients there are, with their hourly
/// counts, in one transaction; then vacuums and analyses both tables, so that
/// what follows sees them settled rather than an autovacuum catching up.
///
/// The hits are spread over the clients by a power law (a few clients make most
/// of them, as in real traffic) and over the hours by a day-and-night curve; the
/// current hour gets its share only for the part of it that has passed, and no hit
/// lies in the future. The hits of one hour are inserted together, so the table is
/// in time order, as the writer leaves it.
///
/// # Errors
/// When there are no API clients, `scale.hours` is zero, or a statement fails.
pub async fn generate_hits(pool: &PgPool, scale: SyntheticHits) -> anyhow::Result<GeneratedHits> {
    anyhow::ensure!(scale.hours > 0, "synthetic hits need at least one hour");
    let mut conn = pool
        .get()
        .await
        .context("a connection for synthetic hits")?;
    let conn: &mut AsyncPgConnection = &mut conn;
    let SyntheticHits { hits, hours } = scale;
    // Each cell gets the difference of two floored points of the cumulative share:
    // the cells then add up to exactly `hits`, whatever the rounding (the last
    // share is `total / total`, exactly 1, before it is multiplied).
    let generate = format!(
        "
SET LOCAL statement_timeout = 0;
SELECT setseed(0.20261125);

CREATE TEMP TABLE syn_hit_cells ON COMMIT DROP AS
WITH clients AS (
    SELECT id, row_number() OVER (ORDER BY md5(id::text)) AS rank FROM api_clients
), hours AS (
    SELECT h, date_trunc('hour', now(), 'UTC') - interval '1 hour' * h AS hour
    FROM generate_series(0, {hours} - 1) h
), weighted AS (
    SELECT c.id, hr.hour,
           power(c.rank, -0.9)
           * (1.2 + sin(2 * pi() * (extract(hour FROM hr.hour AT TIME ZONE 'UTC') - 8) / 24))
           * CASE WHEN hr.h = 0 THEN extract(epoch FROM now() - hr.hour) / 3600 ELSE 1 END AS weight
    FROM clients c CROSS JOIN hours hr
), cumulative AS (
    SELECT id, hour, sum(weight) OVER (ORDER BY hour, id) AS upto FROM weighted
), shared AS (
    SELECT id, hour, upto, coalesce(lag(upto) OVER (ORDER BY hour, id), 0) AS before,
           max(upto) OVER () AS total
    FROM cumulative
)
SELECT id AS principal_id, hour,
       (floor({hits} * (upto / total)) - floor({hits} * (before / total)))::int8 AS requests
FROM shared
WHERE total > 0
ORDER BY hour, id;

DELETE FROM syn_hit_cells WHERE requests = 0;

SELECT activity_hits_ensure_partitions(
    ((date_trunc('hour', now(), 'UTC') - interval '1 hour' * ({hours} - 1)) AT TIME ZONE 'UTC')::date,
    (now() AT TIME ZONE 'UTC')::date);

CREATE TEMP TABLE syn_hit_batch ON COMMIT DROP AS SELECT gen_random_uuid() AS id;
INSERT INTO activity_batches (id) SELECT id FROM syn_hit_batch;

INSERT INTO activity_hourly (principal_kind, principal_id, hour, requests)
SELECT 'client', principal_id, hour, requests FROM syn_hit_cells
ON CONFLICT (principal_kind, principal_id, hour)
DO UPDATE SET requests = activity_hourly.requests + EXCLUDED.requests;

INSERT INTO activity_hits
    (occurred_at, principal_kind, principal_id, method, endpoint, status, latency_us, source, batch_id)
SELECT c.hour + random() * least(interval '1 hour', now() - c.hour),
       'client', c.principal_id,
       (ARRAY['GET','GET','POST','GET','PUT','GET','DELETE','GET'])[1 + g % 8],
       (ARRAY['/orders','/orders/{{id}}','/orders','/products','/basket/{{id}}','/customers/{{id}}',
              '/basket/{{id}}','/reports/stock'])[1 + g % 8],
       CASE WHEN g % 97 = 0 THEN 500 WHEN g % 23 = 0 THEN 404 WHEN g % 8 = 2 THEN 201 ELSE 200 END,
       200 + (g * 7919) % 150000,
       'reported', b.id
FROM syn_hit_cells c
CROSS JOIN syn_hit_batch b
CROSS JOIN LATERAL generate_series(1, c.requests) g;
"
    );
    let generated = conn
        .transaction(async |conn| -> diesel::QueryResult<GeneratedHits> {
            conn.batch_execute(&generate).await?;
            let written: Written = diesel::sql_query(
                "SELECT coalesce(sum(requests), 0)::int8 AS hits, count(*) AS cells FROM syn_hit_cells",
            )
            .get_result(conn)
            .await?;
            Ok(GeneratedHits {
                hits: u64::try_from(written.hits).unwrap_or(0),
                hourly_cells: u64::try_from(written.cells).unwrap_or(0),
            })
        })
        .await
        .context("generating synthetic hits")?;
    anyhow::ensure!(
        generated.hits == hits,
        "generated {} hits, not {hits}: are there API clients to spread them over?",
        generated.hits
    );
    // Ten million rows take longer than the pool allows one statement.
    conn.batch_execute("SET statement_timeout = 0")
        .await
        .context("lifting the statement timeout")?;
    conn.batch_execute("VACUUM ANALYZE activity_hourly, activity_hits")
        .await
        .context("analysing the synthetic hits")?;
    conn.batch_execute("RESET statement_timeout")
        .await
        .context("restoring the statement timeout")?;
    Ok(generated)
}

#[derive(diesel::QueryableByName)]
struct Written {
    #[diesel(sql_type = BigInt)]
    hits: i64,
    #[diesel(sql_type = BigInt)]
    cells: i64,
}

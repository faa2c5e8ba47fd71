//! Writing a batch of hits with `COPY … FROM STDIN (FORMAT binary)` on a
//! connection of the writer's own.
//!
//! diesel-async has no `COPY`, and a multi-row `INSERT … SELECT FROM unnest(…)`
//! costs PostgreSQL about half again as much per row (it parses nine arrays, casts
//! every address and plans a projection) and Ordo a second copy of every column.
//! `COPY` in binary streams each hit's fields straight from the [`Hit`] into the
//! wire buffer, PostgreSQL routes the rows to their day's partition as it reads
//! them, and encoding overlaps with PostgreSQL's inserting. The transaction is the
//! same as the pooled path's: claim the batch id, the rows, the hourly upsert.
//!
//! The connection is opened on first use and dropped after any failure, so the
//! next attempt (the writer retries a failed batch) opens a fresh one.

use std::pin::pin;

use anyhow::Context;
use ordo_domain::activity::{Hit, HitBatch};
use ordo_domain::{Dependency, Unavailable};
use tokio::sync::Mutex;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Statement};
use uuid::Uuid;

use crate::activity::{HourlyColumns, UPSERT_HOURLY};
use crate::errors::RETRY_AFTER;

/// The writer connection's `application_name`.
const APPLICATION_NAME: &str = "ordo-activity-writer";

const CLAIM_BATCH: &str =
    "INSERT INTO activity_batches (id) VALUES ($1) ON CONFLICT (id) DO NOTHING RETURNING 1";

const COPY_HITS: &str = "\
COPY activity_hits
    (occurred_at, principal_kind, principal_id, method, endpoint, status, latency_us, ip, source, batch_id)
FROM STDIN (FORMAT binary)";

/// The column types of [`COPY_HITS`], in order.
const HIT_TYPES: [Type; 10] = [
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::INT2,
    Type::INT4,
    Type::INET,
    Type::TEXT,
    Type::UUID,
];

/// One open connection and its prepared statements.
struct Session {
    client: Client,
    claim: Statement,
    upsert: Statement,
}

/// The writer's own connection, opened when first needed.
pub(crate) struct CopyConnection {
    url: String,
    session: Mutex<Option<Session>>,
}

impl CopyConnection {
    /// A connection to `url` (with its session options), opened lazily.
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            session: Mutex::new(None),
        }
    }

    async fn open(&self) -> anyhow::Result<Session> {
        let mut config: Config = self
            .url
            .parse()
            .context("reading the database URL for the activity writer")?;
        // Named, so that an operator sees it in `pg_stat_activity`.
        config.application_name(APPLICATION_NAME);
        let (client, connection) = config.connect(NoTls).await.map_err(|e| {
            anyhow::Error::new(e).context(Unavailable::new(
                Dependency::Database,
                RETRY_AFTER,
                "the activity writer could not connect to PostgreSQL",
            ))
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "the activity writer's connection ended");
            }
        });
        let claim = client
            .prepare(CLAIM_BATCH)
            .await
            .context("preparing the batch claim")?;
        let upsert = client
            .prepare(UPSERT_HOURLY)
            .await
            .context("preparing the hourly upsert")?;
        Ok(Session {
            client,
            claim,
            upsert,
        })
    }

    /// Writes `batch` in one transaction; a batch whose id was written before is
    /// not written again.
    pub(crate) async fn write(&self, batch: &HitBatch) -> anyhow::Result<()> {
        let mut session = self.session.lock().await;
        let open = match session.take() {
            Some(open) => open,
            None => self.open().await?,
        };
        let mut open = open;
        let written = write_batch(&mut open, batch).await;
        // A failed session may be mid-transaction or cut off: the next attempt
        // starts on a new connection rather than finding out which.
        if written.is_ok() {
            *session = Some(open);
        }
        written
    }
}

async fn write_batch(session: &mut Session, batch: &HitBatch) -> anyhow::Result<()> {
    let transaction = session
        .client
        .transaction()
        .await
        .context("beginning a batch of hits")?;
    let claimed = transaction
        .query_opt(&session.claim, &[&batch.id()])
        .await
        .context("claiming the batch id")?;
    if claimed.is_none() {
        tracing::info!(batch = %batch.id(), "the batch was written before; not again");
        return transaction
            .commit()
            .await
            .context("ending a batch written before");
    }
    let sink = transaction
        .copy_in(COPY_HITS)
        .await
        .context("starting to copy hits")?;
    let mut rows = pin!(BinaryCopyInWriter::new(sink, &HIT_TYPES));
    let batch_id = batch.id();
    for hit in batch.hits() {
        let row = HitRow::of(hit);
        rows.as_mut()
            .write(&row.fields(&batch_id))
            .await
            .context("copying hits")?;
    }
    rows.as_mut().finish().await.context("copying hits")?;
    let hourly = HourlyColumns::of(&batch.hourly_counts());
    transaction
        .execute(
            &session.upsert,
            &[&hourly.kinds, &hourly.ids, &hourly.hours, &hourly.requests],
        )
        .await
        .context("counting the batch's hits per hour")?;
    transaction
        .commit()
        .await
        .context("committing a batch of hits")
}

/// One hit's values in [`COPY_HITS`]'s column order, borrowed where they can be.
struct HitRow<'a> {
    hit: &'a Hit,
    principal_kind: &'static str,
    principal_id: Uuid,
    endpoint: &'a str,
    method: &'static str,
    status: Option<i16>,
    latency_us: Option<i32>,
    source: &'static str,
}

impl<'a> HitRow<'a> {
    fn of(hit: &'a Hit) -> Self {
        Self {
            hit,
            principal_kind: hit.principal.kind().as_str(),
            principal_id: hit.principal.id(),
            endpoint: hit.endpoint.as_str(),
            method: hit.method.as_str(),
            status: hit.status.and_then(|s| i16::try_from(s.get()).ok()),
            latency_us: hit
                .latency
                .map(|l| i32::try_from(l.as_micros()).unwrap_or(i32::MAX)),
            source: hit.source.as_str(),
        }
    }

    fn fields<'r>(&'r self, batch_id: &'r Uuid) -> [&'r (dyn ToSql + Sync); 10] {
        [
            &self.hit.occurred_at,
            &self.principal_kind,
            &self.principal_id,
            &self.method,
            &self.endpoint,
            &self.status,
            &self.latency_us,
            &self.hit.ip,
            &self.source,
            batch_id,
        ]
    }
}

//! Activity in PostgreSQL: raw hits in day partitions, hourly counts per
//! principal ([`HitStore`]), and the usage figures read from those counts
//! ([`UsageStore`]).
//!
//! A batch is one transaction of three statements: claim the batch id (a retried
//! batch that was in fact committed stops here), insert every hit — with `COPY`
//! on a connection of the writer's own when the store has one
//! ([`PgActivityStore::copying_over`], what the application uses; see
//! `hit_copy.rs`), else with one multi-row `INSERT … SELECT FROM unnest(…)` on a
//! pooled connection —, and upsert the batch's hourly counts with one
//! `INSERT … ON CONFLICT DO UPDATE`, already aggregated by the domain and ordered
//! by (principal, hour) so that concurrent writers lock counters in the same order
//! and never deadlock.

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use diesel::sql_types::{
    Array, BigInt, Date, Integer, Nullable, SmallInt, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncConnection, RunQueryDsl};
use ordo_domain::activity::{
    ClientCount, ClientDayCount, ClientLabel, HitBatch, HitPrincipal, HitStore, HourlyCount,
    PrincipalKind, UsageStore,
};
use ordo_domain::clients::ClientId;
use uuid::Uuid;

use crate::errors::{Doing, TxError};
use crate::hit_copy::CopyConnection;
use crate::pool::{PgPool, PoolConfig, checkout};

/// [`HitStore`] and [`UsageStore`] over PostgreSQL.
pub struct PgActivityStore {
    pool: PgPool,
    /// Days whose partition this process made sure of: a batch of those days
    /// needs no DDL round trip. Forgotten when a write fails (a partition may have
    /// been pruned meanwhile) and when pruning.
    prepared: Mutex<HashSet<NaiveDate>>,
    /// Where batches are copied, when the store has a connection of its own.
    copy: Option<CopyConnection>,
}

impl std::fmt::Debug for PgActivityStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgActivityStore").finish_non_exhaustive()
    }
}

impl PgActivityStore {
    /// A store using connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            prepared: Mutex::new(HashSet::new()),
            copy: None,
        }
    }

    /// The store writing its batches with `COPY` over a connection of its own to
    /// `database_url` (with `config`'s session settings), opened on first write
    /// and again after a failure. One writer task uses it, so one connection is
    /// enough; it does not take a connection from the pool requests use.
    #[must_use]
    pub fn copying_over(self, database_url: &str, config: &PoolConfig) -> Self {
        Self {
            copy: Some(CopyConnection::new(config.session_url(database_url))),
            ..self
        }
    }

    fn unprepared(&self, days: &[NaiveDate]) -> Vec<NaiveDate> {
        let prepared = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        days.iter()
            .copied()
            .filter(|d| !prepared.contains(d))
            .collect()
    }

    fn forget_prepared(&self) {
        self.prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Inserts `batch` through a pooled connection, for a store without a
    /// connection of its own.
    async fn insert_pooled(&self, batch: &HitBatch) -> anyhow::Result<()> {
        let columns = HitColumns::of(batch);
        let counts = batch.hourly_counts();
        let mut conn = checkout(&self.pool).await?;
        let written = conn
            .transaction(async |conn| -> Result<(), TxError<anyhow::Error>> {
                let claimed: Claimed = diesel::sql_query(
                    "WITH claimed AS (INSERT INTO activity_batches (id) VALUES ($1) \
                     ON CONFLICT (id) DO NOTHING RETURNING 1) SELECT count(*) AS claimed FROM claimed",
                )
                .bind::<SqlUuid, _>(batch.id())
                .get_result(conn)
                .await?;
                if claimed.claimed == 0 {
                    tracing::info!(batch = %batch.id(), "the batch was written before; not again");
                    return Ok(());
                }
                diesel::sql_query(INSERT_HITS)
                    .bind::<Array<Timestamptz>, _>(&columns.occurred_at)
                    .bind::<Array<Text>, _>(&columns.principal_kind)
                    .bind::<Array<SqlUuid>, _>(&columns.principal_id)
                    .bind::<Array<Text>, _>(&columns.method)
                    .bind::<Array<Text>, _>(&columns.endpoint)
                    .bind::<Array<Nullable<SmallInt>>, _>(&columns.status)
                    .bind::<Array<Nullable<Integer>>, _>(&columns.latency_us)
                    .bind::<Array<Nullable<Text>>, _>(&columns.ip)
                    .bind::<Array<Text>, _>(&columns.source)
                    .bind::<SqlUuid, _>(batch.id())
                    .execute(conn)
                    .await?;
                let hourly = HourlyColumns::of(&counts);
                diesel::sql_query(UPSERT_HOURLY)
                    .bind::<Array<Text>, _>(&hourly.kinds)
                    .bind::<Array<SqlUuid>, _>(&hourly.ids)
                    .bind::<Array<Timestamptz>, _>(&hourly.hours)
                    .bind::<Array<BigInt>, _>(&hourly.requests)
                    .execute(conn)
                    .await?;
                Ok(())
            })
            .await;
        written.map_err(|e| e.into_domain("writing a batch of hits"))
    }
}

/// The name of the partition holding `day`'s hits.
fn partition_name(day: NaiveDate) -> String {
    format!("activity_hits_{}", day.format("%Y%m%d"))
}

fn day_of_partition(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix("activity_hits_")?;
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

fn kind_of(raw: &str) -> anyhow::Result<PrincipalKind> {
    Ok(PrincipalKind::parse(raw)?)
}

fn count_of(requests: i64) -> u64 {
    // Counts are positive (a CHECK says so) and sums of them stay far below i64::MAX.
    u64::try_from(requests).unwrap_or(0)
}

const INSERT_HITS: &str = "\
INSERT INTO activity_hits
    (occurred_at, principal_kind, principal_id, method, endpoint, status, latency_us, ip, source, batch_id)
SELECT t.occurred_at, t.principal_kind, t.principal_id, t.method, t.endpoint, t.status,
       t.latency_us, t.ip::inet, t.source, $10
FROM unnest($1::timestamptz[], $2::text[], $3::uuid[], $4::text[], $5::text[],
            $6::int2[], $7::int4[], $8::text[], $9::text[])
    AS t(occurred_at, principal_kind, principal_id, method, endpoint, status, latency_us, ip, source)";

pub(crate) const UPSERT_HOURLY: &str = "\
INSERT INTO activity_hourly (principal_kind, principal_id, hour, requests)
SELECT * FROM unnest($1::text[], $2::uuid[], $3::timestamptz[], $4::int8[])
ON CONFLICT (principal_kind, principal_id, hour)
DO UPDATE SET requests = activity_hourly.requests + EXCLUDED.requests";

/// The columns of a batch's hits, one array each, for [`INSERT_HITS`].
#[derive(Default)]
struct HitColumns {
    occurred_at: Vec<DateTime<Utc>>,
    principal_kind: Vec<&'static str>,
    principal_id: Vec<Uuid>,
    method: Vec<&'static str>,
    endpoint: Vec<String>,
    status: Vec<Option<i16>>,
    latency_us: Vec<Option<i32>>,
    ip: Vec<Option<String>>,
    source: Vec<&'static str>,
}

impl HitColumns {
    fn of(batch: &HitBatch) -> Self {
        let mut columns = Self::default();
        for hit in batch.hits() {
            columns.occurred_at.push(hit.occurred_at);
            columns.principal_kind.push(hit.principal.kind().as_str());
            columns.principal_id.push(hit.principal.id());
            columns.method.push(hit.method.as_str());
            columns.endpoint.push(hit.endpoint.as_str().to_owned());
            columns
                .status
                .push(hit.status.and_then(|s| i16::try_from(s.get()).ok()));
            columns.latency_us.push(
                hit.latency
                    .map(|l| i32::try_from(l.as_micros()).unwrap_or(i32::MAX)),
            );
            columns.ip.push(hit.ip.map(|ip| ip.to_string()));
            columns.source.push(hit.source.as_str());
        }
        columns
    }
}

/// A batch's hourly counts, one array per column of [`UPSERT_HOURLY`].
pub(crate) struct HourlyColumns {
    pub(crate) kinds: Vec<&'static str>,
    pub(crate) ids: Vec<Uuid>,
    pub(crate) hours: Vec<DateTime<Utc>>,
    pub(crate) requests: Vec<i64>,
}

impl HourlyColumns {
    pub(crate) fn of(counts: &[HourlyCount]) -> Self {
        Self {
            kinds: counts.iter().map(|c| c.principal.kind().as_str()).collect(),
            ids: counts.iter().map(|c| c.principal.id()).collect(),
            hours: counts.iter().map(|c| c.hour).collect(),
            requests: counts
                .iter()
                .map(|c| i64::try_from(c.requests).unwrap_or(i64::MAX))
                .collect(),
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Claimed {
    #[diesel(sql_type = BigInt)]
    claimed: i64,
}

#[async_trait]
impl HitStore for PgActivityStore {
    #[tracing::instrument(level = "debug", skip_all, fields(batch = %batch.id(), hits = batch.hits().len()))]
    async fn write(&self, batch: &HitBatch) -> anyhow::Result<()> {
        let days = batch.days();
        if let (Some(first), Some(last)) = (days.iter().min(), days.iter().max())
            && !self.unprepared(&days).is_empty()
        {
            self.prepare(*first, *last).await?;
        }
        let written = match &self.copy {
            Some(copy) => copy.write(batch).await,
            None => self.insert_pooled(batch).await,
        };
        if written.is_err() {
            self.forget_prepared();
        }
        written
    }

    async fn prepare(&self, from: NaiveDate, to: NaiveDate) -> anyhow::Result<()> {
        let mut conn = checkout(&self.pool).await?;
        diesel::sql_query("SELECT activity_hits_ensure_partitions($1, $2)")
            .bind::<Date, _>(from)
            .bind::<Date, _>(to)
            .execute(&mut conn)
            .await
            .doing("creating the partitions of hits")?;
        let mut prepared = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        let mut day = from;
        while day <= to {
            prepared.insert(day);
            day += TimeDelta::days(1);
        }
        Ok(())
    }

    async fn prune(&self, first_kept: NaiveDate) -> anyhow::Result<Vec<NaiveDate>> {
        #[derive(diesel::QueryableByName)]
        struct Partition {
            #[diesel(sql_type = Text)]
            name: String,
        }
        let mut conn = checkout(&self.pool).await?;
        let partitions: Vec<Partition> = diesel::sql_query(
            "SELECT c.relname::text AS name FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_class p ON p.oid = i.inhparent \
             WHERE p.relname = 'activity_hits'",
        )
        .load(&mut conn)
        .await
        .doing("listing the partitions of hits")?;
        let mut dropped: Vec<NaiveDate> = partitions
            .iter()
            .filter_map(|p| day_of_partition(&p.name))
            .filter(|day| *day < first_kept)
            .collect();
        dropped.sort_unstable();
        self.forget_prepared();
        for day in &dropped {
            // The name is ours, built from a date: nothing to quote.
            diesel::sql_query(format!("DROP TABLE IF EXISTS {}", partition_name(*day)))
                .execute(&mut conn)
                .await
                .doing("dropping a partition of hits")?;
        }
        diesel::sql_query(
            "DELETE FROM activity_batches WHERE written_at < now() - interval '1 day'",
        )
        .execute(&mut conn)
        .await
        .doing("forgetting old batch ids")?;
        Ok(dropped)
    }
}

#[derive(diesel::QueryableByName)]
struct LabelRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(diesel::QueryableByName)]
struct DayRow {
    #[diesel(sql_type = SqlUuid)]
    principal_id: Uuid,
    #[diesel(sql_type = Date)]
    day: NaiveDate,
    #[diesel(sql_type = BigInt)]
    requests: i64,
}

#[derive(diesel::QueryableByName)]
struct TopRow {
    #[diesel(sql_type = SqlUuid)]
    principal_id: Uuid,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    requests: i64,
}

#[derive(diesel::QueryableByName)]
struct HourRow {
    #[diesel(sql_type = Text)]
    principal_kind: String,
    #[diesel(sql_type = SqlUuid)]
    principal_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    hour: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    requests: i64,
}

#[async_trait]
impl UsageStore for PgActivityStore {
    async fn clients(&self, only: Option<ClientId>) -> anyhow::Result<Vec<ClientLabel>> {
        let mut conn = checkout(&self.pool).await?;
        let rows: Vec<LabelRow> = diesel::sql_query(
            "SELECT id, name FROM api_clients WHERE $1::uuid IS NULL OR id = $1 ORDER BY id",
        )
        .bind::<Nullable<SqlUuid>, _>(only.map(|c| c.as_uuid()))
        .load(&mut conn)
        .await
        .doing("listing clients for usage figures")?;
        Ok(rows
            .into_iter()
            .map(|r| ClientLabel {
                id: ClientId::from_uuid(r.id),
                name: r.name,
            })
            .collect())
    }

    async fn client_days(
        &self,
        only: Option<ClientId>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<ClientDayCount>> {
        let mut conn = checkout(&self.pool).await?;
        let rows: Vec<DayRow> = diesel::sql_query(
            "SELECT principal_id, (hour AT TIME ZONE 'UTC')::date AS day, sum(requests)::int8 AS requests \
             FROM activity_hourly \
             WHERE principal_kind = 'client' AND hour >= $1 AND hour < $2 \
               AND ($3::uuid IS NULL OR principal_id = $3) \
             GROUP BY 1, 2",
        )
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .bind::<Nullable<SqlUuid>, _>(only.map(|c| c.as_uuid()))
        .load(&mut conn)
        .await
        .doing("reading daily usage")?;
        Ok(rows
            .into_iter()
            .map(|r| ClientDayCount {
                client: ClientId::from_uuid(r.principal_id),
                day: r.day,
                requests: count_of(r.requests),
            })
            .collect())
    }

    async fn top_clients(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u16,
    ) -> anyhow::Result<Vec<ClientCount>> {
        let mut conn = checkout(&self.pool).await?;
        // Summing first and joining the names of the few winners after: the join
        // then costs `limit` look-ups, not one per client with hits.
        let rows: Vec<TopRow> = diesel::sql_query(
            "WITH totals AS ( \
                 SELECT principal_id, sum(requests)::int8 AS requests FROM activity_hourly \
                 WHERE principal_kind = 'client' AND hour >= $1 AND hour < $2 \
                 GROUP BY principal_id) \
             SELECT t.principal_id, c.name, t.requests \
             FROM totals t JOIN api_clients c ON c.id = t.principal_id \
             ORDER BY t.requests DESC, t.principal_id \
             LIMIT $3",
        )
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .bind::<BigInt, _>(i64::from(limit))
        .load(&mut conn)
        .await
        .doing("reading the top clients")?;
        Ok(rows
            .into_iter()
            .map(|r| ClientCount {
                client: ClientLabel {
                    id: ClientId::from_uuid(r.principal_id),
                    name: r.name,
                },
                requests: count_of(r.requests),
            })
            .collect())
    }

    async fn hourly(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        principal: Option<Uuid>,
    ) -> anyhow::Result<Vec<HourlyCount>> {
        let mut conn = checkout(&self.pool).await?;
        let rows: Vec<HourRow> = diesel::sql_query(
            "SELECT principal_kind, principal_id, hour, requests FROM activity_hourly \
             WHERE hour >= $1 AND hour < $2 AND ($3::uuid IS NULL OR principal_id = $3) \
             ORDER BY hour, principal_id, principal_kind",
        )
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .bind::<Nullable<SqlUuid>, _>(principal)
        .load(&mut conn)
        .await
        .doing("reading hourly usage")?;
        rows.into_iter()
            .map(|r| {
                Ok(HourlyCount {
                    principal: HitPrincipal::new(kind_of(&r.principal_kind)?, r.principal_id),
                    hour: r.hour,
                    requests: count_of(r.requests),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_is_named_after_its_day_and_read_back() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 9).expect("a date");
        assert_eq!(partition_name(day), "activity_hits_20260309");
        assert_eq!(day_of_partition(&partition_name(day)), Some(day));
        assert_eq!(day_of_partition("activity_hits_default"), None);
    }
}

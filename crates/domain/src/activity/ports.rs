use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::service::{DailyUsage, HourlyUsage, TopClients};
use super::{Hit, HitBatch, HourlyCount, RecordHitsError};
use crate::clients::ClientId;

/// Where hits go. An implementation may buffer them and write them later in
/// batches, but a hit it accepted must be counted exactly once: kept across a
/// graceful shutdown, never written twice.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ActivitySink: Send + Sync {
    /// Accepts all of `hits`, or none. A buffering sink returns once they are
    /// buffered; in durable mode, once they are stored.
    ///
    /// # Errors
    /// `Backpressure` when they do not fit in the buffer now (none was accepted);
    /// `Unexpected` when the sink is shutting down or storage failed.
    async fn accept(&self, hits: Vec<Hit>) -> Result<(), RecordHitsError>;

    /// Takes a hit the server observed, without waiting and without failing the
    /// request it describes: `false` when it had to be dropped (the buffer is
    /// full, or the sink is shutting down).
    fn observe(&self, hit: Hit) -> bool;
}

/// Storage of hits: raw rows, partitioned by day, and the hourly counts.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait HitStore: Send + Sync {
    /// Stores `batch`'s hits and adds its [`HitBatch::hourly_counts`] to the
    /// stored ones, in one transaction. Idempotent: a batch whose id was stored
    /// before is not stored again, so a writer unsure whether its commit went
    /// through may retry. Several writers may write at once.
    ///
    /// # Errors
    /// When storage fails; nothing of the batch is stored then.
    async fn write(&self, batch: &HitBatch) -> anyhow::Result<()>;

    /// Makes room for the hits of the days `from` to `to` (inclusive), so that
    /// writing them later does not wait for it. Safe to call from several
    /// instances at once.
    ///
    /// # Errors
    /// When storage fails.
    async fn prepare(&self, from: NaiveDate, to: NaiveDate) -> anyhow::Result<()>;

    /// Deletes the raw hits of every day before `first_kept` (hourly counts are
    /// kept) and returns those days.
    ///
    /// # Errors
    /// When storage fails.
    async fn prune(&self, first_kept: NaiveDate) -> anyhow::Result<Vec<NaiveDate>>;
}

/// A client's id and name, as the figures show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLabel {
    /// Its id.
    pub id: ClientId,
    /// Its name.
    pub name: String,
}

/// A client's hits on one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientDayCount {
    /// Which client.
    pub client: ClientId,
    /// Which day.
    pub day: NaiveDate,
    /// How many hits.
    pub requests: u64,
}

/// A client's hits over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCount {
    /// Which client.
    pub client: ClientLabel,
    /// How many hits.
    pub requests: u64,
}

/// Reads the hourly counts. Every method reads only the counts (and client
/// names), never the raw hits, so its cost does not grow with their number.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Every existing client, or only `only`, ordered by id.
    ///
    /// # Errors
    /// When storage fails.
    async fn clients(&self, only: Option<ClientId>) -> anyhow::Result<Vec<ClientLabel>>;

    /// The clients' (or only `only`'s) hits per UTC day, in `[from, to)`; days
    /// without hits are left out.
    ///
    /// # Errors
    /// When storage fails.
    async fn client_days(
        &self,
        only: Option<ClientId>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<ClientDayCount>>;

    /// The `limit` existing clients with the most hits in `[from, to)`, most first,
    /// ties by id; clients without hits are left out.
    ///
    /// # Errors
    /// When storage fails.
    async fn top_clients(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u16,
    ) -> anyhow::Result<Vec<ClientCount>>;

    /// The hourly counts in `[from, to)`, of every principal or only `principal`,
    /// by hour then principal.
    ///
    /// # Errors
    /// When storage fails.
    async fn hourly(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        principal: Option<Uuid>,
    ) -> anyhow::Result<Vec<HourlyCount>>;
}

/// A usage question, as the cache files answers under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UsageQuery {
    /// Daily figures of one client or all, for `days` days ending `today`.
    Daily {
        /// One client, or all.
        client: Option<ClientId>,
        /// How many days.
        days: u16,
        /// The last day.
        today: NaiveDate,
    },
    /// The top list of a window starting at `start`.
    Top {
        /// The first bucket.
        start: DateTime<Utc>,
        /// Buckets.
        hours: u16,
        /// Clients at most.
        limit: u16,
    },
    /// Hourly counts of a range.
    Hourly {
        /// The first bucket.
        from: DateTime<Utc>,
        /// After the last bucket.
        to: DateTime<Utc>,
        /// One principal, or all.
        principal: Option<Uuid>,
    },
}

/// An answer to a [`UsageQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageReport {
    /// To `Daily`.
    Daily(Arc<DailyUsage>),
    /// To `Top`.
    Top(Arc<TopClients>),
    /// To `Hourly`.
    Hourly(Arc<HourlyUsage>),
}

/// Remembers usage answers for a short time, so that a dashboard polling the
/// figures costs one query per question per interval. An implementation may be
/// shared by several instances (then they all give the same answer to a
/// question within its time).
///
/// A cache never fails a question: an implementation that cannot reach its
/// storage answers `None` and forgets the `put` (reporting it itself), so the
/// answer is computed as if nothing were cached.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UsageCache: Send + Sync {
    /// The answer remembered for `query`, if it is still fresh.
    async fn get(&self, query: &UsageQuery) -> Option<UsageReport>;

    /// Remembers `report` as the answer to `query`.
    async fn put(&self, query: UsageQuery, report: UsageReport);
}

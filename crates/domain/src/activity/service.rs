use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use uuid::Uuid;

use super::{
    ActivitySink, ClientCount, ClientLabel, DailyUsageError, DailyWindow, Endpoint, Hit, HitMethod,
    HitPrincipal, HitSource, HitStatus, HitStore, HourlyCount, HourlyRange, InvalidHit,
    RecordHitsError, ReportedHit, RetentionDays, TopWindow, UsageCache, UsageQuery, UsageReport,
    UsageStore,
};
use crate::clients::ClientId;
use crate::clock::Clock;

/// The rules of recording hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityPolicy {
    /// Days of raw hits kept; a reported hit older than that is refused.
    pub retention: RetentionDays,
    /// Days ahead of today made ready for hits in advance.
    pub prepare_days_ahead: u16,
}

impl ActivityPolicy {
    /// The most hits one request may report.
    pub const MAX_HITS_PER_REQUEST: usize = 1000;

    /// How far in the future a reported hit may lie: clocks of clients drift.
    pub const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);
}

/// Recording hits, and keeping their storage in shape.
#[derive(Clone)]
pub struct ActivityService {
    sink: Arc<dyn ActivitySink>,
    store: Arc<dyn HitStore>,
    clock: Arc<dyn Clock>,
    policy: ActivityPolicy,
}

impl std::fmt::Debug for ActivityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivityService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ActivityService {
    /// A service writing through `sink`, keeping `store` in shape.
    pub fn new(
        sink: Arc<dyn ActivitySink>,
        store: Arc<dyn HitStore>,
        clock: Arc<dyn Clock>,
        policy: ActivityPolicy,
    ) -> Self {
        Self {
            sink,
            store,
            clock,
            policy,
        }
    }

    /// Checks the hits `reporter` reports and accepts them all, or none; returns
    /// how many were accepted.
    ///
    /// # Errors
    /// `BadCount` for none or more than [`ActivityPolicy::MAX_HITS_PER_REQUEST`];
    /// `Invalid` listing every invalid hit by index; `Backpressure` when the sink
    /// is full.
    pub async fn report(
        &self,
        reporter: HitPrincipal,
        reported: Vec<ReportedHit>,
    ) -> Result<usize, RecordHitsError> {
        let given = reported.len();
        if given == 0 || given > ActivityPolicy::MAX_HITS_PER_REQUEST {
            return Err(RecordHitsError::BadCount {
                given,
                max: ActivityPolicy::MAX_HITS_PER_REQUEST,
            });
        }
        let now = self.clock.now();
        let mut hits = Vec::with_capacity(given);
        let mut invalid = Vec::new();
        for (index, raw) in reported.into_iter().enumerate() {
            match self.parse_reported(reporter, raw, now) {
                Ok(hit) => hits.push(hit),
                Err(errors) => {
                    invalid.extend(errors.into_iter().map(|(field, message)| InvalidHit {
                        index,
                        field,
                        message,
                    }))
                }
            }
        }
        if !invalid.is_empty() {
            return Err(RecordHitsError::Invalid(invalid));
        }
        self.sink.accept(hits).await?;
        Ok(given)
    }

    fn parse_reported(
        &self,
        principal: HitPrincipal,
        raw: ReportedHit,
        now: DateTime<Utc>,
    ) -> Result<Hit, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let endpoint = noted(&mut errors, "endpoint", Endpoint::parse(&raw.endpoint));
        let method = noted(
            &mut errors,
            "method",
            raw.method
                .as_deref()
                .map_or(Ok(HitMethod::Get), HitMethod::parse),
        );
        let status = noted(
            &mut errors,
            "status",
            raw.status.map(HitStatus::new).transpose(),
        );
        let occurred_at = noted(
            &mut errors,
            "occurred_at",
            self.occurred_at(raw.occurred_at, now),
        );
        match (endpoint, method, status, occurred_at) {
            (Some(endpoint), Some(method), Some(status), Some(occurred_at)) => Ok(Hit {
                principal,
                occurred_at,
                method,
                endpoint,
                status,
                latency: None,
                ip: None,
                source: HitSource::Reported,
            }),
            _ => Err(errors),
        }
    }

    /// A reported instant, checked: not in the future beyond the clock skew, not
    /// before the retention (its day's raw hits would already be deleted).
    fn occurred_at(
        &self,
        reported: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, crate::InvalidValue> {
        let Some(at) = reported else {
            return Ok(now);
        };
        if at > now + ActivityPolicy::MAX_CLOCK_SKEW {
            return Err(crate::InvalidValue::new(
                "occurred_at lies in the future (more than 5 minutes ahead)",
            ));
        }
        let first_kept = self.policy.retention.first_kept_day(now.date_naive());
        if at.date_naive() < first_kept {
            return Err(crate::InvalidValue::new(format!(
                "occurred_at is before {first_kept}, beyond the {} days hits are kept",
                self.policy.retention.get()
            )));
        }
        Ok(crate::to_micros(at))
    }

    /// Records a hit the server observed, without waiting: `false` when it had to
    /// be dropped.
    pub fn observe(&self, hit: Hit) -> bool {
        self.sink.observe(hit)
    }

    /// The current time, for stamping observed hits.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Makes storage ready for yesterday's (a late hit), today's and the next
    /// days' hits.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn prepare_storage(&self) -> anyhow::Result<()> {
        let today = self.clock.now().date_naive();
        self.store
            .prepare(
                today - TimeDelta::days(1),
                today + TimeDelta::days(i64::from(self.policy.prepare_days_ahead)),
            )
            .await
    }

    /// Deletes raw hits older than the retention, and returns the days deleted.
    /// Hourly counts stay, so the usage figures of those days stay too.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn prune(&self) -> anyhow::Result<Vec<NaiveDate>> {
        let first_kept = self
            .policy
            .retention
            .first_kept_day(self.clock.now().date_naive());
        self.store.prune(first_kept).await
    }
}

/// The value of `result`, or `None` with its error noted under `field`.
fn noted<T>(
    errors: &mut Vec<(&'static str, String)>,
    field: &'static str,
    result: Result<T, crate::InvalidValue>,
) -> Option<T> {
    result
        .map_err(|e| errors.push((field, e.message().to_owned())))
        .ok()
}

/// Who asks for usage figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageViewer {
    /// An administrator: every client.
    Admin,
    /// An API client: only itself.
    Client(ClientId),
}

/// One day of a client's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayCount {
    /// The UTC day.
    pub date: NaiveDate,
    /// Hits on it.
    pub requests: u64,
}

/// A client's figures for each day of a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDays {
    /// Which client.
    pub client: ClientLabel,
    /// Exactly one entry per day of the window, oldest first, zero when none.
    pub days: Vec<DayCount>,
}

/// Daily figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyUsage {
    /// One entry per client, by id.
    pub clients: Vec<ClientDays>,
}

/// The clients with the most hits in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopClients {
    /// The first bucket's start.
    pub window_start: DateTime<Utc>,
    /// When the answer was computed: the window's end.
    pub window_end: DateTime<Utc>,
    /// Most hits first, ties by id.
    pub clients: Vec<ClientCount>,
}

/// Hourly counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourlyUsage {
    /// By hour, then principal.
    pub items: Vec<HourlyCount>,
}

/// The usage figures, read from hourly counts and remembered briefly.
#[derive(Clone)]
pub struct UsageService {
    store: Arc<dyn UsageStore>,
    cache: Arc<dyn UsageCache>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for UsageService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageService").finish_non_exhaustive()
    }
}

impl UsageService {
    /// A service reading `store` through `cache`.
    pub fn new(
        store: Arc<dyn UsageStore>,
        cache: Arc<dyn UsageCache>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            cache,
            clock,
        }
    }

    /// Each client's hits per day of `window` (an API client: only its own),
    /// zero-filled, today (UTC) last.
    ///
    /// # Errors
    /// `OtherClient` when an API client names another; `ClientNotFound` when an
    /// administrator names one that does not exist.
    pub async fn daily(
        &self,
        viewer: UsageViewer,
        client: Option<ClientId>,
        window: DailyWindow,
    ) -> Result<Arc<DailyUsage>, DailyUsageError> {
        let only = match (viewer, client) {
            (UsageViewer::Client(own), Some(asked)) if asked != own => {
                return Err(DailyUsageError::OtherClient);
            }
            (UsageViewer::Client(own), _) => Some(own),
            (UsageViewer::Admin, asked) => asked,
        };
        let today = self.clock.now().date_naive();
        let query = UsageQuery::Daily {
            client: only,
            days: window.days(),
            today,
        };
        if let Some(UsageReport::Daily(cached)) = self.cache.get(&query).await {
            return Ok(cached);
        }
        let clients = self.store.clients(only).await?;
        if let (Some(id), true) = (only, clients.is_empty()) {
            return Err(DailyUsageError::ClientNotFound(id));
        }
        let (from, to) = window.bounds(today);
        let counts: HashMap<(ClientId, NaiveDate), u64> = self
            .store
            .client_days(only, from, to)
            .await?
            .into_iter()
            .map(|c| ((c.client, c.day), c.requests))
            .collect();
        let dates = window.dates(today);
        let usage = Arc::new(DailyUsage {
            clients: clients
                .into_iter()
                .map(|client| ClientDays {
                    days: dates
                        .iter()
                        .map(|&date| DayCount {
                            date,
                            requests: counts.get(&(client.id, date)).copied().unwrap_or(0),
                        })
                        .collect(),
                    client,
                })
                .collect(),
        });
        self.cache
            .put(query, UsageReport::Daily(usage.clone()))
            .await;
        Ok(usage)
    }

    /// The clients with the most hits in `window`.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn top(&self, window: TopWindow) -> anyhow::Result<Arc<TopClients>> {
        let now = self.clock.now();
        let start = window.start(now);
        let query = UsageQuery::Top {
            start,
            hours: window.hour_count(),
            limit: window.max_clients(),
        };
        if let Some(UsageReport::Top(cached)) = self.cache.get(&query).await {
            return Ok(cached);
        }
        // The current bucket ends an hour after it starts; hits stamped up to the
        // clock skew ahead of now count in it too.
        let end = super::hour_of(now) + TimeDelta::hours(1);
        let clients = self
            .store
            .top_clients(start, end, window.max_clients())
            .await?;
        let top = Arc::new(TopClients {
            window_start: start,
            window_end: now,
            clients,
        });
        self.cache.put(query, UsageReport::Top(top.clone())).await;
        Ok(top)
    }

    /// The hourly counts of `range` (the last 24 hours when `None`), of every
    /// principal or only `principal`.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn hourly(
        &self,
        range: Option<HourlyRange>,
        principal: Option<Uuid>,
    ) -> anyhow::Result<Arc<HourlyUsage>> {
        let range = range.unwrap_or_else(|| HourlyRange::last_day(self.clock.now()));
        let query = UsageQuery::Hourly {
            from: range.first(),
            to: range.end(),
            principal,
        };
        if let Some(UsageReport::Hourly(cached)) = self.cache.get(&query).await {
            return Ok(cached);
        }
        let items = self
            .store
            .hourly(range.first(), range.end(), principal)
            .await?;
        let usage = Arc::new(HourlyUsage { items });
        self.cache
            .put(query, UsageReport::Hourly(usage.clone()))
            .await;
        Ok(usage)
    }
}

#[cfg(test)]
mod tests;

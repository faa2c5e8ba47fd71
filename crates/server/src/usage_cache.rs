//! Usage answers remembered in this process for a short TTL: the default. Several
//! instances share one in Redis instead (`ordo_redis::RedisUsageCache`, chosen
//! by `ORDO_REDIS_URL`): with a cache per process each instance may answer from
//! its own, slightly different moment, at most one TTL old, with another `ETag`.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use ordo_domain::activity::{UsageCache, UsageQuery, UsageReport};

/// The most answers remembered: dashboards ask few distinct questions.
const CAPACITY: usize = 10_000;

/// A [`UsageCache`] in this process's memory.
pub struct InMemoryUsageCache {
    answers: quick_cache::sync::Cache<UsageQuery, (UsageReport, Instant)>,
    ttl: Duration,
}

impl std::fmt::Debug for InMemoryUsageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryUsageCache")
            .field("ttl", &self.ttl)
            .field("entries", &self.answers.len())
            .finish()
    }
}

impl InMemoryUsageCache {
    /// Remembers each answer for `ttl` (zero: not at all).
    pub fn new(ttl: Duration) -> Self {
        Self {
            answers: quick_cache::sync::Cache::new(CAPACITY),
            ttl,
        }
    }

    /// How long answers are remembered: what `Cache-Control: max-age` tells
    /// clients.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[async_trait]
impl UsageCache for InMemoryUsageCache {
    async fn get(&self, query: &UsageQuery) -> Option<UsageReport> {
        let (report, until) = self.answers.get(query)?;
        if Instant::now() < until {
            Some(report)
        } else {
            self.answers.remove(query);
            None
        }
    }

    async fn put(&self, query: UsageQuery, report: UsageReport) {
        if !self.ttl.is_zero() {
            self.answers
                .insert(query, (report, Instant::now() + self.ttl));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;
    use ordo_domain::activity::HourlyUsage;

    use super::*;

    fn query() -> UsageQuery {
        UsageQuery::Hourly {
            from: Utc::now(),
            to: Utc::now(),
            principal: None,
        }
    }

    fn report() -> UsageReport {
        UsageReport::Hourly(Arc::new(HourlyUsage { items: vec![] }))
    }

    #[tokio::test]
    async fn an_answer_is_remembered_until_its_ttl_passes() {
        let cache = InMemoryUsageCache::new(Duration::from_millis(30));
        let query = query();
        cache.put(query.clone(), report()).await;

        assert_eq!(cache.get(&query).await, Some(report()));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(cache.get(&query).await, None);
    }

    #[tokio::test]
    async fn a_zero_ttl_remembers_nothing() {
        let cache = InMemoryUsageCache::new(Duration::ZERO);
        let query = query();
        cache.put(query.clone(), report()).await;
        assert_eq!(cache.get(&query).await, None);
    }
}

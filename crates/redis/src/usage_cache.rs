//! The [`UsageCache`] on Redis: one answer per usage question for every
//! instance, so a dashboard polling through a load balancer costs one query per
//! question per TTL however many instances serve it, and sees the same answer
//! (and so the same `ETag`) from each of them.
//!
//! Each answer is one key, `ordo:usage:v1:<question>`, holding the answer as JSON
//! and set with the TTL (`SET … PX`): Redis forgets it by itself. The `v1` is the
//! encoding's version; an instance of another version reads its own keys, never
//! a value it cannot decode.
//!
//! The cache never fails a question: when Redis cannot be reached (or holds a
//! value that does not decode), the answer is computed as if nothing were cached,
//! with a warning in the log (at most one a second) and the counter
//! `usage_cache_unavailable_total{operation="get"|"put"}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use ordo_domain::activity::{
    ClientCount, ClientDays, ClientLabel, DailyUsage, DayCount, HitPrincipal, HourlyCount,
    HourlyUsage, PrincipalKind, TopClients, UsageCache, UsageQuery, UsageReport,
};
use ordo_domain::clients::ClientId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Redis;

/// The prefix of every usage key, with the encoding's version.
const KEY_PREFIX: &str = "ordo:usage:v1:";

/// The counter of cache operations Redis could not serve.
pub const USAGE_CACHE_UNAVAILABLE: &str = "usage_cache_unavailable_total";

/// Usage answers in Redis, shared by every instance using it.
#[derive(Debug)]
pub struct RedisUsageCache {
    redis: Redis,
    ttl: Duration,
    /// When the last warning was logged (Unix seconds), so an outage logs one a
    /// second, not one per request.
    last_warning: AtomicI64,
}

impl RedisUsageCache {
    /// Remembers each answer for `ttl` (zero: not at all) in `redis`.
    pub fn new(redis: Redis, ttl: Duration) -> Self {
        Self {
            redis,
            ttl,
            last_warning: AtomicI64::new(0),
        }
    }

    /// The Redis key of `query`.
    pub fn key_of(query: &UsageQuery) -> String {
        let question = match query {
            UsageQuery::Daily {
                client,
                days,
                today,
            } => format!(
                "daily:{}:{days}:{today}",
                or_all(client.map(|c| c.as_uuid()))
            ),
            UsageQuery::Top {
                start,
                hours,
                limit,
            } => format!("top:{}:{hours}:{limit}", start.timestamp_micros()),
            UsageQuery::Hourly {
                from,
                to,
                principal,
            } => format!(
                "hourly:{}:{}:{}",
                from.timestamp_micros(),
                to.timestamp_micros(),
                or_all(*principal)
            ),
        };
        format!("{KEY_PREFIX}{question}")
    }

    async fn try_get(&self, query: &UsageQuery) -> anyhow::Result<Option<UsageReport>> {
        let mut connection = self.redis.connection();
        let stored: Option<Vec<u8>> = self
            .redis
            .bounded(
                redis::cmd("GET")
                    .arg(Self::key_of(query))
                    .query_async(&mut connection),
            )
            .await?;
        stored
            .map(|bytes| {
                serde_json::from_slice::<Stored>(&bytes)
                    .context("decoding a cached usage answer")?
                    .into_report()
            })
            .transpose()
    }

    async fn try_put(&self, query: &UsageQuery, report: &UsageReport) -> anyhow::Result<()> {
        let value = serde_json::to_vec(&Stored::of(report)).context("encoding a usage answer")?;
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut connection = self.redis.connection();
        self.redis
            .bounded(
                redis::cmd("SET")
                    .arg(Self::key_of(query))
                    .arg(value)
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async::<()>(&mut connection),
            )
            .await
    }

    fn unavailable(&self, operation: &'static str, error: &anyhow::Error) {
        metrics::counter!(USAGE_CACHE_UNAVAILABLE, "operation" => operation).increment(1);
        let now = Utc::now().timestamp();
        let last = self.last_warning.load(Ordering::Relaxed);
        if now > last
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = format!("{error:#}"),
                operation,
                "the usage cache in Redis is unavailable; computing the answer instead"
            );
        }
    }
}

fn or_all(id: Option<Uuid>) -> String {
    id.map_or_else(|| "all".to_owned(), |id| id.to_string())
}

#[async_trait]
impl UsageCache for RedisUsageCache {
    async fn get(&self, query: &UsageQuery) -> Option<UsageReport> {
        if self.ttl.is_zero() {
            return None;
        }
        self.try_get(query).await.unwrap_or_else(|error| {
            self.unavailable("get", &error);
            None
        })
    }

    async fn put(&self, query: UsageQuery, report: UsageReport) {
        if self.ttl.is_zero() {
            return;
        }
        if let Err(error) = self.try_put(&query, &report).await {
            self.unavailable("put", &error);
        }
    }
}

/// An answer as stored: the domain's figures in a shape of this adapter's own,
/// so the domain needs no serialisation.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Stored {
    Daily {
        clients: Vec<StoredClientDays>,
    },
    Top {
        window_start: DateTime<Utc>,
        window_end: DateTime<Utc>,
        clients: Vec<StoredClientCount>,
    },
    Hourly {
        items: Vec<StoredHourlyCount>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredClientDays {
    id: Uuid,
    name: String,
    days: Vec<(NaiveDate, u64)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredClientCount {
    id: Uuid,
    name: String,
    requests: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredHourlyCount {
    kind: String,
    principal: Uuid,
    hour: DateTime<Utc>,
    requests: u64,
}

fn label(id: Uuid, name: String) -> ClientLabel {
    ClientLabel {
        id: ClientId::from_uuid(id),
        name,
    }
}

impl Stored {
    fn of(report: &UsageReport) -> Self {
        match report {
            UsageReport::Daily(usage) => Self::Daily {
                clients: usage
                    .clients
                    .iter()
                    .map(|c| StoredClientDays {
                        id: c.client.id.as_uuid(),
                        name: c.client.name.clone(),
                        days: c.days.iter().map(|d| (d.date, d.requests)).collect(),
                    })
                    .collect(),
            },
            UsageReport::Top(top) => Self::Top {
                window_start: top.window_start,
                window_end: top.window_end,
                clients: top
                    .clients
                    .iter()
                    .map(|c| StoredClientCount {
                        id: c.client.id.as_uuid(),
                        name: c.client.name.clone(),
                        requests: c.requests,
                    })
                    .collect(),
            },
            UsageReport::Hourly(usage) => Self::Hourly {
                items: usage
                    .items
                    .iter()
                    .map(|c| StoredHourlyCount {
                        kind: c.principal.kind().as_str().to_owned(),
                        principal: c.principal.id(),
                        hour: c.hour,
                        requests: c.requests,
                    })
                    .collect(),
            },
        }
    }

    fn into_report(self) -> anyhow::Result<UsageReport> {
        Ok(match self {
            Self::Daily { clients } => UsageReport::Daily(Arc::new(DailyUsage {
                clients: clients
                    .into_iter()
                    .map(|c| ClientDays {
                        client: label(c.id, c.name),
                        days: c
                            .days
                            .into_iter()
                            .map(|(date, requests)| DayCount { date, requests })
                            .collect(),
                    })
                    .collect(),
            })),
            Self::Top {
                window_start,
                window_end,
                clients,
            } => UsageReport::Top(Arc::new(TopClients {
                window_start,
                window_end,
                clients: clients
                    .into_iter()
                    .map(|c| ClientCount {
                        client: label(c.id, c.name),
                        requests: c.requests,
                    })
                    .collect(),
            })),
            Self::Hourly { items } => UsageReport::Hourly(Arc::new(HourlyUsage {
                items: items
                    .into_iter()
                    .map(|c| {
                        let kind = PrincipalKind::parse(&c.kind)
                            .map_err(|e| anyhow::anyhow!("a cached principal kind: {e}"))?;
                        Ok(HourlyCount {
                            principal: HitPrincipal::new(kind, c.principal),
                            hour: c.hour,
                            requests: c.requests,
                        })
                    })
                    .collect::<anyhow::Result<_>>()?,
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedisConfig;
    use crate::testing::RedisServer;

    fn hourly_query() -> UsageQuery {
        UsageQuery::Hourly {
            from: "2030-01-01T00:00:00Z".parse().expect("an instant"),
            to: "2030-01-02T00:00:00Z".parse().expect("an instant"),
            principal: None,
        }
    }

    fn reports() -> Vec<UsageReport> {
        let client = ClientLabel {
            id: ClientId::generate(),
            name: "Shop front".to_owned(),
        };
        let hour: DateTime<Utc> = "2030-01-01T10:00:00Z".parse().expect("an instant");
        vec![
            UsageReport::Daily(Arc::new(DailyUsage {
                clients: vec![ClientDays {
                    client: client.clone(),
                    days: vec![
                        DayCount {
                            date: hour.date_naive(),
                            requests: 7,
                        },
                        DayCount {
                            date: hour.date_naive().succ_opt().expect("a day"),
                            requests: 0,
                        },
                    ],
                }],
            })),
            UsageReport::Top(Arc::new(TopClients {
                window_start: hour,
                window_end: hour + chrono::TimeDelta::minutes(20),
                clients: vec![ClientCount {
                    client,
                    requests: 42,
                }],
            })),
            UsageReport::Hourly(Arc::new(HourlyUsage {
                items: vec![
                    HourlyCount {
                        principal: HitPrincipal::new(PrincipalKind::User, Uuid::now_v7()),
                        hour,
                        requests: 3,
                    },
                    HourlyCount {
                        principal: HitPrincipal::new(PrincipalKind::Client, Uuid::now_v7()),
                        hour,
                        requests: 5,
                    },
                ],
            })),
        ]
    }

    async fn cache_on(server: &RedisServer, ttl: Duration) -> RedisUsageCache {
        let redis = Redis::connect(&RedisConfig {
            url: server.url().to_owned(),
            timeout: Duration::from_millis(250),
        })
        .await
        .expect("a connection");
        RedisUsageCache::new(redis, ttl)
    }

    #[tokio::test]
    async fn every_kind_of_answer_comes_back_as_it_was_put() {
        let Some(server) = RedisServer::start_or_skip("usage cache round trip") else {
            return;
        };
        let cache = cache_on(&server, Duration::from_secs(30)).await;
        for (i, report) in reports().into_iter().enumerate() {
            let query = UsageQuery::Daily {
                client: None,
                days: u16::try_from(i + 1).expect("small"),
                today: "2030-01-01".parse().expect("a day"),
            };
            assert_eq!(cache.get(&query).await, None);
            cache.put(query.clone(), report.clone()).await;
            assert_eq!(cache.get(&query).await, Some(report));
        }
    }

    #[tokio::test]
    async fn an_answer_put_by_one_instance_is_read_by_another_until_its_ttl_passes() {
        let Some(server) = RedisServer::start_or_skip("usage cache shared") else {
            return;
        };
        let one = cache_on(&server, Duration::from_millis(300)).await;
        let other = cache_on(&server, Duration::from_millis(300)).await;
        let report = reports().pop().expect("a report");
        one.put(hourly_query(), report.clone()).await;

        assert_eq!(other.get(&hourly_query()).await, Some(report));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            other.get(&hourly_query()).await,
            None,
            "Redis let it expire"
        );
    }

    #[tokio::test]
    async fn questions_that_differ_in_anything_are_kept_apart() {
        let start: DateTime<Utc> = "2030-01-01T10:00:00Z".parse().expect("an instant");
        let client = ClientId::generate();
        let day: NaiveDate = "2030-01-01".parse().expect("a day");
        let keys: HashSet<String> = [
            UsageQuery::Daily {
                client: None,
                days: 7,
                today: day,
            },
            UsageQuery::Daily {
                client: Some(client),
                days: 7,
                today: day,
            },
            UsageQuery::Daily {
                client: None,
                days: 8,
                today: day,
            },
            UsageQuery::Daily {
                client: None,
                days: 7,
                today: day.succ_opt().expect("a day"),
            },
            UsageQuery::Top {
                start,
                hours: 24,
                limit: 3,
            },
            UsageQuery::Top {
                start,
                hours: 24,
                limit: 4,
            },
            UsageQuery::Top {
                start,
                hours: 25,
                limit: 3,
            },
            UsageQuery::Top {
                start: start + chrono::TimeDelta::hours(1),
                hours: 24,
                limit: 3,
            },
            UsageQuery::Hourly {
                from: start,
                to: start + chrono::TimeDelta::hours(1),
                principal: None,
            },
            UsageQuery::Hourly {
                from: start,
                to: start + chrono::TimeDelta::hours(2),
                principal: None,
            },
            UsageQuery::Hourly {
                from: start,
                to: start + chrono::TimeDelta::hours(1),
                principal: Some(client.as_uuid()),
            },
        ]
        .iter()
        .map(RedisUsageCache::key_of)
        .collect();
        assert_eq!(keys.len(), 11);
        assert!(keys.iter().all(|k| k.starts_with(KEY_PREFIX)));
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_a_miss_and_a_forgotten_put_never_an_error() {
        let Some(mut server) = RedisServer::start_or_skip("usage cache unreachable") else {
            return;
        };
        let cache = cache_on(&server, Duration::from_secs(30)).await;
        server.stop();
        let report = reports().pop().expect("a report");

        let started = std::time::Instant::now();
        cache.put(hourly_query(), report.clone()).await;
        assert_eq!(cache.get(&hourly_query()).await, None);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "each operation waits at most the timeout: {:?}",
            started.elapsed()
        );

        server.restart().expect("Redis starts again");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            cache.put(hourly_query(), report.clone()).await;
            if cache.get(&hourly_query()).await == Some(report.clone()) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the cache came back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_value_that_does_not_decode_is_a_miss() {
        let Some(server) = RedisServer::start_or_skip("usage cache undecodable") else {
            return;
        };
        let cache = cache_on(&server, Duration::from_secs(30)).await;
        let mut connection = cache.redis.connection();
        redis::cmd("SET")
            .arg(RedisUsageCache::key_of(&hourly_query()))
            .arg("not json")
            .query_async::<()>(&mut connection)
            .await
            .expect("set");
        assert_eq!(cache.get(&hourly_query()).await, None);
    }

    use std::collections::HashSet;
}

//! The [`RateLimitStore`] on Redis: the state of every rate limit shared by all
//! instances, so a caller's allowance is one allowance however many instances
//! serve it.
//!
//! Each request costs one round trip: a Lua script (sent by digest with
//! `EVALSHA`, loaded once when Redis does not know it) reads every key the
//! request is checked against, applies the GCRA rule, and writes the new
//! theoretical arrival times only when every policy allows the request. Redis runs
//! a script alone, so concurrent requests on any instance are serialised exactly
//! as the in-memory store's locks serialise them in one process.
//!
//! The script only compares and adds integers; the decisions themselves — what
//! remains, when the allowance is whole, how long to wait — are computed here by
//! [`decide`], from the stored values the script reports, so both stores decide
//! alike by construction.
//!
//! Keys (`ordo:ratelimit:<key>`) expire a second after their theoretical arrival
//! time passes (the second covers clocks of instances a little behind Redis's):
//! an idle caller's key vanishes, and Redis holds only active callers.
//! The script names several keys at once, so on a Redis Cluster they would have
//! to share a hash slot; Ordo expects one Redis (with a replica for failover).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ordo_domain::ratelimit::{
    LimitCheck, RateLimitError, RateLimitOutcome, RateLimitStore, decide,
};
use redis::Script;

use crate::Redis;

/// The prefix of every rate-limit key, so they can share a Redis with other data.
const KEY_PREFIX: &str = "ordo:ratelimit:";

/// Lua numbers are doubles: integers are exact up to 2^53 µs (about the year
/// 2255), far beyond any theoretical arrival time a sane policy produces.
const LARGEST_EXACT_MICROS: i64 = 1 << 53;

/// Theoretical arrival times by key, in Redis.
#[derive(Debug, Clone)]
pub struct RedisRateLimits {
    redis: Redis,
    script: Script,
}

impl RedisRateLimits {
    /// A store over `redis`.
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            script: Script::new(include_str!("gcra.lua")),
        }
    }

    /// The Redis key of `check`.
    pub fn key_of(check: &LimitCheck) -> String {
        format!("{KEY_PREFIX}{}", check.key)
    }
}

fn micros(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_micros()
}

fn unavailable(error: anyhow::Error) -> RateLimitError {
    RateLimitError(error)
}

#[async_trait]
impl RateLimitStore for RedisRateLimits {
    async fn check(
        &self,
        checks: &[LimitCheck],
        now: DateTime<Utc>,
    ) -> Result<RateLimitOutcome, RateLimitError> {
        let now_micros = micros(now);
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(now_micros);
        for check in checks {
            let interval = check.policy.emission_interval().num_microseconds();
            let tolerance = check.policy.tolerance().num_microseconds();
            let (Some(interval), Some(tolerance)) = (interval, tolerance) else {
                return Err(unavailable(anyhow::anyhow!(
                    "the policy of {} is too large to count in microseconds",
                    check.key
                )));
            };
            if now_micros
                .saturating_add(tolerance)
                .saturating_add(interval)
                >= LARGEST_EXACT_MICROS
            {
                return Err(unavailable(anyhow::anyhow!(
                    "the policy of {} reaches beyond the shared store's exact range",
                    check.key
                )));
            }
            invocation
                .key(Self::key_of(check))
                .arg(interval)
                .arg(tolerance);
        }
        let mut connection = self.redis.connection();
        let reply: Vec<Option<i64>> = self
            .redis
            .bounded(invocation.invoke_async(&mut connection))
            .await
            .map_err(|e| unavailable(e.context("deciding rate limits in Redis")))?;
        let Some((allowed, stored)) = reply.split_first() else {
            return Err(unavailable(anyhow::anyhow!(
                "the rate-limit script answered nothing"
            )));
        };
        if stored.len() != checks.len() {
            return Err(unavailable(anyhow::anyhow!(
                "the rate-limit script answered {} values for {} checks",
                stored.len(),
                checks.len()
            )));
        }
        let decisions = checks
            .iter()
            .zip(stored)
            .map(|(check, stored)| {
                let stored = stored.and_then(DateTime::<Utc>::from_timestamp_micros);
                decide(check.policy, stored, now)
            })
            .collect();
        let outcome = RateLimitOutcome { decisions };
        // The script and `decide` must agree; if they ever did not, a key could
        // have been written for a refused request (or not for an allowed one).
        if outcome.is_allowed() != (*allowed == Some(1)) {
            return Err(unavailable(anyhow::anyhow!(
                "the rate-limit script and the GCRA rule disagree"
            )));
        }
        Ok(outcome)
    }
}

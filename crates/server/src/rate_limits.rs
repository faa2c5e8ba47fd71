//! The in-process [`RateLimitStore`]: one instance's memory, sharded so that
//! requests of different callers rarely wait on one another, bounded so that a
//! flood of new keys cannot grow it without limit. Several instances need a shared
//! store instead (the same port on Redis), or each would grant the whole allowance.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ordo_domain::ratelimit::{
    Decision, LimitCheck, RateKey, RateLimitError, RateLimitOutcome, RateLimitStore, decide,
};

const SHARDS: usize = 64;

type Shard = HashMap<RateKey, DateTime<Utc>>;

/// Theoretical arrival times by key, in memory.
#[derive(Debug)]
pub struct InMemoryRateLimits {
    shards: Vec<Mutex<Shard>>,
    keys_per_shard: usize,
}

impl InMemoryRateLimits {
    /// A store that keeps at most about `max_keys` keys. A key whose allowance is
    /// whole again holds no information and is dropped first; when every key is
    /// still in use, the one closest to whole is dropped (its caller is then
    /// treated as new: a bounded leniency, never a refusal of an innocent caller).
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            keys_per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.len()).unwrap_or(0))
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard_of(key: &RateKey) -> usize {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        usize::try_from(hasher.finish() % SHARDS as u64).unwrap_or(0)
    }

    fn lock(&self, index: usize) -> Result<MutexGuard<'_, Shard>, RateLimitError> {
        self.shards[index]
            .lock()
            .map_err(|_| RateLimitError(anyhow::anyhow!("a rate-limit shard was poisoned")))
    }

    /// Stores `tat` under `key`, making room first when the key is new.
    fn store(&self, shard: &mut Shard, key: &RateKey, tat: DateTime<Utc>, now: DateTime<Utc>) {
        if let Some(stored) = shard.get_mut(key) {
            *stored = tat;
        } else {
            Self::make_room(shard, self.keys_per_shard, now);
            shard.insert(key.clone(), tat);
        }
    }

    fn make_room(shard: &mut Shard, capacity: usize, now: DateTime<Utc>) {
        if shard.len() < capacity {
            return;
        }
        shard.retain(|_, tat| *tat > now);
        if shard.len() >= capacity
            && let Some(oldest) = shard
                .iter()
                .min_by_key(|(_, tat)| **tat)
                .map(|(key, _)| key.clone())
        {
            shard.remove(&oldest);
        }
    }
}

#[async_trait]
impl RateLimitStore for InMemoryRateLimits {
    async fn check(
        &self,
        checks: &[LimitCheck],
        now: DateTime<Utc>,
    ) -> Result<RateLimitOutcome, RateLimitError> {
        if let [check] = checks {
            // The common case, one policy: one lock, no bookkeeping.
            let mut shard = self.lock(Self::shard_of(&check.key))?;
            let decision = decide(check.policy, shard.get(&check.key).copied(), now);
            if let Decision::Allowed { tat, .. } = decision {
                self.store(&mut shard, &check.key, tat, now);
            }
            return Ok(RateLimitOutcome {
                decisions: vec![decision],
            });
        }
        // Every shard involved is locked, in index order (so concurrent checks never
        // deadlock), for the whole decision: all-or-nothing across the policies.
        let mut indices: Vec<usize> = checks.iter().map(|c| Self::shard_of(&c.key)).collect();
        indices.sort_unstable();
        indices.dedup();
        let mut guards: Vec<(usize, MutexGuard<'_, Shard>)> = Vec::with_capacity(indices.len());
        for index in indices {
            guards.push((index, self.lock(index)?));
        }
        let mut pending: HashMap<&RateKey, DateTime<Utc>> = HashMap::new();
        let mut decisions = Vec::with_capacity(checks.len());
        for check in checks {
            let shard = Self::shard_of(&check.key);
            let stored = pending.get(&check.key).copied().or_else(|| {
                guards
                    .iter()
                    .find(|(i, _)| *i == shard)
                    .and_then(|(_, g)| g.get(&check.key).copied())
            });
            let decision = decide(check.policy, stored, now);
            if let Decision::Allowed { tat, .. } = decision {
                pending.insert(&check.key, tat);
            }
            decisions.push(decision);
        }
        let outcome = RateLimitOutcome { decisions };
        if outcome.is_allowed() {
            for (key, tat) in pending {
                let shard = Self::shard_of(key);
                if let Some((_, guard)) = guards.iter_mut().find(|(i, _)| *i == shard) {
                    self.store(guard, key, tat, now);
                }
            }
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;
    use ordo_domain::ratelimit::RatePolicy;

    use super::*;

    fn ip(n: u32) -> std::net::IpAddr {
        std::net::IpAddr::V4(std::net::Ipv4Addr::from(n))
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
    }

    fn check(key: RateKey, per_minute: u32, burst: u32) -> LimitCheck {
        LimitCheck {
            key,
            policy: RatePolicy::per_minute(per_minute, burst).unwrap(),
        }
    }

    #[tokio::test]
    async fn a_request_denied_by_one_policy_uses_up_no_other() {
        let store = InMemoryRateLimits::new(1_000);
        let strict = check(RateKey::Address(ip(1)), 60, 1);
        let loose = check(RateKey::Client(uuid::Uuid::from_u128(1)), 60, 10);
        assert!(
            store
                .check(&[strict.clone(), loose.clone()], now())
                .await
                .unwrap()
                .is_allowed()
        );

        let denied = store.check(&[strict, loose.clone()], now()).await.unwrap();

        assert!(!denied.is_allowed());
        assert_eq!(
            denied.retry_after(),
            Some(std::time::Duration::from_secs(1))
        );
        let alone = store.check(&[loose], now()).await.unwrap();
        // Nine of ten are left: the denied request took none.
        assert!(matches!(
            alone.decisions[0],
            Decision::Allowed { remaining: 8, .. }
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_never_take_more_than_the_burst() {
        let store = Arc::new(InMemoryRateLimits::new(1_000));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .check(
                            &[check(RateKey::Client(uuid::Uuid::from_u128(2)), 60, 50)],
                            now(),
                        )
                        .await
                        .unwrap()
                        .is_allowed()
                })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            allowed += usize::from(task.await.unwrap());
        }
        assert_eq!(allowed, 50);
    }

    #[tokio::test]
    async fn memory_stays_bounded_however_many_callers_appear() {
        let store = InMemoryRateLimits::new(640);
        for i in 0..10_000 {
            store
                .check(&[check(RateKey::Address(ip(i)), 60, 5)], now())
                .await
                .unwrap();
        }
        assert!(store.len() <= 640, "{} keys", store.len());
    }
}

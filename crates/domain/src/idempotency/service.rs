use std::sync::Arc;

use chrono::TimeDelta;

use super::{IdempotencyClaim, IdempotencyStore, IdempotentRequest, StoredResponse};
use crate::clock::Clock;

/// How long a key is remembered.
const KEY_LIFETIME: TimeDelta = TimeDelta::hours(24);

/// How long the first request with a key holds it without answering before a
/// repetition takes it over: far longer than a request runs (a checkout's
/// upstream calls end by their deadlines, seconds), so only a request whose
/// process died is ever taken over.
const KEY_LEASE: TimeDelta = TimeDelta::minutes(1);

/// Claiming, completing and releasing idempotency keys.
#[derive(Clone)]
pub struct IdempotencyService {
    store: Arc<dyn IdempotencyStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for IdempotencyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyService").finish_non_exhaustive()
    }
}

impl IdempotencyService {
    /// A service over `store`.
    pub fn new(store: Arc<dyn IdempotencyStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Claims the request's key for 24 hours (held for a minute while it runs
    /// without an answer), or tells what holds it.
    ///
    /// # Errors
    /// When storage fails.
    #[tracing::instrument(level = "debug", skip_all, fields(owner = request.owner.as_str()))]
    pub async fn claim(&self, request: &IdempotentRequest) -> anyhow::Result<IdempotencyClaim> {
        let now = self.clock.now();
        self.store
            .claim(request, now, now + KEY_LEASE, now + KEY_LIFETIME)
            .await
    }

    /// Records the response of a claimed request: repetitions get it from now on.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn complete(
        &self,
        request: &IdempotentRequest,
        response: StoredResponse,
    ) -> anyhow::Result<()> {
        self.store
            .complete(&request.owner, &request.key, response)
            .await
    }

    /// Frees the key of a claimed request that had no effect.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn release(&self, request: &IdempotentRequest) -> anyhow::Result<()> {
        self.store.release(&request.owner, &request.key).await
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use mockall::predicate::eq;

    use super::*;
    use crate::clock::MockClock;
    use crate::idempotency::{KeyOwner, MockIdempotencyStore, RequestFingerprint};
    use crate::upstream::IdempotencyKey;

    #[tokio::test]
    async fn a_key_is_claimed_for_twenty_four_hours_and_held_for_a_minute() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 24, 1, 2, 3)
            .single()
            .expect("a time");
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now);
        let request = IdempotentRequest {
            owner: KeyOwner::new("user", uuid::Uuid::nil()),
            key: IdempotencyKey::parse("k-1").expect("a key"),
            fingerprint: RequestFingerprint::parse(&"a".repeat(64)).expect("a fingerprint"),
        };
        let mut store = MockIdempotencyStore::new();
        store
            .expect_claim()
            .with(
                eq(request.clone()),
                eq(now),
                eq(now + TimeDelta::minutes(1)),
                eq(now + TimeDelta::hours(24)),
            )
            .times(1)
            .returning(|_, _, _, _| Ok(IdempotencyClaim::Claimed));
        let service = IdempotencyService::new(Arc::new(store), Arc::new(clock));

        assert_eq!(
            service.claim(&request).await.expect("claimed"),
            IdempotencyClaim::Claimed
        );
    }
}

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{IdempotencyClaim, IdempotentRequest, KeyOwner, StoredResponse};
use crate::upstream::IdempotencyKey;

/// Storage of idempotency keys.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims the key of `request` until `expires_at`, leased to this request
    /// until `lease_until`, or tells what holds it, deciding by
    /// [`IdempotencyRecord::claim_by`](super::IdempotencyRecord::claim_by) on the
    /// stored record (a `TakeOver` renews the lease to `lease_until`). Of
    /// concurrent claims of one key exactly one is `Claimed` (or `TakeOver`);
    /// the others see it running.
    ///
    /// # Errors
    /// When storage fails.
    async fn claim(
        &self,
        request: &IdempotentRequest,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> anyhow::Result<IdempotencyClaim>;

    /// Stores the response of the request that claimed the key.
    ///
    /// # Errors
    /// When storage fails.
    async fn complete(
        &self,
        owner: &KeyOwner,
        key: &IdempotencyKey,
        response: StoredResponse,
    ) -> anyhow::Result<()>;

    /// Forgets a claimed key whose request had no effect, so that it can run
    /// again (a key linked to an order stays).
    ///
    /// # Errors
    /// When storage fails.
    async fn release(&self, owner: &KeyOwner, key: &IdempotencyKey) -> anyhow::Result<()>;
}

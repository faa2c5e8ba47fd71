//! Resolving API keys without a database round trip per request: answers of the
//! database's [`ClientDirectory`] are remembered for a few seconds.
//!
//! The revocation bound follows from that: an entry is used for at most `ttl`
//! after it was read, so a key rotated or deleted through another instance stops
//! working here within `ttl` (at most 5 s, checked when the application is
//! assembled). On the instance that made the change the service calls
//! [`forget`](ClientDirectory::forget) right after the write, so there it stops at
//! once. Unknown keys are remembered too, so a client hammering with a bad key
//! costs one query per `ttl`, not one per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ordo_domain::clients::{ApiKeyDigest, Client, ClientDirectory, ClientId};

/// The longest an answer may be remembered: the revocation bound promised to
/// operators (README, "API keys").
pub const MAX_TTL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Lookup {
    Key(String),
    Id(ClientId),
}

#[derive(Debug, Clone)]
struct Remembered {
    client: Option<Arc<Client>>,
    until: Instant,
}

/// A [`ClientDirectory`] that remembers the answers of another for `ttl`, in a
/// cache of bounded size.
pub struct CachedClientDirectory {
    inner: Arc<dyn ClientDirectory>,
    cache: quick_cache::sync::Cache<Lookup, Remembered>,
    ttl: Duration,
    /// Grows with every `forget`: a look-up that started before a change must not
    /// store what it read (the old key) after the change was forgotten.
    generation: AtomicU64,
}

impl std::fmt::Debug for CachedClientDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedClientDirectory")
            .field("ttl", &self.ttl)
            .field("entries", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl CachedClientDirectory {
    /// Remembers answers of `inner` for `ttl`, at most `capacity` of them.
    ///
    /// # Errors
    /// When `ttl` is above [`MAX_TTL`].
    pub fn new(
        inner: Arc<dyn ClientDirectory>,
        ttl: Duration,
        capacity: usize,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            ttl <= MAX_TTL,
            "an API key may be remembered for at most {} ms (asked: {} ms)",
            MAX_TTL.as_millis(),
            ttl.as_millis()
        );
        Ok(Self {
            inner,
            cache: quick_cache::sync::Cache::new(capacity.max(1)),
            ttl,
            generation: AtomicU64::new(0),
        })
    }

    async fn remembered<F>(&self, lookup: Lookup, read: F) -> anyhow::Result<Option<Client>>
    where
        F: std::future::Future<Output = anyhow::Result<Option<Client>>>,
    {
        let now = Instant::now();
        if let Some(entry) = self.cache.get(&lookup)
            && entry.until > now
        {
            return Ok(entry.client.as_deref().cloned());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let client = read.await?;
        if !self.ttl.is_zero() && self.generation.load(Ordering::Acquire) == generation {
            self.cache.insert(
                lookup,
                Remembered {
                    client: client.clone().map(Arc::new),
                    until: now + self.ttl,
                },
            );
        }
        Ok(client)
    }
}

#[async_trait]
impl ClientDirectory for CachedClientDirectory {
    async fn by_key(&self, digest: &ApiKeyDigest) -> anyhow::Result<Option<Client>> {
        let lookup = Lookup::Key(digest.as_str().to_owned());
        self.remembered(lookup, self.inner.by_key(digest)).await
    }

    async fn by_id(&self, id: ClientId) -> anyhow::Result<Option<Client>> {
        self.remembered(Lookup::Id(id), self.inner.by_id(id)).await
    }

    fn forget(&self, id: ClientId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        // Rare (an administrator's change) and over a bounded cache: a scan is fine.
        self.cache.retain(|lookup, entry| {
            *lookup != Lookup::Id(id) && entry.client.as_ref().is_none_or(|c| c.id() != id)
        });
        self.inner.forget(id);
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use ordo_domain::Version;
    use ordo_domain::clients::{
        ClientName, ClientParts, ClientRateLimit, IpAllowList, MockClientDirectory,
    };
    use ordo_domain::customers::Email;

    use super::*;

    fn client(id: ClientId) -> Client {
        Client::restore(ClientParts {
            id,
            name: ClientName::parse("Robot").expect("name"),
            email: Email::parse("robot@example.com").expect("email"),
            ip_allowlist: IpAllowList::default(),
            rate_limit: ClientRateLimit::default(),
            key_prefix: "abcdefgh".into(),
            key_issued_at: Utc::now(),
            version: Version::FIRST,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        })
    }

    fn digest(name: &str) -> ApiKeyDigest {
        ApiKeyDigest::from_hex(name.to_owned())
    }

    #[tokio::test]
    async fn a_key_is_read_once_within_the_ttl_known_or_not() {
        let id = ClientId::generate();
        let mut inner = MockClientDirectory::new();
        inner
            .expect_by_key()
            .withf(|d| d.as_str() == "known")
            .times(1)
            .returning(move |_| Ok(Some(client(id))));
        inner
            .expect_by_key()
            .withf(|d| d.as_str() == "unknown")
            .times(1)
            .returning(|_| Ok(None));
        let cached =
            CachedClientDirectory::new(Arc::new(inner), Duration::from_secs(5), 100).expect("ttl");
        for _ in 0..10 {
            assert_eq!(
                cached
                    .by_key(&digest("known"))
                    .await
                    .expect("read")
                    .map(|c| c.id()),
                Some(id)
            );
            assert!(
                cached
                    .by_key(&digest("unknown"))
                    .await
                    .expect("read")
                    .is_none()
            );
        }
    }

    #[tokio::test]
    async fn an_answer_is_read_again_after_the_ttl() {
        let mut inner = MockClientDirectory::new();
        inner.expect_by_key().times(2).returning(|_| Ok(None));
        let cached = CachedClientDirectory::new(Arc::new(inner), Duration::from_millis(50), 100)
            .expect("ttl");
        cached.by_key(&digest("k")).await.expect("read");
        cached.by_key(&digest("k")).await.expect("read");
        tokio::time::sleep(Duration::from_millis(80)).await;
        cached.by_key(&digest("k")).await.expect("read");
    }

    #[tokio::test]
    async fn forgetting_a_client_drops_its_entries_by_key_and_by_id() {
        let id = ClientId::generate();
        let other = ClientId::generate();
        let mut inner = MockClientDirectory::new();
        inner
            .expect_by_key()
            .withf(|d| d.as_str() == "mine")
            .times(2)
            .returning(move |_| Ok(Some(client(id))));
        inner
            .expect_by_key()
            .withf(|d| d.as_str() == "other")
            .times(1)
            .returning(move |_| Ok(Some(client(other))));
        inner
            .expect_by_id()
            .times(2)
            .returning(move |i| Ok(Some(client(i))));
        inner.expect_forget().times(1).return_const(());
        let cached =
            CachedClientDirectory::new(Arc::new(inner), Duration::from_secs(5), 100).expect("ttl");
        cached.by_key(&digest("mine")).await.expect("read");
        cached.by_key(&digest("other")).await.expect("read");
        cached.by_id(id).await.expect("read");
        cached.forget(id);
        cached.by_key(&digest("mine")).await.expect("read again");
        cached
            .by_key(&digest("other"))
            .await
            .expect("still remembered");
        cached.by_id(id).await.expect("read again");
    }

    #[test]
    fn a_ttl_beyond_the_revocation_bound_is_refused() {
        let inner = Arc::new(MockClientDirectory::new());
        assert!(CachedClientDirectory::new(inner, Duration::from_millis(5001), 10).is_err());
    }
}

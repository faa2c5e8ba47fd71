use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    ApiKey, ApiKeyDigest, Client, ClientChanges, ClientId, DeleteClientError, NewClient,
    RegisterClientError, RotateKeyError, UpdateClientError,
};
use crate::page::{Page, PageRequest};
use crate::value::Version;

/// A client to store: the service has parsed every field and issued its first key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    /// Its id, decided by the service.
    pub id: ClientId,
    /// What the administrator gave.
    pub client: NewClient,
    /// The digest of its first key.
    pub key_digest: ApiKeyDigest,
    /// The prefix of that key, kept in the clear to tell keys apart.
    pub key_prefix: String,
    /// When it is registered (and its key issued).
    pub at: DateTime<Utc>,
}

/// Storage of API clients, for their administration.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ClientRepository: Send + Sync {
    /// Stores a new client as version 1.
    ///
    /// # Errors
    /// When storage fails.
    async fn insert(&self, record: ClientRecord) -> Result<Client, RegisterClientError>;

    /// One client, or `None`.
    ///
    /// # Errors
    /// When storage fails.
    async fn find(&self, id: ClientId) -> anyhow::Result<Option<Client>>;

    /// A page of clients, newest first.
    ///
    /// # Errors
    /// When storage fails.
    async fn list(&self, page: PageRequest) -> anyhow::Result<Page<Client>>;

    /// Applies `changes` when the client is still at `expected` (any when `None`),
    /// as a compare-and-set: of two racing updates expecting one version, one wins.
    ///
    /// # Errors
    /// `NotFound`, `VersionMismatch`.
    async fn update(
        &self,
        id: ClientId,
        changes: ClientChanges,
        expected: Option<Version>,
        at: DateTime<Utc>,
    ) -> Result<Client, UpdateClientError>;

    /// Replaces the client's key by the one stored under `digest`, at once: from
    /// the moment this returns, a look-up by the old digest finds nothing.
    ///
    /// # Errors
    /// `NotFound`.
    async fn replace_key(
        &self,
        id: ClientId,
        digest: ApiKeyDigest,
        prefix: String,
        at: DateTime<Utc>,
    ) -> Result<Client, RotateKeyError>;

    /// Deletes the client and with it its key.
    ///
    /// # Errors
    /// `NotFound`.
    async fn delete(&self, id: ClientId) -> Result<(), DeleteClientError>;
}

/// Finds the client behind a request's credentials. Runs on every request of an
/// API client, so an implementation may remember answers — for at most a few
/// seconds, because a key that was rotated or deleted elsewhere must stop working
/// within that bound.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ClientDirectory: Send + Sync {
    /// The client whose current key has `digest`, or `None`.
    ///
    /// # Errors
    /// When storage fails.
    async fn by_key(&self, digest: &ApiKeyDigest) -> anyhow::Result<Option<Client>>;

    /// The client `id`, or `None` when it no longer exists.
    ///
    /// # Errors
    /// When storage fails.
    async fn by_id(&self, id: ClientId) -> anyhow::Result<Option<Client>>;

    /// Forgets anything remembered about client `id`: called after every change to
    /// it, so that on this instance the change holds from the next request on.
    fn forget(&self, id: ClientId);
}

/// Makes API keys and the digests they are stored under.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait ApiKeys: Send + Sync {
    /// A new key from a cryptographically secure random source.
    fn new_key(&self) -> ApiKey;

    /// The digest `key` is stored and looked up under; the same key always gives
    /// the same digest.
    fn digest(&self, key: &ApiKey) -> ApiKeyDigest;
}

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

use super::{
    ApiKey, ApiKeys, AuthenticateClientError, Client, ClientChanges, ClientDirectory, ClientId,
    ClientRecord, ClientRepository, DeleteClientError, IssuedKey, NewClient, RegisterClientError,
    RotateKeyError, UpdateClientError,
};
use crate::auth::{AccessClaims, AccessTokens, Principal};
use crate::clock::Clock;
use crate::ids::IdSource;
use crate::page::{Page, PageRequest};
use crate::value::VersionMatch;

/// What a client exchanging its key receives: an access token, and no refresh
/// token (the key itself obtains the next one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSession {
    /// A signed access token of kind `client`.
    pub access_token: String,
    /// How long it is accepted from now.
    pub expires_in: Duration,
}

/// The API clients' use cases: their administration, and admitting their requests.
#[derive(Clone)]
pub struct ClientService {
    clients: Arc<dyn ClientRepository>,
    directory: Arc<dyn ClientDirectory>,
    keys: Arc<dyn ApiKeys>,
    access_tokens: Arc<dyn AccessTokens>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    access_ttl: Duration,
}

impl std::fmt::Debug for ClientService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientService")
            .field("access_ttl", &self.access_ttl)
            .finish_non_exhaustive()
    }
}

impl ClientService {
    /// A service over the given ports; access tokens obtained with a key live
    /// `access_ttl`.
    pub fn new(
        clients: Arc<dyn ClientRepository>,
        directory: Arc<dyn ClientDirectory>,
        keys: Arc<dyn ApiKeys>,
        access_tokens: Arc<dyn AccessTokens>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        access_ttl: Duration,
    ) -> Self {
        Self {
            clients,
            directory,
            keys,
            access_tokens,
            clock,
            ids,
            access_ttl,
        }
    }

    /// Registers a client and issues its first key, which is returned this once.
    ///
    /// # Errors
    /// When storage fails.
    #[tracing::instrument(skip_all)]
    pub async fn register(&self, client: NewClient) -> Result<IssuedKey, RegisterClientError> {
        let api_key = self.keys.new_key();
        let client = self
            .clients
            .insert(ClientRecord {
                id: ClientId::from_uuid(self.ids.new_id()),
                client,
                key_digest: self.keys.digest(&api_key),
                key_prefix: api_key.prefix().to_owned(),
                at: self.clock.now(),
            })
            .await?;
        Ok(IssuedKey { client, api_key })
    }

    /// One client, or `None`.
    ///
    /// # Errors
    /// When storage fails.
    #[tracing::instrument(skip_all, fields(client_id = %id))]
    pub async fn get(&self, id: ClientId) -> anyhow::Result<Option<Client>> {
        self.clients.find(id).await
    }

    /// A page of clients, newest first.
    ///
    /// # Errors
    /// When storage fails.
    #[tracing::instrument(skip_all)]
    pub async fn list(&self, page: PageRequest) -> anyhow::Result<Page<Client>> {
        self.clients.list(page).await
    }

    /// Changes a client's name, allow-list or rate limit, optionally only if still
    /// at `expected`. The change applies to the client's next request on this
    /// instance, and within the directory's bound on every other.
    ///
    /// # Errors
    /// `NotFound`, `VersionMismatch`.
    #[tracing::instrument(skip_all, fields(client_id = %id))]
    pub async fn update(
        &self,
        id: ClientId,
        changes: ClientChanges,
        expected: Option<VersionMatch>,
    ) -> Result<Client, UpdateClientError> {
        // A single expected version is compared-and-set by storage without a read;
        // changing nothing, or naming several versions, needs the current one first.
        let single = expected.as_ref().and_then(VersionMatch::single);
        let updated = if changes.is_empty() || (expected.is_some() && single.is_none()) {
            let current = self
                .clients
                .find(id)
                .await?
                .ok_or(UpdateClientError::NotFound(id))?;
            if expected.is_some_and(|expected| !expected.admits(current.version())) {
                return Err(UpdateClientError::VersionMismatch(id));
            }
            if changes.is_empty() {
                return Ok(current);
            }
            self.clients
                .update(id, changes, Some(current.version()), self.clock.now())
                .await
        } else {
            self.clients
                .update(id, changes, single, self.clock.now())
                .await
        };
        self.directory.forget(id);
        updated
    }

    /// Issues a new key to the client; the old one stops working at once on this
    /// instance (and within the directory's bound on every other), and so do access
    /// tokens obtained with it.
    ///
    /// # Errors
    /// `NotFound`.
    #[tracing::instrument(skip_all, fields(client_id = %id))]
    pub async fn rotate_key(&self, id: ClientId) -> Result<IssuedKey, RotateKeyError> {
        let api_key = self.keys.new_key();
        let replaced = self
            .clients
            .replace_key(
                id,
                self.keys.digest(&api_key),
                api_key.prefix().to_owned(),
                self.clock.now(),
            )
            .await;
        self.directory.forget(id);
        Ok(IssuedKey {
            client: replaced?,
            api_key,
        })
    }

    /// Deletes a client; its key stops working as after a rotation.
    ///
    /// # Errors
    /// `NotFound`.
    #[tracing::instrument(skip_all, fields(client_id = %id))]
    pub async fn delete(&self, id: ClientId) -> Result<(), DeleteClientError> {
        let deleted = self.clients.delete(id).await;
        self.directory.forget(id);
        deleted
    }

    /// The client whose key `presented` is, calling from `from`.
    ///
    /// # Errors
    /// `InvalidKey` for anything but a current key (malformed ones are refused
    /// without a look-up); `IpNotAllowed` when the client's allow-list excludes
    /// `from`.
    pub async fn authenticate_key(
        &self,
        presented: &str,
        from: IpAddr,
    ) -> Result<Client, AuthenticateClientError> {
        let key = ApiKey::parse(presented).map_err(|_| AuthenticateClientError::InvalidKey)?;
        let client = self
            .directory
            .by_key(&self.keys.digest(&key))
            .await?
            .ok_or(AuthenticateClientError::InvalidKey)?;
        admit(client, from)
    }

    /// The client an access token of kind `client`, issued at `issued_at`, speaks
    /// for, calling from `from`: the token is only as good as the key it was
    /// obtained with.
    ///
    /// # Errors
    /// `InvalidKey` when the client was deleted or its key replaced after the token
    /// was issued; `IpNotAllowed` as for a key.
    pub async fn authenticate_token(
        &self,
        id: ClientId,
        issued_at: DateTime<Utc>,
        from: IpAddr,
    ) -> Result<Client, AuthenticateClientError> {
        let client = self
            .directory
            .by_id(id)
            .await?
            .ok_or(AuthenticateClientError::InvalidKey)?;
        // Tokens carry whole seconds: one issued in the second of a rotation is
        // given the benefit of the doubt rather than refusing the new key's tokens.
        if issued_at < client.key_issued_at().trunc_subsecs(0) {
            return Err(AuthenticateClientError::InvalidKey);
        }
        admit(client, from)
    }

    /// Exchanges a key for a short-lived access token of kind `client`.
    ///
    /// # Errors
    /// As [`authenticate_key`](Self::authenticate_key).
    #[tracing::instrument(skip_all)]
    pub async fn exchange_key(
        &self,
        presented: &str,
        from: IpAddr,
    ) -> Result<ClientSession, AuthenticateClientError> {
        let client = self.authenticate_key(presented, from).await?;
        let now = self.clock.now();
        let ttl = TimeDelta::from_std(self.access_ttl)
            .context("an access token lifetime beyond what a timestamp can hold")?;
        let access_token = self.access_tokens.issue(&AccessClaims {
            principal: Principal::Client {
                id: client.id().as_uuid(),
            },
            issued_at: now,
            expires_at: now + ttl,
        })?;
        Ok(ClientSession {
            access_token,
            expires_in: self.access_ttl,
        })
    }
}

fn admit(client: Client, from: IpAddr) -> Result<Client, AuthenticateClientError> {
    if client.ip_allowlist().allows(from) {
        Ok(client)
    } else {
        Err(AuthenticateClientError::IpNotAllowed)
    }
}

#[cfg(test)]
mod tests;

//! API clients in PostgreSQL: their administration ([`ClientRepository`]) and the
//! look-up of a request's key ([`ClientDirectory`], uncached here: the server puts
//! a short-lived cache in front of it). Contact addresses are stored sealed under
//! the data key (see [`FieldCipher`]); rows written before sealing existed keep
//! their plaintext column until `crate::sealing` seals them, and both forms read
//! alike.

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use ordo_domain::clients::{
    ApiKeyDigest, Client, ClientChanges, ClientDirectory, ClientId, ClientName, ClientParts,
    ClientRateLimit, ClientRecord, ClientRepository, DeleteClientError, IpAllowList,
    RegisterClientError, RotateKeyError, UpdateClientError,
};
use ordo_domain::customers::Email;
use ordo_domain::sealing::{FieldCipher, SealedField};
use ordo_domain::{Page, PageRequest, Version};
use uuid::Uuid;

use crate::errors::Doing;
use crate::pool::{PgPool, checkout};
use crate::schema::api_clients;
use crate::sealing::open_sealed;

/// [`ClientRepository`] and [`ClientDirectory`] over PostgreSQL.
#[derive(Clone)]
pub struct PgClientRepository {
    pool: PgPool,
    cipher: Arc<dyn FieldCipher>,
}

impl std::fmt::Debug for PgClientRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgClientRepository").finish_non_exhaustive()
    }
}

impl PgClientRepository {
    /// A repository using connections from `pool`, sealing contact addresses with
    /// `cipher`.
    pub fn new(pool: PgPool, cipher: Arc<dyn FieldCipher>) -> Self {
        Self { pool, cipher }
    }
}

/// A client's contact address as stored: sealed, or in the plaintext of rows not
/// sealed yet (the table's check constraint allows exactly one of the two forms).
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = api_clients, check_for_backend(diesel::pg::Pg))]
pub(crate) struct StoredClientEmail {
    email_plaintext: Option<String>,
    email_sealed: Option<Vec<u8>>,
    data_key_id: Option<String>,
}

impl StoredClientEmail {
    /// The key the address is sealed under, `None` for plaintext.
    pub(crate) fn key_id(&self) -> Option<&str> {
        self.data_key_id.as_deref()
    }

    /// The address of the client `id`, opened when sealed.
    pub(crate) fn open(self, id: Uuid, cipher: &dyn FieldCipher) -> anyhow::Result<Email> {
        let email = match (self.email_plaintext, self.email_sealed, self.data_key_id) {
            (Some(email), None, None) => email,
            (None, Some(sealed), Some(key_id)) => {
                open_sealed(cipher, SealedField::ClientEmail, id, &key_id, sealed)?
            }
            _ => anyhow::bail!("its e-mail address is neither plaintext nor sealed"),
        };
        Ok(Email::parse(&email)?)
    }
}

/// A contact address sealed under the current key, ready to be written.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = api_clients)]
pub(crate) struct SealedClientEmail {
    pub(crate) email_sealed: Option<Vec<u8>>,
    pub(crate) data_key_id: Option<String>,
    /// Always `None`: writing the sealed address clears any plaintext.
    email_plaintext: Option<String>,
}

impl SealedClientEmail {
    /// `email` of the client `id`, sealed under the current key.
    pub(crate) fn seal(cipher: &dyn FieldCipher, id: Uuid, email: &Email) -> anyhow::Result<Self> {
        let sealed = cipher.seal(SealedField::ClientEmail, id, email.as_str())?;
        Ok(Self {
            email_sealed: Some(sealed.bytes),
            data_key_id: Some(sealed.key_id.as_str().to_owned()),
            email_plaintext: None,
        })
    }
}

fn rate_column(value: u32) -> i32 {
    // ClientRateLimit bounds both numbers far below i32::MAX.
    i32::try_from(value).unwrap_or(i32::MAX)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = api_clients, check_for_backend(diesel::pg::Pg))]
struct ClientRow {
    id: Uuid,
    name: String,
    #[diesel(embed)]
    email: StoredClientEmail,
    ip_allowlist: Vec<String>,
    rate_limit_per_minute: i32,
    rate_limit_burst: i32,
    key_prefix: String,
    key_issued_at: DateTime<Utc>,
    version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ClientRow {
    fn into_domain(self, cipher: &dyn FieldCipher) -> anyhow::Result<Client> {
        let id = self.id;
        let parts = (|| {
            anyhow::Ok(ClientParts {
                id: ClientId::from_uuid(self.id),
                name: ClientName::parse(&self.name)?,
                email: self.email.open(id, cipher)?,
                ip_allowlist: IpAllowList::parse(&self.ip_allowlist)?,
                rate_limit: ClientRateLimit::new(
                    u32::try_from(self.rate_limit_per_minute)?,
                    u32::try_from(self.rate_limit_burst)?,
                )?,
                key_prefix: self.key_prefix,
                key_issued_at: self.key_issued_at,
                version: Version::new(self.version)?,
                created_at: self.created_at,
                updated_at: self.updated_at,
            })
        })()
        .with_context(|| format!("client {id} holds values Ordo cannot read"))?;
        Ok(Client::restore(parts))
    }
}

#[derive(Insertable)]
#[diesel(table_name = api_clients)]
struct NewClientRow {
    id: Uuid,
    name: String,
    #[diesel(embed)]
    email: SealedClientEmail,
    ip_allowlist: Vec<String>,
    rate_limit_per_minute: i32,
    rate_limit_burst: i32,
    key_digest: String,
    key_prefix: String,
    key_issued_at: DateTime<Utc>,
    version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(AsChangeset)]
#[diesel(table_name = api_clients)]
struct ClientChangeset {
    name: Option<String>,
    ip_allowlist: Option<Vec<String>>,
    rate_limit_per_minute: Option<i32>,
    rate_limit_burst: Option<i32>,
    updated_at: DateTime<Utc>,
}

impl PgClientRepository {
    /// The one client `query` selects, or `None`.
    async fn load_one(
        &self,
        query: api_clients::BoxedQuery<'_, diesel::pg::Pg>,
        doing: &'static str,
    ) -> anyhow::Result<Option<Client>> {
        let mut conn = checkout(&self.pool).await?;
        query
            .select(ClientRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .doing(doing)?
            .map(|row| row.into_domain(&*self.cipher))
            .transpose()
    }

    async fn exists(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        id: ClientId,
    ) -> anyhow::Result<bool> {
        diesel::select(diesel::dsl::exists(
            api_clients::table.filter(api_clients::id.eq(id.as_uuid())),
        ))
        .get_result::<bool>(conn)
        .await
        .doing("checking a client exists")
    }
}

#[async_trait]
impl ClientRepository for PgClientRepository {
    #[tracing::instrument(skip_all, fields(client_id = %record.id))]
    async fn insert(&self, record: ClientRecord) -> Result<Client, RegisterClientError> {
        let ClientRecord {
            id,
            client,
            key_digest,
            key_prefix,
            at,
        } = record;
        let row = NewClientRow {
            id: id.as_uuid(),
            name: client.name.as_str().to_owned(),
            email: SealedClientEmail::seal(&*self.cipher, id.as_uuid(), &client.email)?,
            ip_allowlist: client.ip_allowlist.entries(),
            rate_limit_per_minute: rate_column(client.rate_limit.requests_per_minute()),
            rate_limit_burst: rate_column(client.rate_limit.burst()),
            key_digest: key_digest.as_str().to_owned(),
            key_prefix,
            key_issued_at: at,
            version: Version::FIRST.get(),
            created_at: at,
            updated_at: at,
        };
        let mut conn = checkout(&self.pool).await?;
        let stored = diesel::insert_into(api_clients::table)
            .values(row)
            .returning(ClientRow::as_returning())
            .get_result(&mut conn)
            .await
            .doing("inserting a client")?;
        Ok(stored.into_domain(&*self.cipher)?)
    }

    #[tracing::instrument(skip_all, fields(client_id = %id))]
    async fn find(&self, id: ClientId) -> anyhow::Result<Option<Client>> {
        let query = api_clients::table
            .filter(api_clients::id.eq(id.as_uuid()))
            .into_boxed();
        self.load_one(query, "loading a client").await
    }

    #[tracing::instrument(skip_all)]
    async fn list(&self, page: PageRequest) -> anyhow::Result<Page<Client>> {
        let mut conn = checkout(&self.pool).await?;
        let mut query = api_clients::table
            .select(ClientRow::as_select())
            .order(api_clients::id.desc())
            .limit(i64::from(page.limit.get()) + 1)
            .into_boxed();
        if let Some(after) = page.after {
            query = query.filter(api_clients::id.lt(after));
        }
        let rows = query.load(&mut conn).await.doing("listing clients")?;
        let clients = rows
            .into_iter()
            .map(|row| row.into_domain(&*self.cipher))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Page::from_overfetched(clients, page.limit, |c| {
            c.id().as_uuid()
        }))
    }

    #[tracing::instrument(skip_all, fields(client_id = %id))]
    async fn update(
        &self,
        id: ClientId,
        changes: ClientChanges,
        expected: Option<Version>,
        at: DateTime<Utc>,
    ) -> Result<Client, UpdateClientError> {
        let changeset = ClientChangeset {
            name: changes.name.map(|n| n.as_str().to_owned()),
            ip_allowlist: changes.ip_allowlist.map(|list| list.entries()),
            rate_limit_per_minute: changes
                .rate_limit
                .map(|l| rate_column(l.requests_per_minute())),
            rate_limit_burst: changes.rate_limit.map(|l| rate_column(l.burst())),
            updated_at: at,
        };
        let mut conn = checkout(&self.pool).await?;
        let mut query = diesel::update(api_clients::table)
            .filter(api_clients::id.eq(id.as_uuid()))
            .into_boxed();
        if let Some(expected) = expected {
            query = query.filter(api_clients::version.eq(expected.get()));
        }
        let updated = query
            .set((changeset, api_clients::version.eq(api_clients::version + 1)))
            .returning(ClientRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .doing("updating a client")?;
        match updated {
            Some(row) => Ok(row.into_domain(&*self.cipher)?),
            None if self.exists(&mut conn, id).await? => {
                Err(UpdateClientError::VersionMismatch(id))
            }
            None => Err(UpdateClientError::NotFound(id)),
        }
    }

    #[tracing::instrument(skip_all, fields(client_id = %id))]
    async fn replace_key(
        &self,
        id: ClientId,
        digest: ApiKeyDigest,
        prefix: String,
        at: DateTime<Utc>,
    ) -> Result<Client, RotateKeyError> {
        let mut conn = checkout(&self.pool).await?;
        // One statement: the old digest is gone in the same instant the new one
        // appears, so there is no moment with both keys or neither.
        let updated = diesel::update(api_clients::table.find(id.as_uuid()))
            .set((
                api_clients::key_digest.eq(digest.as_str()),
                api_clients::key_prefix.eq(prefix),
                api_clients::key_issued_at.eq(at),
                api_clients::updated_at.eq(at),
                api_clients::version.eq(api_clients::version + 1),
            ))
            .returning(ClientRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .doing("replacing a client's key")?;
        match updated {
            Some(row) => Ok(row.into_domain(&*self.cipher)?),
            None => Err(RotateKeyError::NotFound(id)),
        }
    }

    #[tracing::instrument(skip_all, fields(client_id = %id))]
    async fn delete(&self, id: ClientId) -> Result<(), DeleteClientError> {
        let mut conn = checkout(&self.pool).await?;
        let deleted = diesel::delete(api_clients::table.find(id.as_uuid()))
            .execute(&mut conn)
            .await
            .doing("deleting a client")?;
        if deleted == 0 {
            return Err(DeleteClientError::NotFound(id));
        }
        Ok(())
    }
}

#[async_trait]
impl ClientDirectory for PgClientRepository {
    #[tracing::instrument(skip_all)]
    async fn by_key(&self, digest: &ApiKeyDigest) -> anyhow::Result<Option<Client>> {
        let query = api_clients::table
            .filter(api_clients::key_digest.eq(digest.as_str()))
            .into_boxed();
        self.load_one(query, "loading a client by its key").await
    }

    async fn by_id(&self, id: ClientId) -> anyhow::Result<Option<Client>> {
        ClientRepository::find(self, id).await
    }

    fn forget(&self, _: ClientId) {
        // Nothing is remembered here.
    }
}

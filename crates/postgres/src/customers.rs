//! Customers in PostgreSQL. E-mail addresses and phone numbers are stored sealed
//! under the data key (see [`FieldCipher`]); uniqueness of addresses is enforced on
//! their blind index. Rows written before sealing existed keep their plaintext
//! columns until `crate::sealing` seals them; both forms read alike.

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ordo_domain::customers::{
    City, CreateCustomerError, Customer, CustomerChanges, CustomerId, CustomerName,
    CustomerRepository, DeleteCustomerError, Email, NewCustomer, Phone, UpdateCustomerError,
};
use ordo_domain::sealing::{FieldCipher, SealedField};
use ordo_domain::{Page, PageRequest, Version};
use uuid::Uuid;

use crate::errors::{Doing, TxError, foreign_key_violation, unexpected, unique_violation};
use crate::pool::{PgPool, checkout};
use crate::schema::{customers, orders};
use crate::sealing::open_sealed;

/// [`CustomerRepository`] over PostgreSQL.
#[derive(Clone)]
pub struct PgCustomerRepository {
    pool: PgPool,
    cipher: Arc<dyn FieldCipher>,
}

impl std::fmt::Debug for PgCustomerRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCustomerRepository")
            .finish_non_exhaustive()
    }
}

impl PgCustomerRepository {
    /// A repository using connections from `pool`, sealing contacts with `cipher`.
    pub fn new(pool: PgPool, cipher: Arc<dyn FieldCipher>) -> Self {
        Self { pool, cipher }
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = customers, check_for_backend(diesel::pg::Pg))]
struct CustomerRow {
    id: Uuid,
    name: String,
    city: String,
    #[diesel(embed)]
    contacts: StoredContacts,
    version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl CustomerRow {
    fn into_domain(self, cipher: &dyn FieldCipher) -> anyhow::Result<Customer> {
        let id = self.id;
        let restored = || {
            let (email, phone) = self.contacts.open(id, cipher)?;
            Ok::<_, anyhow::Error>(Customer::restore(
                CustomerId::from_uuid(id),
                CustomerName::parse(&self.name)?,
                email,
                City::parse(&self.city)?,
                phone,
                Version::new(self.version)?,
                self.created_at,
                self.updated_at,
            ))
        };
        restored().with_context(|| format!("customer {id} holds values Ordo cannot read"))
    }
}

/// A customer's e-mail address and phone number as stored: sealed, or in the
/// plaintext of rows not sealed yet (the table's check constraint allows exactly
/// one of the two forms).
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = customers, check_for_backend(diesel::pg::Pg))]
pub(crate) struct StoredContacts {
    email: Option<String>,
    phone: Option<String>,
    email_sealed: Option<Vec<u8>>,
    phone_sealed: Option<Vec<u8>>,
    data_key_id: Option<String>,
}

impl StoredContacts {
    /// The key the contacts are sealed under, `None` for plaintext.
    pub(crate) fn key_id(&self) -> Option<&str> {
        self.data_key_id.as_deref()
    }

    /// The address and phone number of the customer `id`, opened when sealed.
    pub(crate) fn open(
        self,
        id: Uuid,
        cipher: &dyn FieldCipher,
    ) -> anyhow::Result<(Email, Option<Phone>)> {
        let Self {
            email,
            phone,
            email_sealed,
            phone_sealed,
            data_key_id,
        } = self;
        let (email, phone) = match (email, email_sealed, data_key_id) {
            (Some(email), None, None) => (email, phone),
            (None, Some(email_sealed), Some(key_id)) => {
                let open = |field, bytes| open_sealed(cipher, field, id, &key_id, bytes);
                (
                    open(SealedField::CustomerEmail, email_sealed)?,
                    phone_sealed
                        .map(|bytes| open(SealedField::CustomerPhone, bytes))
                        .transpose()?,
                )
            }
            _ => anyhow::bail!("its e-mail address is neither plaintext nor sealed"),
        };
        Ok((
            Email::parse(&email)?,
            phone.as_deref().map(Phone::parse).transpose()?,
        ))
    }
}

/// Contacts sealed under the current key, ready to be written.
#[derive(Debug, Clone, AsChangeset, Insertable)]
#[diesel(table_name = customers, treat_none_as_null = true)]
pub(crate) struct SealedContacts {
    pub(crate) email_sealed: Option<Vec<u8>>,
    pub(crate) email_index: Option<Vec<u8>>,
    pub(crate) phone_sealed: Option<Vec<u8>>,
    pub(crate) data_key_id: Option<String>,
    /// Always `None`: writing sealed contacts clears any plaintext.
    email: Option<String>,
    email_key: Option<String>,
    phone: Option<String>,
}

impl SealedContacts {
    /// `email` and `phone` of the customer `id`, sealed under the current key, with
    /// the address's blind index.
    pub(crate) fn seal(
        cipher: &dyn FieldCipher,
        id: Uuid,
        email: &Email,
        phone: Option<&Phone>,
    ) -> anyhow::Result<Self> {
        let email_sealed = cipher.seal(SealedField::CustomerEmail, id, email.as_str())?;
        let phone_sealed = phone
            .map(|p| cipher.seal(SealedField::CustomerPhone, id, p.as_str()))
            .transpose()?;
        Ok(Self {
            data_key_id: Some(email_sealed.key_id.as_str().to_owned()),
            email_sealed: Some(email_sealed.bytes),
            email_index: Some(
                cipher
                    .blind_index(SealedField::CustomerEmail, &email.lookup_key())
                    .into_bytes(),
            ),
            phone_sealed: phone_sealed.map(|s| s.bytes),
            email: None,
            email_key: None,
            phone: None,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = customers)]
struct NewCustomerRow {
    id: Uuid,
    name: String,
    city: String,
    #[diesel(embed)]
    contacts: SealedContacts,
    version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// What storage decides when a row is written.
type Stamps = (i32, DateTime<Utc>, DateTime<Utc>);

const STAMPS: (
    customers::version,
    customers::created_at,
    customers::updated_at,
) = (
    customers::version,
    customers::created_at,
    customers::updated_at,
);

/// The unique index on the blind index of the address.
pub(crate) const EMAIL_INDEX: &str = "customers_email_index";

fn restore(
    id: CustomerId,
    name: CustomerName,
    email: Email,
    city: City,
    phone: Option<Phone>,
    (version, created_at, updated_at): Stamps,
) -> anyhow::Result<Customer> {
    Ok(Customer::restore(
        id,
        name,
        email,
        city,
        phone,
        Version::new(version)?,
        created_at,
        updated_at,
    ))
}

impl PgCustomerRepository {
    /// Whether another customer than `except` holds `email` sealed under a previous
    /// key. The unique index compares indexes under one key only, so during a key
    /// rotation the indexes under older keys are compared here. Racing writers both
    /// write under the current key, where the unique index decides.
    async fn email_taken_under_previous_keys(
        &self,
        conn: &mut AsyncPgConnection,
        email: &Email,
        except: Uuid,
    ) -> diesel::QueryResult<bool> {
        let previous: Vec<Vec<u8>> = self
            .cipher
            .previous_blind_indexes(SealedField::CustomerEmail, &email.lookup_key())
            .into_iter()
            .map(|index| index.into_bytes())
            .collect();
        if previous.is_empty() {
            return Ok(false);
        }
        diesel::select(diesel::dsl::exists(
            customers::table
                .filter(customers::email_index.eq_any(previous))
                .filter(customers::id.ne(except)),
        ))
        .get_result(conn)
        .await
    }
}

#[async_trait]
impl CustomerRepository for PgCustomerRepository {
    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %id))]
    async fn insert(
        &self,
        id: CustomerId,
        customer: NewCustomer,
        at: DateTime<Utc>,
    ) -> Result<Customer, CreateCustomerError> {
        let contacts = SealedContacts::seal(
            &*self.cipher,
            id.as_uuid(),
            &customer.email,
            customer.phone.as_ref(),
        )?;
        let row = NewCustomerRow {
            id: id.as_uuid(),
            name: customer.name.as_str().to_owned(),
            city: customer.city.as_str().to_owned(),
            contacts,
            version: Version::FIRST.get(),
            created_at: at,
            updated_at: at,
        };
        let mut conn = checkout(&self.pool).await?;
        if self
            .email_taken_under_previous_keys(&mut conn, &customer.email, id.as_uuid())
            .await
            .doing("checking a customer's e-mail address is free")?
        {
            return Err(CreateCustomerError::EmailTaken);
        }
        let stamps = diesel::insert_into(customers::table)
            .values(row)
            .returning(STAMPS)
            .get_result(&mut conn)
            .await
            .map_err(|e| match unique_violation(&e) {
                Some(EMAIL_INDEX) => CreateCustomerError::EmailTaken,
                _ => unexpected(e, "inserting a customer").into(),
            })?;
        let NewCustomer {
            name,
            email,
            city,
            phone,
        } = customer;
        Ok(restore(id, name, email, city, phone, stamps)?)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %id))]
    async fn find(&self, id: CustomerId) -> anyhow::Result<Option<Customer>> {
        let mut conn = checkout(&self.pool).await?;
        customers::table
            .find(id.as_uuid())
            .select(CustomerRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .context("loading a customer")?
            .map(|row| row.into_domain(&*self.cipher))
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list(&self, page: PageRequest) -> anyhow::Result<Page<Customer>> {
        let mut conn = checkout(&self.pool).await?;
        let mut query = customers::table
            .select(CustomerRow::as_select())
            .order(customers::id.desc())
            .limit(i64::from(page.limit.get()) + 1)
            .into_boxed();
        if let Some(after) = page.after {
            query = query.filter(customers::id.lt(after));
        }
        let rows = query.load(&mut conn).await.context("listing customers")?;
        let customers = rows
            .into_iter()
            .map(|row| row.into_domain(&*self.cipher))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Page::from_overfetched(customers, page.limit, |c| {
            c.id().as_uuid()
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %id))]
    async fn update(
        &self,
        id: CustomerId,
        changes: CustomerChanges,
        expected: Option<Version>,
        at: DateTime<Utc>,
    ) -> Result<Customer, UpdateCustomerError> {
        // Every contact of a row is sealed under one key (`data_key_id`), so a change
        // of one seals the others again too: the current row is read first, locked
        // against a concurrent change between the read and the write.
        let mut conn = checkout(&self.pool).await?;
        let result = conn
            .transaction(
                async |conn| -> Result<Customer, TxError<UpdateCustomerError>> {
                    let row = customers::table
                        .find(id.as_uuid())
                        .select(CustomerRow::as_select())
                        .for_update()
                        .first(conn)
                        .await
                        .optional()?
                        .ok_or(TxError::Rule(UpdateCustomerError::NotFound(id)))?;
                    if expected.is_some_and(|expected| expected.get() != row.version) {
                        return Err(TxError::Rule(UpdateCustomerError::VersionMismatch(id)));
                    }
                    let current = row
                        .into_domain(&*self.cipher)
                        .map_err(|e| TxError::Rule(e.into()))?;
                    let CustomerChanges {
                        name,
                        email,
                        city,
                        phone,
                    } = changes;
                    if let Some(email) = &email
                        && self
                            .email_taken_under_previous_keys(conn, email, id.as_uuid())
                            .await?
                    {
                        return Err(TxError::Rule(UpdateCustomerError::EmailTaken));
                    }
                    let name = name.unwrap_or_else(|| current.name().clone());
                    let email = email.unwrap_or_else(|| current.email().clone());
                    let city = city.unwrap_or_else(|| current.city().clone());
                    let phone = phone.unwrap_or_else(|| current.phone().cloned());
                    let contacts =
                        SealedContacts::seal(&*self.cipher, id.as_uuid(), &email, phone.as_ref())
                            .map_err(|e| TxError::Rule(e.into()))?;
                    let stamps = diesel::update(customers::table.find(id.as_uuid()))
                        .set((
                            customers::name.eq(name.as_str()),
                            customers::city.eq(city.as_str()),
                            contacts,
                            customers::version.eq(customers::version + 1),
                            customers::updated_at.eq(at),
                        ))
                        .returning(STAMPS)
                        .get_result(conn)
                        .await
                        .map_err(|e| match unique_violation(&e) {
                            Some(EMAIL_INDEX) => TxError::Rule(UpdateCustomerError::EmailTaken),
                            _ => TxError::Database(e),
                        })?;
                    restore(id, name, email, city, phone, stamps)
                        .map_err(|e| TxError::Rule(e.into()))
                },
            )
            .await;
        result.map_err(|e| e.into_domain("updating a customer"))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %id))]
    async fn delete(&self, id: CustomerId) -> Result<(), DeleteCustomerError> {
        let mut conn = checkout(&self.pool).await?;
        let has_orders = diesel::select(diesel::dsl::exists(
            orders::table.filter(orders::customer_id.eq(id.as_uuid())),
        ))
        .get_result::<bool>(&mut conn)
        .await
        .context("checking a customer's orders")?;
        if has_orders {
            return Err(DeleteCustomerError::HasOrders(id));
        }
        match diesel::delete(customers::table.find(id.as_uuid()))
            .execute(&mut conn)
            .await
        {
            Ok(0) => Err(DeleteCustomerError::NotFound(id)),
            Ok(_) => Ok(()),
            // An order arrived between the check and the delete; the foreign key held.
            Err(e) if foreign_key_violation(&e).is_some() => {
                Err(DeleteCustomerError::HasOrders(id))
            }
            Err(e) => Err(unexpected(e, "deleting a customer").into()),
        }
    }
}

//! Customers in PostgreSQL.

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use ordo_domain::customers::{
    City, CreateCustomerError, Customer, CustomerChanges, CustomerId, CustomerName,
    CustomerRepository, DeleteCustomerError, Email, NewCustomer, Phone, UpdateCustomerError,
};
use ordo_domain::{Page, PageRequest, Version};
use uuid::Uuid;

use crate::errors::{foreign_key_violation, unexpected, unique_violation};
use crate::pool::{PgPool, checkout};
use crate::schema::{customers, orders};

/// [`CustomerRepository`] over PostgreSQL.
#[derive(Clone)]
pub struct PgCustomerRepository {
    pool: PgPool,
}

impl std::fmt::Debug for PgCustomerRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCustomerRepository")
            .finish_non_exhaustive()
    }
}

impl PgCustomerRepository {
    /// A repository using connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = customers, check_for_backend(diesel::pg::Pg))]
struct CustomerRow {
    id: Uuid,
    name: String,
    email: String,
    email_key: String,
    city: String,
    phone: Option<String>,
    version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl CustomerRow {
    fn into_domain(self) -> anyhow::Result<Customer> {
        Ok::<_, anyhow::Error>(Customer::restore(
            CustomerId::from_uuid(self.id),
            CustomerName::parse(&self.name)?,
            Email::parse(&self.email)?,
            City::parse(&self.city)?,
            self.phone.as_deref().map(Phone::parse).transpose()?,
            Version::new(self.version)?,
            self.created_at,
            self.updated_at,
        ))
        .with_context(|| format!("customer {} holds values Ordo never writes", self.id))
    }
}

#[derive(Debug, AsChangeset)]
#[diesel(table_name = customers)]
struct CustomerChangeset {
    name: Option<String>,
    email: Option<String>,
    email_key: Option<String>,
    city: Option<String>,
    phone: Option<Option<String>>,
    updated_at: DateTime<Utc>,
}

const EMAIL_KEY: &str = "customers_email_key";

#[async_trait]
impl CustomerRepository for PgCustomerRepository {
    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %id))]
    async fn insert(
        &self,
        id: CustomerId,
        customer: NewCustomer,
        at: DateTime<Utc>,
    ) -> Result<Customer, CreateCustomerError> {
        let row = CustomerRow {
            id: id.as_uuid(),
            name: customer.name.as_str().to_owned(),
            email: customer.email.as_str().to_owned(),
            email_key: customer.email.lookup_key(),
            city: customer.city.as_str().to_owned(),
            phone: customer.phone.as_ref().map(|p| p.as_str().to_owned()),
            version: Version::FIRST.get(),
            created_at: at,
            updated_at: at,
        };
        let mut conn = checkout(&self.pool).await?;
        let stored = diesel::insert_into(customers::table)
            .values(row)
            .returning(CustomerRow::as_returning())
            .get_result(&mut conn)
            .await
            .map_err(|e| match unique_violation(&e) {
                Some(EMAIL_KEY) => CreateCustomerError::EmailTaken,
                _ => unexpected(e, "inserting a customer").into(),
            })?;
        Ok(stored.into_domain()?)
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
            .map(CustomerRow::into_domain)
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
            .map(CustomerRow::into_domain)
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
        let changeset = CustomerChangeset {
            name: changes.name.map(|n| n.as_str().to_owned()),
            email_key: changes.email.as_ref().map(Email::lookup_key),
            email: changes.email.map(|e| e.as_str().to_owned()),
            city: changes.city.map(|c| c.as_str().to_owned()),
            phone: changes.phone.map(|p| p.map(|p| p.as_str().to_owned())),
            updated_at: at,
        };
        let mut conn = checkout(&self.pool).await?;
        let mut query = diesel::update(customers::table)
            .filter(customers::id.eq(id.as_uuid()))
            .into_boxed();
        if let Some(expected) = expected {
            query = query.filter(customers::version.eq(expected.get()));
        }
        let updated = query
            .set((changeset, customers::version.eq(customers::version + 1)))
            .returning(CustomerRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(|e| match unique_violation(&e) {
                Some(EMAIL_KEY) => UpdateCustomerError::EmailTaken,
                _ => unexpected(e, "updating a customer").into(),
            })?;
        match updated {
            Some(row) => Ok(row.into_domain()?),
            None => {
                let exists = customers::table
                    .find(id.as_uuid())
                    .select(customers::id)
                    .first::<Uuid>(&mut conn)
                    .await
                    .optional()
                    .context("checking a customer exists")?;
                Err(match exists {
                    Some(_) => UpdateCustomerError::VersionMismatch(id),
                    None => UpdateCustomerError::NotFound(id),
                })
            }
        }
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

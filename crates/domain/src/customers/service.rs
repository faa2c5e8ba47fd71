use std::sync::Arc;

use super::{
    CreateCustomerError, Customer, CustomerChanges, CustomerId, CustomerRepository,
    DeleteCustomerError, NewCustomer, UpdateCustomerError,
};
use crate::clock::Clock;
use crate::ids::IdSource;
use crate::page::{Page, PageRequest};
use crate::value::VersionMatch;

/// The customers' use cases.
#[derive(Clone)]
pub struct CustomerService {
    customers: Arc<dyn CustomerRepository>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
}

impl std::fmt::Debug for CustomerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerService").finish_non_exhaustive()
    }
}

impl CustomerService {
    /// A service over the given ports.
    pub fn new(
        customers: Arc<dyn CustomerRepository>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
    ) -> Self {
        Self {
            customers,
            clock,
            ids,
        }
    }

    /// Creates a customer, with a new id and the clock's time.
    ///
    /// # Errors
    /// `EmailTaken`.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn create(&self, customer: NewCustomer) -> Result<Customer, CreateCustomerError> {
        let id = CustomerId::from_uuid(self.ids.new_id());
        self.customers.insert(id, customer, self.clock.now()).await
    }

    /// One customer, or `None`.
    ///
    /// # Errors
    /// When storage fails.
    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %id))]
    pub async fn get(&self, id: CustomerId) -> anyhow::Result<Option<Customer>> {
        self.customers.find(id).await
    }

    /// A page of customers, newest first.
    ///
    /// # Errors
    /// When storage fails.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn list(&self, page: PageRequest) -> anyhow::Result<Page<Customer>> {
        self.customers.list(page).await
    }

    /// Changes a customer, optionally only if still at `expected`. Changing nothing
    /// returns the customer as they are: no new version, no new `updated_at`.
    ///
    /// # Errors
    /// `NotFound`, `EmailTaken`, `VersionMismatch`.
    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %id))]
    pub async fn update(
        &self,
        id: CustomerId,
        changes: CustomerChanges,
        expected: Option<VersionMatch>,
    ) -> Result<Customer, UpdateCustomerError> {
        // A single expected version is compared-and-set by storage without a read;
        // changing nothing, or naming several versions, needs the current one first.
        let single = expected.as_ref().and_then(VersionMatch::single);
        if changes.is_empty() || (expected.is_some() && single.is_none()) {
            let current = self
                .customers
                .find(id)
                .await?
                .ok_or(UpdateCustomerError::NotFound(id))?;
            if expected.is_some_and(|expected| !expected.admits(current.version())) {
                return Err(UpdateCustomerError::VersionMismatch(id));
            }
            if changes.is_empty() {
                return Ok(current);
            }
            return self
                .customers
                .update(id, changes, Some(current.version()), self.clock.now())
                .await;
        }
        self.customers
            .update(id, changes, single, self.clock.now())
            .await
    }

    /// Deletes a customer without orders.
    ///
    /// # Errors
    /// `NotFound`, `HasOrders`.
    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %id))]
    pub async fn delete(&self, id: CustomerId) -> Result<(), DeleteCustomerError> {
        self.customers.delete(id).await
    }
}

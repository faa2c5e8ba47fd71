use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    CreateCustomerError, Customer, CustomerChanges, CustomerId, DeleteCustomerError, NewCustomer,
    UpdateCustomerError,
};
use crate::page::{Page, PageRequest};
use crate::value::Version;

/// Storage of customers.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CustomerRepository: Send + Sync {
    /// Stores a new customer under `id`, created at `at`.
    ///
    /// # Errors
    /// `EmailTaken` when the address is in use (case-insensitively), also under races.
    async fn insert(
        &self,
        id: CustomerId,
        customer: NewCustomer,
        at: DateTime<Utc>,
    ) -> Result<Customer, CreateCustomerError>;

    /// One customer, or `None`.
    ///
    /// # Errors
    /// When storage fails.
    async fn find(&self, id: CustomerId) -> anyhow::Result<Option<Customer>>;

    /// A page of customers, newest first.
    ///
    /// # Errors
    /// When storage fails.
    async fn list(&self, page: PageRequest) -> anyhow::Result<Page<Customer>>;

    /// Applies `changes` when the customer is still at `expected` (any when `None`).
    ///
    /// # Errors
    /// `NotFound`, `EmailTaken`, `VersionMismatch`.
    async fn update(
        &self,
        id: CustomerId,
        changes: CustomerChanges,
        expected: Option<Version>,
        at: DateTime<Utc>,
    ) -> Result<Customer, UpdateCustomerError>;

    /// Deletes a customer that has no orders.
    ///
    /// # Errors
    /// `NotFound`, or `HasOrders` when any order refers to the customer.
    async fn delete(&self, id: CustomerId) -> Result<(), DeleteCustomerError>;
}

use async_trait::async_trait;

use super::sync::{SyncReport, SyncedProduct};
use super::{
    AdjustStockError, CreateProductError, DeleteProductError, NewProduct, Product, ProductChanges,
    ProductId, StockAdjustment, UpdateProductError,
};
use crate::page::{Page, PageRequest};
use crate::value::Version;

/// What deleting a product did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductDeletion {
    /// No order used the product, so it is gone.
    Deleted,
    /// Orders use the product, so it was kept and deactivated instead.
    Deactivated,
}

/// Storage of the catalog.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ProductRepository: Send + Sync {
    /// Stores a new product under `id`, created at `at`.
    ///
    /// # Errors
    /// `SkuTaken` when the SKU is in use, also when two inserts race.
    async fn insert(
        &self,
        id: ProductId,
        product: NewProduct,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Product, CreateProductError>;

    /// One product, or `None`.
    ///
    /// # Errors
    /// When storage fails.
    async fn find(&self, id: ProductId) -> anyhow::Result<Option<Product>>;

    /// The products with these ids that exist, in no particular order, in one query.
    ///
    /// # Errors
    /// When storage fails.
    async fn find_many(&self, ids: &[ProductId]) -> anyhow::Result<Vec<Product>>;

    /// A page of products, newest first.
    ///
    /// # Errors
    /// When storage fails.
    async fn list(&self, page: PageRequest) -> anyhow::Result<Page<Product>>;

    /// Applies `changes` when the product is still at `expected` (any version when
    /// `None`), and bumps its version.
    ///
    /// # Errors
    /// `NotFound`, `SkuTaken`, or `VersionMismatch` when the stored version differs.
    async fn update(
        &self,
        id: ProductId,
        changes: ProductChanges,
        expected: Option<Version>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Product, UpdateProductError>;

    /// Adds `adjustment.delta` to the stock and records the adjustment, atomically.
    /// Stock never goes below zero, even when adjustments and orders race.
    ///
    /// # Errors
    /// `NotFound`, `NotTracked`, or `InsufficientStock` with the units on hand.
    async fn adjust_stock(
        &self,
        id: ProductId,
        adjustment: StockAdjustment,
    ) -> Result<Product, AdjustStockError>;

    /// Deletes the product, or deactivates it when orders refer to it.
    ///
    /// # Errors
    /// `NotFound` when there is no such product.
    async fn delete(
        &self,
        id: ProductId,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<ProductDeletion, DeleteProductError>;
}

/// Storage of the local products that mirror the upstream catalog's (those with an
/// external id).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CatalogMirror: Send + Sync {
    /// Brings the mirrored products in step with `upstream` (every upstream
    /// product, one per external id): reads them, plans the change with
    /// [`SyncPlan::new`](super::SyncPlan::new) and writes that plan, stamped `at`,
    /// in one transaction. Syncs are serialised: two at once apply one after the
    /// other, and the second finds nothing left to do. A new product whose SKU a
    /// local product already has is not created; it counts as skipped.
    ///
    /// # Errors
    /// When storage fails; nothing is changed then.
    async fn apply(
        &self,
        upstream: Vec<SyncedProduct>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<SyncReport>;
}

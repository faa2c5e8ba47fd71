use std::sync::Arc;

use super::{
    AdjustStockError, CreateProductError, DeleteProductError, NewProduct, Product, ProductChanges,
    ProductDeletion, ProductId, ProductRepository, StockAdjustment, UpdateProductError,
};
use crate::clock::Clock;
use crate::page::{Page, PageRequest};
use crate::value::Version;

/// The catalog's use cases.
#[derive(Clone)]
pub struct CatalogService {
    products: Arc<dyn ProductRepository>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for CatalogService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogService").finish_non_exhaustive()
    }
}

impl CatalogService {
    /// A service over the given ports.
    pub fn new(products: Arc<dyn ProductRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { products, clock }
    }

    /// The service's clock, for callers that build new products.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Adds a product.
    ///
    /// # Errors
    /// `SkuTaken` when the SKU is in use.
    pub async fn create(&self, product: NewProduct) -> Result<Product, CreateProductError> {
        self.products.insert(product).await
    }

    /// One product, or `None`.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn get(&self, id: ProductId) -> anyhow::Result<Option<Product>> {
        self.products.find(id).await
    }

    /// A page of products, newest first.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn list(&self, page: PageRequest) -> anyhow::Result<Page<Product>> {
        self.products.list(page).await
    }

    /// Changes a product, optionally only if it is still at `expected`.
    ///
    /// # Errors
    /// `NotFound`, `SkuTaken`, `VersionMismatch`.
    pub async fn update(
        &self,
        id: ProductId,
        changes: ProductChanges,
        expected: Option<Version>,
    ) -> Result<Product, UpdateProductError> {
        self.products
            .update(id, changes, expected, self.clock.now())
            .await
    }

    /// Adds or removes stock, with a reason kept for audit.
    ///
    /// # Errors
    /// `Invalid` for a zero delta, one that would take stock above
    /// [`StockLevel::MAX`](super::StockLevel::MAX), or an empty reason; `NotFound`,
    /// `NotTracked`, `InsufficientStock` from storage.
    pub async fn adjust_stock(
        &self,
        id: ProductId,
        delta: i64,
        reason: &str,
    ) -> Result<Product, AdjustStockError> {
        // `unsigned_abs`: `i64::MIN.abs()` overflows (a panic in debug builds).
        if delta == 0 || delta.unsigned_abs() > super::StockLevel::MAX.unsigned_abs() {
            return Err(AdjustStockError::Invalid {
                field: "delta",
                message:
                    "delta must be a non-zero number of units, at most 1000000000000 either way"
                        .into(),
            });
        }
        let reason = crate::value::parse_text(reason, "reason", 500).map_err(|e| {
            AdjustStockError::Invalid {
                field: "reason",
                message: e.message().to_owned(),
            }
        })?;
        let adjustment = StockAdjustment {
            delta,
            reason,
            at: self.clock.now(),
        };
        self.products.adjust_stock(id, adjustment).await
    }

    /// Deletes a product no order uses; deactivates one that orders use.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn delete(&self, id: ProductId) -> Result<ProductDeletion, DeleteProductError> {
        self.products.delete(id, self.clock.now()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::MockProductRepository;
    use crate::clock::MockClock;
    use chrono::{TimeZone, Utc};

    fn service(repo: MockProductRepository) -> CatalogService {
        let mut clock = MockClock::new();
        clock.expect_now().returning(|| {
            Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
                .single()
                .expect("valid")
        });
        CatalogService::new(Arc::new(repo), Arc::new(clock))
    }

    #[tokio::test]
    async fn a_zero_stock_adjustment_is_refused_without_touching_storage() {
        let mut repo = MockProductRepository::new();
        repo.expect_adjust_stock().never();
        let result = service(repo)
            .adjust_stock(ProductId::generate(), 0, "count")
            .await;
        assert!(matches!(
            result,
            Err(AdjustStockError::Invalid { field: "delta", .. })
        ));
    }

    #[tokio::test]
    async fn the_most_negative_delta_is_refused_rather_than_overflowing() {
        let mut repo = MockProductRepository::new();
        repo.expect_adjust_stock().never();
        let result = service(repo)
            .adjust_stock(ProductId::generate(), i64::MIN, "count")
            .await;
        assert!(matches!(
            result,
            Err(AdjustStockError::Invalid { field: "delta", .. })
        ));
    }

    #[tokio::test]
    async fn an_adjustment_needs_a_reason() {
        let mut repo = MockProductRepository::new();
        repo.expect_adjust_stock().never();
        let result = service(repo)
            .adjust_stock(ProductId::generate(), 5, "   ")
            .await;
        assert!(matches!(
            result,
            Err(AdjustStockError::Invalid {
                field: "reason",
                ..
            })
        ));
    }

    #[tokio::test]
    async fn an_adjustment_is_stamped_with_the_clock_and_trimmed_reason() {
        let mut repo = MockProductRepository::new();
        let id = ProductId::generate();
        repo.expect_adjust_stock()
            .withf(move |got, adj| {
                *got == id
                    && adj.delta == -3
                    && adj.reason == "breakage"
                    && adj.at
                        == Utc
                            .with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
                            .single()
                            .expect("valid")
            })
            .returning(|id, _| Err(AdjustStockError::NotTracked(id)));
        let result = service(repo).adjust_stock(id, -3, " breakage ").await;
        assert!(matches!(result, Err(AdjustStockError::NotTracked(got)) if got == id));
    }
}

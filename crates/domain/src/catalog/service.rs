use std::sync::Arc;

use super::{
    AdjustStockError, CreateProductError, DeleteProductError, NewProduct, Product, ProductChanges,
    ProductDeletion, ProductId, ProductRepository, StockAdjustment, StockAdjustmentId, StockDelta,
    UpdateProductError,
};
use crate::clock::Clock;
use crate::ids::IdSource;
use crate::page::{Page, PageRequest};
use crate::value::VersionMatch;

/// The catalog's use cases.
#[derive(Clone)]
pub struct CatalogService {
    products: Arc<dyn ProductRepository>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
}

impl std::fmt::Debug for CatalogService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogService").finish_non_exhaustive()
    }
}

impl CatalogService {
    /// A service over the given ports.
    pub fn new(
        products: Arc<dyn ProductRepository>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
    ) -> Self {
        Self {
            products,
            clock,
            ids,
        }
    }

    /// Adds a product, with a new id and the clock's time.
    ///
    /// # Errors
    /// `SkuTaken` when the SKU is in use.
    #[tracing::instrument(level = "debug", skip_all, fields(sku = %product.sku()))]
    pub async fn create(&self, product: NewProduct) -> Result<Product, CreateProductError> {
        let id = ProductId::from_uuid(self.ids.new_id());
        self.products.insert(id, product, self.clock.now()).await
    }

    /// One product, or `None`.
    ///
    /// # Errors
    /// When storage fails.
    #[tracing::instrument(level = "debug", skip_all, fields(product_id = %id))]
    pub async fn get(&self, id: ProductId) -> anyhow::Result<Option<Product>> {
        self.products.find(id).await
    }

    /// A page of products, newest first.
    ///
    /// # Errors
    /// When storage fails.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn list(&self, page: PageRequest) -> anyhow::Result<Page<Product>> {
        self.products.list(page).await
    }

    /// Changes a product, optionally only if it is still at `expected`. Changing
    /// nothing returns the product as it is: no new version, no new `updated_at`.
    ///
    /// # Errors
    /// `NotFound`, `SkuTaken`, `VersionMismatch`.
    #[tracing::instrument(level = "debug", skip_all, fields(product_id = %id))]
    pub async fn update(
        &self,
        id: ProductId,
        changes: ProductChanges,
        expected: Option<VersionMatch>,
    ) -> Result<Product, UpdateProductError> {
        // A single expected version is compared-and-set by storage without a read;
        // changing nothing, or naming several versions, needs the current one first.
        let single = expected.as_ref().and_then(VersionMatch::single);
        if changes.is_empty() || (expected.is_some() && single.is_none()) {
            let current = self
                .products
                .find(id)
                .await?
                .ok_or(UpdateProductError::NotFound(id))?;
            if expected.is_some_and(|expected| !expected.admits(current.version())) {
                return Err(UpdateProductError::VersionMismatch(id));
            }
            if changes.is_empty() {
                return Ok(current);
            }
            return self
                .products
                .update(id, changes, Some(current.version()), self.clock.now())
                .await;
        }
        self.products
            .update(id, changes, single, self.clock.now())
            .await
    }

    /// Adds or removes stock, with a reason kept for audit.
    ///
    /// # Errors
    /// `Invalid` for a zero delta, one that would take stock above
    /// [`StockLevel::MAX`](super::StockLevel::MAX), or an empty reason; `NotFound`,
    /// `NotTracked`, `InsufficientStock` from storage.
    #[tracing::instrument(level = "debug", skip_all, fields(product_id = %id, delta = delta))]
    pub async fn adjust_stock(
        &self,
        id: ProductId,
        delta: i64,
        reason: &str,
    ) -> Result<Product, AdjustStockError> {
        let delta = StockDelta::parse(delta).map_err(|e| AdjustStockError::Invalid {
            field: "delta",
            message: e.message().to_owned(),
        })?;
        let reason = crate::value::parse_text(reason, "reason", 500).map_err(|e| {
            AdjustStockError::Invalid {
                field: "reason",
                message: e.message().to_owned(),
            }
        })?;
        let adjustment = StockAdjustment {
            id: StockAdjustmentId::from_uuid(self.ids.new_id()),
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
    #[tracing::instrument(level = "debug", skip_all, fields(product_id = %id))]
    pub async fn delete(&self, id: ProductId) -> Result<ProductDeletion, DeleteProductError> {
        self.products.delete(id, self.clock.now()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{MockProductRepository, ProductChanges};
    use crate::clock::MockClock;
    use crate::ids::MockIdSource;
    use crate::value::Version;
    use chrono::{TimeZone, Utc};

    fn service(repo: MockProductRepository) -> CatalogService {
        let mut clock = MockClock::new();
        clock.expect_now().returning(|| {
            Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
                .single()
                .expect("valid")
        });
        let mut ids = MockIdSource::new();
        ids.expect_new_id().returning(uuid::Uuid::now_v7);
        CatalogService::new(Arc::new(repo), Arc::new(clock), Arc::new(ids))
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
    async fn the_most_negative_delta_is_refused_as_invalid_without_touching_storage() {
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

    /// A stored service product "KIT" at `version`.
    fn stored_kit(version: Version) -> Product {
        let at = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid");
        Product::restore(
            ProductId::generate(),
            crate::catalog::Sku::parse("KIT").expect("sku"),
            crate::catalog::ProductName::parse("Kit").expect("name"),
            crate::catalog::ProductKind::Service,
            crate::money::Money::new(100, crate::money::Currency::parse("EUR").expect("eur")),
            None,
            None,
            true,
            version,
            at,
            at,
        )
    }

    #[tokio::test]
    async fn an_empty_change_returns_the_product_untouched_without_writing() {
        let mut repo = MockProductRepository::new();
        let stored = stored_kit(Version::FIRST);
        let id = stored.id();
        repo.expect_update().never();
        repo.expect_find()
            .returning(move |_| Ok(Some(stored.clone())));
        let service = service(repo);

        let unchanged = service
            .update(
                id,
                ProductChanges::default(),
                Some(VersionMatch::one(Version::FIRST)),
            )
            .await
            .expect("unchanged");
        let stale = service
            .update(
                id,
                ProductChanges::default(),
                Version::new(2).ok().map(VersionMatch::one),
            )
            .await;

        assert_eq!(unchanged.version(), Version::FIRST);
        assert!(matches!(stale, Err(UpdateProductError::VersionMismatch(got)) if got == id));
    }

    #[tokio::test]
    async fn a_change_naming_several_versions_goes_ahead_at_any_of_them() {
        let mut repo = MockProductRepository::new();
        let stored = stored_kit(Version::new(3).expect("version"));
        let id = stored.id();
        let found = stored.clone();
        repo.expect_find()
            .returning(move |_| Ok(Some(found.clone())));
        // The compare-and-set is on the version the product is at, one of those named.
        repo.expect_update()
            .withf(|_, _, expected, _| *expected == Version::new(3).ok())
            .times(1)
            .returning(move |_, _, _, _| Ok(stored.clone()));
        let service = service(repo);
        let versions = |v: &[i32]| {
            VersionMatch::any_of(
                v.iter()
                    .map(|v| Version::new(*v).expect("version"))
                    .collect(),
            )
            .ok()
        };
        let changes = ProductChanges {
            name: Some(crate::catalog::ProductName::parse("Kit 2").expect("name")),
            ..ProductChanges::default()
        };

        let stale = service.update(id, changes.clone(), versions(&[1, 2])).await;
        let fresh = service.update(id, changes, versions(&[2, 3])).await;

        assert!(matches!(stale, Err(UpdateProductError::VersionMismatch(_))));
        assert!(fresh.is_ok(), "{fresh:?}");
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
                    && adj.delta.get() == -3
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

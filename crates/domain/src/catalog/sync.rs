//! The local catalog kept in step with the upstream's: every upstream product has a
//! local product with its `external_id`, which orders and baskets are priced from,
//! so no request ever fetches a product from the upstream.
//!
//! A sync copies each upstream product's name and price, creates the products it
//! has not seen before, and deactivates (never deletes: orders and baskets refer to
//! them) the ones that vanished upstream. Stock is local and never touched. Syncing
//! again with nothing changed upstream changes nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::{CatalogMirror, ProductId, ProductName, Sku};
use crate::clock::Clock;
use crate::ids::IdSource;
use crate::money::Money;
use crate::upstream::{CatalogSource, UpstreamCallError, UpstreamProduct, UpstreamProductId};
use crate::value::InvalidValue;

/// The prefix of the SKU a synced product is created with: `UP-<upstream id>`.
pub const SYNCED_SKU_PREFIX: &str = "UP-";

/// An upstream product as the local catalog mirrors it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedProduct {
    external_id: UpstreamProductId,
    sku: Sku,
    name: ProductName,
    price: Money,
    id_if_new: ProductId,
}

impl SyncedProduct {
    /// The mirror of `product`, created as `id_if_new` if it is new here.
    ///
    /// # Errors
    /// When the upstream's name is not a valid product name, or its id does not
    /// make a valid SKU (`UP-` and the id must be at most 64 letters, digits, `-`,
    /// `_` or `.`).
    pub fn from_upstream(
        product: &UpstreamProduct,
        id_if_new: ProductId,
    ) -> Result<Self, InvalidValue> {
        Ok(Self {
            external_id: product.id.clone(),
            sku: Sku::parse(&format!("{SYNCED_SKU_PREFIX}{}", product.id.as_str()))?,
            name: ProductName::parse(&product.name)?,
            price: product.price,
            id_if_new,
        })
    }

    /// The upstream's id of the product.
    pub fn external_id(&self) -> &UpstreamProductId {
        &self.external_id
    }
    /// The SKU it is created with (an existing product keeps its own).
    pub fn sku(&self) -> &Sku {
        &self.sku
    }
    /// Its name.
    pub fn name(&self) -> &ProductName {
        &self.name
    }
    /// Its unit price.
    pub fn price(&self) -> Money {
        self.price
    }
    /// The id it gets if it is created.
    pub fn id_if_new(&self) -> ProductId {
        self.id_if_new
    }
}

/// A local product that mirrors an upstream one, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirroredProduct {
    /// Its local id.
    pub id: ProductId,
    /// The upstream's id of it.
    pub external_id: String,
    /// Its name as stored.
    pub name: String,
    /// Its price as stored.
    pub price: Money,
    /// Whether it can be ordered.
    pub active: bool,
}

/// What a sync writes: the one place that decides what changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncPlan {
    /// Upstream products new here, to create (active, stock not tracked).
    pub create: Vec<SyncedProduct>,
    /// Mirrored products whose name or price differ from upstream's, or that are
    /// inactive and back upstream: to set to upstream's name and price, active.
    pub update: Vec<(ProductId, SyncedProduct)>,
    /// Active mirrored products gone from upstream, to deactivate.
    pub deactivate: Vec<ProductId>,
    /// Mirrored products already as upstream has them.
    pub unchanged: usize,
}

impl SyncPlan {
    /// The plan that makes `mirrored` match `upstream` (one entry per external id).
    pub fn new(upstream: &[SyncedProduct], mirrored: &[MirroredProduct]) -> Self {
        let by_external_id: HashMap<&str, &MirroredProduct> = mirrored
            .iter()
            .map(|m| (m.external_id.as_str(), m))
            .collect();
        let mut plan = Self::default();
        for product in upstream {
            match by_external_id.get(product.external_id.as_str()) {
                None => plan.create.push(product.clone()),
                Some(local)
                    if local.active
                        && local.name == product.name.as_str()
                        && local.price == product.price =>
                {
                    plan.unchanged += 1;
                }
                Some(local) => plan.update.push((local.id, product.clone())),
            }
        }
        let upstream_ids: HashSet<&str> = upstream.iter().map(|p| p.external_id.as_str()).collect();
        plan.deactivate = mirrored
            .iter()
            .filter(|m| m.active && !upstream_ids.contains(m.external_id.as_str()))
            .map(|m| m.id)
            .collect();
        plan
    }

    /// Whether the plan writes nothing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.deactivate.is_empty()
    }
}

/// What one sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncReport {
    /// Products created.
    pub created: usize,
    /// Products whose name or price changed, or that came back upstream.
    pub updated: usize,
    /// Products deactivated because they vanished upstream.
    pub deactivated: usize,
    /// Products already in step.
    pub unchanged: usize,
    /// Upstream products not mirrored: unreadable here (a name or id Ordo cannot
    /// take), listed twice, or new with a SKU a local product already has.
    pub skipped: usize,
}

/// Why a sync did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SyncCatalogError {
    /// The upstream catalog could not be read; nothing was changed.
    #[error("the upstream catalog could not be read: {0}")]
    Upstream(#[from] UpstreamCallError),
    /// Storage failed; nothing was changed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Syncs the local catalog from the upstream's (the `sync-catalog` job's work).
#[derive(Clone)]
pub struct CatalogSync {
    source: Arc<dyn CatalogSource>,
    mirror: Arc<dyn CatalogMirror>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
}

impl std::fmt::Debug for CatalogSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogSync").finish_non_exhaustive()
    }
}

impl CatalogSync {
    /// A sync reading `source` and writing `mirror`.
    pub fn new(
        source: Arc<dyn CatalogSource>,
        mirror: Arc<dyn CatalogMirror>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
    ) -> Self {
        Self {
            source,
            mirror,
            clock,
            ids,
        }
    }

    /// Reads the whole upstream catalog once and brings the local one in step
    /// with it. Idempotent: a second sync with nothing changed upstream writes
    /// nothing. An upstream product that cannot be read here is skipped, and its
    /// earlier copy deactivated like a vanished one: it is not sold at a stale
    /// price.
    ///
    /// # Errors
    /// `Upstream` when the upstream catalog cannot be read, `Unexpected` when
    /// storage fails; either way nothing changed.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn sync_once(&self) -> Result<SyncReport, SyncCatalogError> {
        let listed = self.source.list_products().await?;
        let mut seen = HashSet::new();
        let mut synced = Vec::with_capacity(listed.len());
        let mut skipped = 0;
        for product in &listed {
            if !seen.insert(product.id.as_str()) {
                tracing::warn!(external_id = %product.id.as_str(), "the upstream lists a product twice; the first is kept");
                skipped += 1;
                continue;
            }
            match SyncedProduct::from_upstream(product, ProductId::from_uuid(self.ids.new_id())) {
                Ok(product) => synced.push(product),
                Err(e) => {
                    tracing::warn!(external_id = %product.id.as_str(), error = %e, "an upstream product cannot be mirrored");
                    skipped += 1;
                }
            }
        }
        let mut report = self.mirror.apply(synced, self.clock.now()).await?;
        report.skipped += skipped;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::catalog::MockCatalogMirror;
    use crate::clock::MockClock;
    use crate::ids::MockIdSource;
    use crate::money::Currency;
    use crate::upstream::{MockCatalogSource, VatRate};
    use crate::{Dependency, Unavailable};

    fn eur(minor: i64) -> Money {
        Money::price(minor, Currency::parse("EUR").expect("EUR")).expect("a price")
    }

    fn upstream(id: &str, name: &str, minor: i64) -> UpstreamProduct {
        UpstreamProduct {
            id: UpstreamProductId::parse(id).expect("an id"),
            name: name.to_owned(),
            vat_rate: VatRate::from_basis_points(2_500).expect("25 %"),
            price: eur(minor),
        }
    }

    fn synced(id: &str, name: &str, minor: i64) -> SyncedProduct {
        SyncedProduct::from_upstream(&upstream(id, name, minor), ProductId::generate())
            .expect("mirrorable")
    }

    fn mirrored(id: &str, name: &str, minor: i64, active: bool) -> MirroredProduct {
        MirroredProduct {
            id: ProductId::generate(),
            external_id: id.to_owned(),
            name: name.to_owned(),
            price: eur(minor),
            active,
        }
    }

    #[test]
    fn products_new_upstream_are_created_with_an_up_sku() {
        let coffee = synced("prod_coffee", "Coffee", 2_500);
        let plan = SyncPlan::new(std::slice::from_ref(&coffee), &[]);
        assert_eq!(plan.create, vec![coffee.clone()]);
        assert_eq!(coffee.sku().as_str(), "UP-prod_coffee");
        assert!(plan.update.is_empty() && plan.deactivate.is_empty());
    }

    #[test]
    fn a_changed_name_or_price_is_an_update_and_an_equal_product_is_left_alone() {
        let local = [
            mirrored("tea", "Tea", 1_800, true),
            mirrored("soup", "Soup", 4_500, true),
            mirrored("apple", "Apple", 500, true),
        ];
        let upstream = [
            synced("tea", "Tea", 1_900),
            synced("soup", "Soup of the day", 4_500),
            synced("apple", "Apple", 500),
        ];
        let plan = SyncPlan::new(&upstream, &local);
        assert_eq!(
            plan.update,
            vec![
                (local[0].id, upstream[0].clone()),
                (local[1].id, upstream[1].clone())
            ]
        );
        assert_eq!(plan.unchanged, 1);
        assert!(plan.create.is_empty() && plan.deactivate.is_empty());
    }

    #[test]
    fn a_product_gone_upstream_is_deactivated_once_and_one_back_is_reactivated() {
        let local = [
            mirrored("gone", "Gone", 100, true),
            mirrored("gone_before", "Gone before", 100, false),
            mirrored("back", "Back", 200, false),
        ];
        let upstream = [synced("back", "Back", 200)];
        let plan = SyncPlan::new(&upstream, &local);
        assert_eq!(plan.deactivate, vec![local[0].id]);
        assert_eq!(plan.update, vec![(local[2].id, upstream[0].clone())]);
        assert_eq!(plan.unchanged, 0);
    }

    #[test]
    fn a_catalog_already_in_step_plans_nothing() {
        let local = [mirrored("tea", "Tea", 1_800, true)];
        let plan = SyncPlan::new(&[synced("tea", "Tea", 1_800)], &local);
        assert!(plan.is_empty());
        assert_eq!(plan.unchanged, 1);
    }

    #[test]
    fn an_upstream_id_that_makes_no_sku_or_a_blank_name_is_not_mirrored() {
        let id = ProductId::generate();
        assert!(SyncedProduct::from_upstream(&upstream("has space", "Tea", 1), id).is_err());
        assert!(SyncedProduct::from_upstream(&upstream(&"x".repeat(62), "Tea", 1), id).is_err());
        assert!(SyncedProduct::from_upstream(&upstream("tea", "  ", 1), id).is_err());
    }

    fn sync_with(source: MockCatalogSource, mirror: MockCatalogMirror) -> CatalogSync {
        let mut clock = MockClock::new();
        clock.expect_now().returning(|| {
            Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0)
                .single()
                .expect("time")
        });
        let mut ids = MockIdSource::new();
        ids.expect_new_id().returning(Uuid::now_v7);
        CatalogSync::new(
            Arc::new(source),
            Arc::new(mirror),
            Arc::new(clock),
            Arc::new(ids),
        )
    }

    #[tokio::test]
    async fn a_sync_hands_every_readable_product_once_to_the_mirror_and_counts_the_rest_as_skipped()
    {
        let mut source = MockCatalogSource::new();
        source.expect_list_products().times(1).returning(|| {
            Ok(vec![
                upstream("coffee", "Coffee", 2_500),
                upstream("bad id", "Tea", 1_800),
                upstream("coffee", "Coffee again", 2_600),
                upstream("apple", "Apple", 500),
            ])
        });
        let mut mirror = MockCatalogMirror::new();
        mirror
            .expect_apply()
            .times(1)
            .withf(|products, at| {
                let ids: Vec<&str> = products.iter().map(|p| p.external_id().as_str()).collect();
                ids == ["coffee", "apple"]
                    && products[0].name().as_str() == "Coffee"
                    && products[0].price() == eur(2_500)
                    && *at
                        == Utc
                            .with_ymd_and_hms(2026, 11, 23, 9, 0, 0)
                            .single()
                            .expect("time")
            })
            .returning(|products, _| {
                Ok(SyncReport {
                    created: products.len(),
                    ..SyncReport::default()
                })
            });

        let report = sync_with(source, mirror).sync_once().await.expect("synced");

        assert_eq!(
            report,
            SyncReport {
                created: 2,
                skipped: 2,
                ..SyncReport::default()
            }
        );
    }

    #[tokio::test]
    async fn an_unreadable_upstream_catalog_changes_nothing() {
        let mut source = MockCatalogSource::new();
        source.expect_list_products().returning(|| {
            Err(UpstreamCallError::Unavailable(Unavailable::new(
                Dependency::Upstream,
                Duration::from_secs(5),
                "the circuit is open",
            )))
        });
        let mut mirror = MockCatalogMirror::new();
        mirror.expect_apply().never();

        let error = sync_with(source, mirror)
            .sync_once()
            .await
            .expect_err("no catalog");

        assert!(matches!(
            error,
            SyncCatalogError::Upstream(UpstreamCallError::Unavailable(_))
        ));
    }
}

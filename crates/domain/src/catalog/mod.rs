//! The catalog: products that orders are made of.
//!
//! A product is either a `service` (never stocked) or a `good`. A good may track
//! its stock; tracked stock never goes below zero, whatever races. Products with an
//! external id mirror the upstream catalog's and are kept in step by [`CatalogSync`].

mod error;
mod model;
mod ports;
mod service;
mod sync;

pub use error::{
    AdjustStockError, CreateProductError, DeleteProductError, StockShortage, UpdateProductError,
};
pub use model::{
    NewProduct, PriceMinor, Product, ProductChanges, ProductId, ProductKind, ProductName, Sku,
    StockAdjustment, StockAdjustmentId, StockDelta, StockLevel,
};
pub use ports::{CatalogMirror, ProductDeletion, ProductRepository};
#[cfg(any(test, feature = "mocks"))]
pub use ports::{MockCatalogMirror, MockProductRepository};
pub use service::CatalogService;
pub use sync::{
    CatalogSync, MirroredProduct, SYNCED_SKU_PREFIX, SyncCatalogError, SyncPlan, SyncReport,
    SyncedProduct,
};

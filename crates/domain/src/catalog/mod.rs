//! The catalog: products that orders are made of.
//!
//! A product is either a `service` (never stocked) or a `good`. A good may track
//! its stock; tracked stock never goes below zero, whatever races.

mod error;
mod model;
mod ports;
mod service;

pub use error::{
    AdjustStockError, CreateProductError, DeleteProductError, StockShortage, UpdateProductError,
};
pub use model::{
    NewProduct, PriceMinor, Product, ProductChanges, ProductId, ProductKind, ProductName, Sku,
    StockAdjustment, StockAdjustmentId, StockDelta, StockLevel,
};
#[cfg(any(test, feature = "mocks"))]
pub use ports::MockProductRepository;
pub use ports::{ProductDeletion, ProductRepository};
pub use service::CatalogService;

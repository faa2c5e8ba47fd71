use super::ProductId;

/// A product has fewer units in stock than an order or an adjustment asks for;
/// the one shortage of the catalog and the orders alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("only {available} units of product {product_id} are in stock")]
pub struct StockShortage {
    /// The product.
    pub product_id: ProductId,
    /// Units on hand.
    pub available: i64,
}

/// Why a product could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateProductError {
    /// Another product already has this SKU.
    #[error("a product with SKU {sku} already exists")]
    SkuTaken {
        /// The SKU asked for.
        sku: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a product could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateProductError {
    /// No such product.
    #[error("product {0} not found")]
    NotFound(ProductId),
    /// Another product already has the new SKU.
    #[error("a product with SKU {sku} already exists")]
    SkuTaken {
        /// The SKU asked for.
        sku: String,
    },
    /// The product changed since the version the caller saw.
    #[error("product {0} was changed by someone else")]
    VersionMismatch(ProductId),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why stock could not be adjusted.
#[derive(Debug, thiserror::Error)]
pub enum AdjustStockError {
    /// No such product.
    #[error("product {0} not found")]
    NotFound(ProductId),
    /// The product does not track stock.
    #[error("product {0} does not track stock")]
    NotTracked(ProductId),
    /// The adjustment would take stock below zero.
    #[error(transparent)]
    InsufficientStock(#[from] StockShortage),
    /// The delta was zero or out of range, or the reason empty.
    #[error("{field}: {message}")]
    Invalid {
        /// `delta` or `reason`.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a product could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteProductError {
    /// No such product.
    #[error("product {0} not found")]
    NotFound(ProductId),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

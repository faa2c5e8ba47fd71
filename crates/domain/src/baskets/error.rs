use super::{BasketId, BasketStatus};
use crate::customers::CustomerId;
use crate::orders::PricingError;

/// Why a basket could not be created. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum CreateBasketError {
    /// No customer has this id.
    #[error("customer {0} does not exist")]
    CustomerNotFound(CustomerId),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a basket's line could not be set or removed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ChangeBasketError {
    /// No such basket.
    #[error("basket {0} not found")]
    NotFound(BasketId),
    /// The basket changed since the version the caller named in `If-Match`.
    #[error("basket {0} was changed by someone else")]
    VersionMismatch(BasketId),
    /// The basket is checked out or expired.
    #[error("basket {id} is {status} and can no longer be changed")]
    NotOpen {
        /// The basket.
        id: BasketId,
        /// Its status.
        status: BasketStatus,
    },
    /// The basket already holds its largest number of lines.
    #[error("basket {id} already holds {max} lines")]
    Full {
        /// The basket.
        id: BasketId,
        /// How many lines a basket holds at most.
        max: usize,
    },
    /// The line could not be priced (unknown or inactive product, another
    /// currency than the other lines, a total too large).
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a basket could not be deleted. Nothing was deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteBasketError {
    /// No such basket.
    #[error("basket {0} not found")]
    NotFound(BasketId),
    /// An order was made of the basket; it is kept.
    #[error("basket {id} is {status} and is kept")]
    NotDeletable {
        /// The basket.
        id: BasketId,
        /// Its status.
        status: BasketStatus,
    },
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

use crate::Unavailable;
use crate::baskets::{BasketId, BasketStatus};
use crate::catalog::StockShortage;
use crate::customers::CustomerId;
use crate::orders::{KeyHeldElsewhere, PlaceOrderError, SpacingConflict};

/// Why a checkout could not start. Nothing was written in any of these cases:
/// no order, no stock reserved, the basket untouched, nothing sent upstream.
#[derive(Debug, thiserror::Error)]
pub enum StartCheckoutError {
    /// No such basket.
    #[error("basket {0} not found")]
    BasketNotFound(BasketId),
    /// The basket is checked out already, or expired.
    #[error("basket {id} is {status} and cannot be checked out")]
    BasketNotOpen {
        /// The basket.
        id: BasketId,
        /// Its status.
        status: BasketStatus,
    },
    /// The basket has no lines.
    #[error("basket {0} is empty")]
    BasketEmpty(BasketId),
    /// Neither the basket nor the request names the customer.
    #[error("the basket has no customer; name one")]
    CustomerRequired,
    /// The request names another customer than the basket's.
    #[error("basket {basket} belongs to customer {owner}")]
    CustomerMismatch {
        /// The basket.
        basket: BasketId,
        /// Its customer.
        owner: CustomerId,
    },
    /// The order rules refused the order (customer, spacing, stock, numbers),
    /// exactly as on `/v1/orders`.
    #[error(transparent)]
    Order(#[from] PlaceOrderError),
    /// The upstream is known to be failing (its circuit is open): checking out
    /// now would only leave an order waiting.
    #[error(transparent)]
    UpstreamUnavailable(Unavailable),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<SpacingConflict> for StartCheckoutError {
    fn from(conflict: SpacingConflict) -> Self {
        Self::Order(conflict.into())
    }
}

impl From<KeyHeldElsewhere> for StartCheckoutError {
    fn from(held: KeyHeldElsewhere) -> Self {
        Self::Order(held.into())
    }
}

impl From<StockShortage> for StartCheckoutError {
    fn from(shortage: StockShortage) -> Self {
        Self::Order(shortage.into())
    }
}

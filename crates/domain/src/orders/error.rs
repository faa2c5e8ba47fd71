use super::{OrderId, OrderStatus, SpacingWindow};
use crate::catalog::{ProductId, StockShortage};
use crate::customers::CustomerId;

/// Why requested items could not be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// No product has this id.
    #[error("product {0} does not exist")]
    UnknownProduct(ProductId),
    /// The product is deactivated.
    #[error("product {0} is no longer sold")]
    InactiveProduct(ProductId),
    /// The products are priced in different currencies.
    #[error("all products of an order must share one currency")]
    MixedCurrencies,
    /// A line total or the order total does not fit in 64-bit minor units.
    #[error("the order total is too large")]
    AmountTooLarge,
}

/// Another order of the same customer is scheduled too close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("order {conflicting} of the same customer is scheduled less than {} minutes away", window.minutes())]
pub struct SpacingConflict {
    /// The order in the way.
    pub conflicting: OrderId,
    /// The window that applies.
    pub window: SpacingWindow,
}

/// The request's idempotency key is no longer its own to link: another request
/// with the key (a repetition that took it over once this one's lease ran out,
/// or the first request still running when this one took over) linked its
/// order to it first, or gave the key up. One key places one order, so this
/// request's order is not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("another request with this idempotency key placed {}", linked_order.map_or_else(|| "nothing yet".to_owned(), |id| format!("order {id}")))]
pub struct KeyHeldElsewhere {
    /// The order the key is linked to, if any.
    pub linked_order: Option<OrderId>,
}

/// Why an order could not be placed. Nothing was written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderError {
    /// No customer has this id.
    #[error("customer {0} does not exist")]
    CustomerNotFound(CustomerId),
    /// The items could not be priced.
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// The spacing rule refused the order.
    #[error(transparent)]
    TooClose(#[from] SpacingConflict),
    /// Stock ran short.
    #[error(transparent)]
    InsufficientStock(#[from] StockShortage),
    /// The idempotency key was linked by another request with it meanwhile.
    #[error(transparent)]
    KeyHeldElsewhere(#[from] KeyHeldElsewhere),
    /// The day's 999 999 order numbers are used up.
    #[error("the order numbers of {0} are used up")]
    NumbersExhausted(chrono::NaiveDate),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why an order could not be revised. Nothing was written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum UpdateOrderError {
    /// No such order.
    #[error("order {0} not found")]
    NotFound(OrderId),
    /// Only placed orders can be revised.
    #[error("order {id} is {status} and can no longer be changed")]
    NotEditable {
        /// The order.
        id: OrderId,
        /// Its status.
        status: OrderStatus,
    },
    /// The order changed since the version the caller named in `If-Match`.
    #[error("order {0} was changed by someone else")]
    VersionMismatch(OrderId),
    /// The order kept changing under us (no version was named); the caller may try again.
    #[error("order {0} is being changed concurrently")]
    Contended(OrderId),
    /// The items could not be priced.
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// The spacing rule refused the new schedule.
    #[error(transparent)]
    TooClose(#[from] SpacingConflict),
    /// Stock ran short for the added units.
    #[error(transparent)]
    InsufficientStock(#[from] StockShortage),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why an order could not be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelOrderError {
    /// No such order.
    #[error("order {0} not found")]
    NotFound(OrderId),
    /// The state machine does not allow cancelling from this status.
    #[error("order {id} is {status} and cannot be cancelled")]
    NotCancellable {
        /// The order.
        id: OrderId,
        /// Its status.
        status: OrderStatus,
    },
    /// The order kept changing under us; the caller may try again.
    #[error("order {0} is being changed concurrently")]
    Contended(OrderId),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why an order could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteOrderError {
    /// No such order.
    #[error("order {0} not found")]
    NotFound(OrderId),
    /// Paid orders, and orders whose payment is under way, are kept.
    #[error("order {id} is {status} and cannot be deleted")]
    NotDeletable {
        /// The order.
        id: OrderId,
        /// Its status.
        status: OrderStatus,
    },
    /// The order kept changing under us; the caller may try again.
    #[error("order {0} is being changed concurrently")]
    Contended(OrderId),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

//! Orders: what a customer wants, when, at which prices.
//!
//! An order is placed for a customer at a `scheduled_at` instant with one or more
//! lines priced from the catalog at that moment. Two non-cancelled orders of one
//! customer are never scheduled closer than the spacing window (3 hours unless
//! configured otherwise), goods with tracked stock are reserved when the order is
//! placed and returned when it is cancelled or deleted, and every order gets a
//! number `ORD-YYYYMMDD-NNNNNN` that runs without gaps per day.

mod error;
mod model;
mod ports;
mod pricing;
mod service;
mod spacing;
mod status;
mod stock_moves;

pub use crate::catalog::StockShortage;
pub use error::{
    CancelOrderError, DeleteOrderError, KeyHeldElsewhere, PlaceOrderError, PricingError,
    SpacingConflict, UpdateOrderError,
};
pub use model::{
    FulfillmentInfo, InvalidItems, NewOrder, Order, OrderFilter, OrderId, OrderItem, OrderItems,
    OrderLine, OrderNote, OrderNumber, OrderRef, OrderRevision, PaymentInfo, PlaceOrder, Quantity,
    ReviseOrder, ScheduledAt,
};
#[cfg(any(test, feature = "mocks"))]
pub use ports::MockOrderRepository;
pub use ports::OrderRepository;
pub use pricing::price_lines;
/// Products and item lists for the tests of other areas that price lines.
#[cfg(test)]
pub(crate) use pricing::tests as pricing_fixtures;
pub use service::{OrderPolicy, OrderService};
pub use spacing::{ScheduledOrder, SpacingWindow, find_conflict};
pub use status::OrderStatus;
pub use stock_moves::StockMoves;

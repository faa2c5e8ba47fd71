use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    NewOrder, Order, OrderFilter, OrderId, OrderRef, OrderRevision, OrderStatus, PlaceOrderError,
    SpacingWindow, UpdateOrderError,
};
use crate::idempotency::KeyOwner;
use crate::page::{Page, PageRequest};
use crate::upstream::IdempotencyKey;
use crate::value::Version;

/// Storage of orders.
///
/// Implementations apply [`find_conflict`](super::find_conflict) to the customer's
/// orders inside the same serialised section that writes, so the spacing rule holds
/// when calls race, and reserve or release stock in the same transaction as the
/// order change.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OrderRepository: Send + Sync {
    /// Inserts `order`, reserves stock for its stock-tracking lines and assigns the
    /// next number of the day of `order.created_at`, all in one transaction —
    /// with `idempotency`, in which the request's claimed key is also linked to
    /// the order, so that the key names the order exactly when the order exists.
    ///
    /// # Errors
    /// `TooClose` when another non-cancelled order of the customer lies within
    /// `window`, also when two calls race; `InsufficientStock` when a product has
    /// fewer units than a line needs; `CustomerNotFound` when the customer vanished;
    /// `KeyHeldElsewhere` when the key is not linked to this order because
    /// another request with it linked its own first (or gave the key up): the key
    /// is linked only while it names no order yet.
    /// On any error nothing is written and no number is used up.
    async fn insert(
        &self,
        order: NewOrder,
        window: SpacingWindow,
        idempotency: Option<(KeyOwner, IdempotencyKey)>,
    ) -> Result<Order, PlaceOrderError>;

    /// One order with its lines, or `None`.
    ///
    /// # Errors
    /// When storage fails.
    async fn find(&self, order: OrderRef) -> anyhow::Result<Option<Order>>;

    /// A page of orders matching `filter`, newest first, with their lines, in a
    /// fixed number of queries.
    ///
    /// # Errors
    /// When storage fails.
    async fn list(&self, filter: OrderFilter, page: PageRequest) -> anyhow::Result<Page<Order>>;

    /// Replaces schedule, lines and note of the order if it is still at
    /// `revision.expected`, moving reserved stock by the difference between old and
    /// new lines, in one transaction.
    ///
    /// # Errors
    /// `VersionMismatch` when the order changed or vanished; `TooClose` and
    /// `InsufficientStock` as for [`insert`](Self::insert).
    async fn revise(
        &self,
        revision: OrderRevision,
        window: SpacingWindow,
    ) -> Result<Order, UpdateOrderError>;

    /// Moves the order to `to` if it is still at `expected`, releasing its reserved
    /// stock when `release_stock`, in one transaction. `None` when the order changed
    /// or vanished in the meantime.
    ///
    /// # Errors
    /// When storage fails.
    async fn transition(
        &self,
        id: OrderId,
        expected: Version,
        to: OrderStatus,
        release_stock: bool,
        at: DateTime<Utc>,
    ) -> anyhow::Result<Option<Order>>;

    /// Deletes the order and its lines if it is still at `expected`, releasing its
    /// reserved stock when `release_stock` (stamping the products with `at`).
    /// `false` when it changed or vanished.
    ///
    /// # Errors
    /// When storage fails.
    async fn delete(
        &self,
        id: OrderId,
        expected: Version,
        release_stock: bool,
        at: DateTime<Utc>,
    ) -> anyhow::Result<bool>;
}

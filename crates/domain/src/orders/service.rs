use std::sync::Arc;

use super::{
    CancelOrderError, DeleteOrderError, KeyHeldElsewhere, NewOrder, Order, OrderFilter, OrderId,
    OrderItems, OrderLine, OrderRef, OrderRepository, OrderRevision, OrderStatus, PlaceOrder,
    PlaceOrderError, PricingError, ReviseOrder, ScheduledAt, SpacingWindow, UpdateOrderError,
    price_lines,
};
use crate::catalog::ProductRepository;
use crate::clock::Clock;
use crate::customers::CustomerRepository;
use crate::idempotency::IdempotentRequest;
use crate::ids::IdSource;
use crate::money::Money;
use crate::page::{Page, PageRequest};
use crate::value::VersionMatch;

/// How often a use case re-reads an order that changed under it before giving up.
const OPTIMISTIC_ATTEMPTS: usize = 3;

/// The knobs of the order rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderPolicy {
    /// The minimum distance between two orders of one customer.
    pub spacing: SpacingWindow,
}

/// The orders' use cases.
#[derive(Clone)]
pub struct OrderService {
    orders: Arc<dyn OrderRepository>,
    products: Arc<dyn ProductRepository>,
    customers: Arc<dyn CustomerRepository>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    policy: OrderPolicy,
}

impl std::fmt::Debug for OrderService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl OrderService {
    /// A service over the given ports.
    pub fn new(
        orders: Arc<dyn OrderRepository>,
        products: Arc<dyn ProductRepository>,
        customers: Arc<dyn CustomerRepository>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        policy: OrderPolicy,
    ) -> Self {
        Self {
            orders,
            products,
            customers,
            clock,
            ids,
            policy,
        }
    }

    /// The rules in force.
    pub fn policy(&self) -> OrderPolicy {
        self.policy
    }

    /// Places an order: checks the customer, prices the items from the catalog and
    /// stores the order with its number, reserving stock.
    ///
    /// # Errors
    /// `CustomerNotFound`, `Pricing`, `TooClose`, `InsufficientStock`.
    pub async fn place(&self, request: PlaceOrder) -> Result<Order, PlaceOrderError> {
        self.place_with_key(request, None).await
    }

    /// Places an order as [`place`](Self::place) does; with `idempotency`, the
    /// request's claimed key is linked to the order in the order's own
    /// transaction, so a repetition that takes the key over from a request that
    /// died before answering finds the order it placed (and places none). The
    /// link is conditional: when another request with the key linked its order
    /// first (the two overlapped past the first one's lease), this one's order is
    /// not written and the answer is that order — one key, one order.
    ///
    /// # Errors
    /// As [`place`](Self::place), and `KeyHeldElsewhere` when another request
    /// with the key gave it up or has not linked an order to it.
    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %request.customer_id))]
    pub async fn place_with_key(
        &self,
        request: PlaceOrder,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<Order, PlaceOrderError> {
        let now = self.clock.now();
        if self.customers.find(request.customer_id).await?.is_none() {
            return Err(PlaceOrderError::CustomerNotFound(request.customer_id));
        }
        let (lines, total) = self.price(&request.items).await?;
        let order = NewOrder {
            id: OrderId::from_uuid(self.ids.new_id()),
            customer_id: request.customer_id,
            scheduled_at: request.scheduled_at.map_or(now, ScheduledAt::get),
            lines,
            total,
            note: request.note,
            created_at: now,
        };
        let link = idempotency.map(|r| (r.owner, r.key));
        match self.orders.insert(order, self.policy.spacing, link).await {
            Err(PlaceOrderError::KeyHeldElsewhere(KeyHeldElsewhere {
                linked_order: Some(id),
            })) => self.orders.find(OrderRef::Id(id)).await?.ok_or_else(|| {
                anyhow::anyhow!("the idempotency key is linked to order {id}, which is gone").into()
            }),
            placed => placed,
        }
    }

    /// One order by id or number, or `None`.
    ///
    /// # Errors
    /// When storage fails.
    #[tracing::instrument(level = "debug", skip_all, fields(order = ?order))]
    pub async fn get(&self, order: OrderRef) -> anyhow::Result<Option<Order>> {
        self.orders.find(order).await
    }

    /// A page of orders, newest first.
    ///
    /// # Errors
    /// When storage fails.
    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = ?filter.customer_id))]
    pub async fn list(
        &self,
        filter: OrderFilter,
        page: PageRequest,
    ) -> anyhow::Result<Page<Order>> {
        self.orders.list(filter, page).await
    }

    /// Replaces a placed order's schedule, items and note. With `if_match`, only
    /// when the order is still at that version; without, a concurrent change is
    /// retried against the fresh order a few times.
    ///
    /// # Errors
    /// `NotFound`, `NotEditable`, `VersionMismatch` (only with `if_match`),
    /// `Contended` (only without), `Pricing`, `TooClose`, `InsufficientStock`.
    #[tracing::instrument(level = "debug", skip_all, fields(order_id = %id))]
    pub async fn revise(
        &self,
        id: OrderId,
        revision: ReviseOrder,
        if_match: Option<VersionMatch>,
    ) -> Result<Order, UpdateOrderError> {
        let (lines, total) = self.price(&revision.items).await?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let current = self
                .orders
                .find(OrderRef::Id(id))
                .await?
                .ok_or(UpdateOrderError::NotFound(id))?;
            if if_match
                .as_ref()
                .is_some_and(|expected| !expected.admits(current.version()))
            {
                return Err(UpdateOrderError::VersionMismatch(id));
            }
            if !current.status().is_editable() {
                return Err(UpdateOrderError::NotEditable {
                    id,
                    status: current.status(),
                });
            }
            let stored = OrderRevision {
                id,
                customer_id: current.customer_id(),
                expected: current.version(),
                scheduled_at: revision.scheduled_at.get(),
                lines: lines.clone(),
                total,
                note: revision.note.clone(),
                at: self.clock.now(),
            };
            match self.orders.revise(stored, self.policy.spacing).await {
                Err(UpdateOrderError::VersionMismatch(_)) if if_match.is_none() => {
                    if attempts >= OPTIMISTIC_ATTEMPTS {
                        return Err(UpdateOrderError::Contended(id));
                    }
                }
                // With a named version, tell a vanished order from a changed one.
                Err(UpdateOrderError::VersionMismatch(_)) => {
                    return Err(match self.orders.find(OrderRef::Id(id)).await? {
                        Some(_) => UpdateOrderError::VersionMismatch(id),
                        None => UpdateOrderError::NotFound(id),
                    });
                }
                result => return result,
            }
        }
    }

    /// Cancels an order and returns its reserved stock.
    ///
    /// # Errors
    /// `NotFound`, `NotCancellable` (paid, pending payment or already cancelled),
    /// `Contended` when the order kept changing.
    #[tracing::instrument(level = "debug", skip_all, fields(order_id = %id))]
    pub async fn cancel(&self, id: OrderId) -> Result<Order, CancelOrderError> {
        for _ in 0..OPTIMISTIC_ATTEMPTS {
            let current = self
                .orders
                .find(OrderRef::Id(id))
                .await?
                .ok_or(CancelOrderError::NotFound(id))?;
            if !current.status().can_transition_to(OrderStatus::Cancelled) {
                return Err(CancelOrderError::NotCancellable {
                    id,
                    status: current.status(),
                });
            }
            let release = current.status().holds_stock();
            let moved = self
                .orders
                .transition(
                    id,
                    current.version(),
                    OrderStatus::Cancelled,
                    release,
                    self.clock.now(),
                )
                .await?;
            if let Some(order) = moved {
                return Ok(order);
            }
        }
        Err(CancelOrderError::Contended(id))
    }

    /// Deletes an order that involves no money, returning its reserved stock.
    ///
    /// # Errors
    /// `NotFound`, `NotDeletable`, `Contended`.
    #[tracing::instrument(level = "debug", skip_all, fields(order_id = %id))]
    pub async fn delete(&self, id: OrderId) -> Result<(), DeleteOrderError> {
        for _ in 0..OPTIMISTIC_ATTEMPTS {
            let current = self
                .orders
                .find(OrderRef::Id(id))
                .await?
                .ok_or(DeleteOrderError::NotFound(id))?;
            if !current.status().is_deletable() {
                return Err(DeleteOrderError::NotDeletable {
                    id,
                    status: current.status(),
                });
            }
            let release = current.status().holds_stock();
            let deleted = self
                .orders
                .delete(id, current.version(), release, self.clock.now())
                .await?;
            if deleted {
                return Ok(());
            }
        }
        Err(DeleteOrderError::Contended(id))
    }

    async fn price(&self, items: &OrderItems) -> Result<(Vec<OrderLine>, Money), PricingOrStorage> {
        let products = self
            .products
            .find_many(&items.product_ids())
            .await
            .map_err(PricingOrStorage::Storage)?;
        price_lines(items, &products).map_err(PricingOrStorage::Pricing)
    }
}

/// Pricing fails either on the rules or on storage; both use-case errors take both.
enum PricingOrStorage {
    Pricing(PricingError),
    Storage(anyhow::Error),
}

impl From<PricingOrStorage> for PlaceOrderError {
    fn from(e: PricingOrStorage) -> Self {
        match e {
            PricingOrStorage::Pricing(e) => e.into(),
            PricingOrStorage::Storage(e) => e.into(),
        }
    }
}

impl From<PricingOrStorage> for UpdateOrderError {
    fn from(e: PricingOrStorage) -> Self {
        match e {
            PricingOrStorage::Pricing(e) => e.into(),
            PricingOrStorage::Storage(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests;

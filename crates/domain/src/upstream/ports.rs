use async_trait::async_trait;

use super::{
    ChargeError, CreateUpstreamOrderError, NewPayment, NewUpstreamOrder, UpstreamCallError,
    UpstreamHealth, UpstreamOrder, UpstreamOrderId, UpstreamOrderStatus, UpstreamPayment,
    UpstreamPaymentId, UpstreamProduct, UpstreamProductId,
};

/// Orders at the upstream.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UpstreamOrders: Send + Sync {
    /// Creates the upstream order of one of ours. Idempotent: creating it again
    /// with the same order id (and key) returns the same upstream order, also
    /// when calls race, so it is safe to repeat after any failure.
    ///
    /// # Errors
    /// `Rejected` (e.g. the order id is taken with another total), `OutcomeUnknown`
    /// when no answer came back, `Unavailable` when nothing was sent.
    async fn create_order(
        &self,
        order: NewUpstreamOrder,
    ) -> Result<UpstreamOrder, CreateUpstreamOrderError>;

    /// Sets an upstream order's status (e.g. `Completed` once paid).
    ///
    /// # Errors
    /// `NotFound`, `Rejected`, or `Unavailable` (the update may have happened;
    /// repeating it is safe).
    async fn update_order_status(
        &self,
        id: &UpstreamOrderId,
        status: UpstreamOrderStatus,
    ) -> Result<UpstreamOrder, UpstreamCallError>;

    /// One upstream order.
    ///
    /// # Errors
    /// `NotFound`, `Rejected`, or `Unavailable`.
    async fn get_order(&self, id: &UpstreamOrderId) -> Result<UpstreamOrder, UpstreamCallError>;
}

/// Payments at the upstream.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Charges `payment.amount` for an upstream order. At most one charge per
    /// idempotency key, however often this is called and whatever fails between:
    /// every retry carries the same key.
    ///
    /// # Errors
    /// `Declined` (nothing charged), `Rejected`, `OutcomeUnknown` (maybe charged:
    /// settle by calling again with the same key), `Unavailable` (nothing charged).
    async fn create_payment(&self, payment: NewPayment) -> Result<UpstreamPayment, ChargeError>;

    /// One payment.
    ///
    /// # Errors
    /// `NotFound`, `Rejected`, or `Unavailable`.
    async fn get_payment(
        &self,
        id: &UpstreamPaymentId,
    ) -> Result<UpstreamPayment, UpstreamCallError>;

    /// Refunds a payment in full. Refunding a refunded payment changes nothing.
    ///
    /// # Errors
    /// `NotFound`, `Rejected`, or `Unavailable` (the refund may have happened;
    /// repeating it is safe).
    async fn refund_payment(
        &self,
        id: &UpstreamPaymentId,
    ) -> Result<UpstreamPayment, UpstreamCallError>;
}

/// The upstream's product catalog, which the local catalog is synced from.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CatalogSource: Send + Sync {
    /// Every upstream product, in the upstream's order.
    ///
    /// # Errors
    /// `Rejected` or `Unavailable`; `Unexpected` when a product cannot be read
    /// (e.g. a price that is not exact cents).
    async fn list_products(&self) -> Result<Vec<UpstreamProduct>, UpstreamCallError>;

    /// One upstream product.
    ///
    /// # Errors
    /// `NotFound`, `Rejected`, `Unavailable`, or `Unexpected`.
    async fn get_product(
        &self,
        id: &UpstreamProductId,
    ) -> Result<UpstreamProduct, UpstreamCallError>;
}

/// What the adapter knows about the upstream's recent health.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait UpstreamMonitor: Send + Sync {
    /// The circuit's position and the recent error rate and latencies.
    fn health(&self) -> UpstreamHealth;
}

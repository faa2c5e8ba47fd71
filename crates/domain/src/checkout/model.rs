use chrono::{DateTime, Utc};

use super::{CheckoutState, StartCheckoutError};
use crate::baskets::{Basket, BasketId};
use crate::customers::CustomerId;
use crate::idempotency::{IdempotentRequest, KeyOwner};
use crate::money::Money;
use crate::orders::{NewOrder, Order, OrderId, PaymentInfo, ScheduledAt};
use crate::upstream::{IdempotencyKey, PaymentToken, UpstreamOrderStatus, UpstreamPaymentId};

/// A request to check a basket out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartCheckout {
    /// The basket.
    pub basket_id: BasketId,
    /// Whom the order is for, when the basket does not say (or to confirm it).
    pub customer_id: Option<CustomerId>,
    /// When the order is due; now when omitted.
    pub scheduled_at: Option<ScheduledAt>,
    /// The customer's payment method.
    pub payment_token: PaymentToken,
    /// The request's claimed idempotency key, linked to the order it creates.
    pub idempotency: Option<IdempotentRequest>,
}

/// What the checkout store writes in its one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCheckout {
    /// The order to create (its id is also the checkout's).
    pub order_id: OrderId,
    /// The basket to check out.
    pub basket_id: BasketId,
    /// The customer the request names, if any.
    pub customer_id: Option<CustomerId>,
    /// When the order is due, if the request says.
    pub scheduled_at: Option<ScheduledAt>,
    /// The customer's payment method.
    pub payment_token: PaymentToken,
    /// The idempotency key to link to the order.
    pub idempotency: Option<(KeyOwner, IdempotencyKey)>,
    /// The instant of checking out.
    pub at: DateTime<Utc>,
    /// Until when the request itself drives the checkout: reconciliation leaves
    /// it alone until then.
    pub lease_until: DateTime<Utc>,
    /// The request's claim on the checkout: its steps are recorded only while
    /// the checkout still carries it.
    pub claim: ClaimToken,
}

/// What checking a basket out writes locally: the basket, checked out, and the
/// order made of its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutPlan {
    /// The basket as it is stored afterwards.
    pub basket: Basket,
    /// The order to place, with the basket's lines at their kept prices.
    pub order: NewOrder,
}

impl NewCheckout {
    /// The rule the store applies to the basket it holds locked: an open basket
    /// with lines, whose customer is known (and not contradicted by the request),
    /// becomes a checked-out basket and an order of its lines, at the prices the
    /// customer was shown.
    ///
    /// # Errors
    /// `BasketNotOpen`, `BasketEmpty`, `CustomerRequired`, `CustomerMismatch`.
    pub fn plan(&self, basket: &Basket) -> Result<CheckoutPlan, StartCheckoutError> {
        let checked_out =
            basket
                .checked_out(self.at)
                .map_err(|status| StartCheckoutError::BasketNotOpen {
                    id: basket.id(),
                    status,
                })?;
        if basket.lines().is_empty() {
            return Err(StartCheckoutError::BasketEmpty(basket.id()));
        }
        let customer_id = match (basket.customer_id(), self.customer_id) {
            (Some(owner), Some(named)) if owner != named => {
                return Err(StartCheckoutError::CustomerMismatch {
                    basket: basket.id(),
                    owner,
                });
            }
            (owner, named) => named
                .or(owner)
                .ok_or(StartCheckoutError::CustomerRequired)?,
        };
        Ok(CheckoutPlan {
            order: NewOrder {
                id: self.order_id,
                customer_id,
                scheduled_at: self.scheduled_at.map_or(self.at, ScheduledAt::get),
                lines: basket.lines().to_vec(),
                total: basket.total(),
                note: None,
                created_at: self.at,
            },
            basket: checked_out,
        })
    }
}

/// A checkout as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// Its order (and its own id).
    pub order_id: OrderId,
    /// The basket it checked out.
    pub basket_id: BasketId,
    /// Where it is.
    pub state: CheckoutState,
    /// What it charges: the order's total.
    pub total: Money,
    /// The customer's payment method.
    pub payment_token: PaymentToken,
    /// The upstream payment, once known.
    pub payment_id: Option<UpstreamPaymentId>,
    /// Steps tried that made no progress.
    pub attempts: u32,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// Whether an attempt at driving it ever ended without recording its
    /// outcome (its worker died, or the write failed) and so may have sent the
    /// payment, whatever `state` says: set when a worker takes the checkout over
    /// from a claim whose lease ran out, and kept for good.
    pub interrupted: bool,
    /// The claim this copy was read under: `Some` when the reader holds the
    /// checkout and may drive it, `None` when another worker holds it (or it
    /// was only read).
    pub claim: Option<ClaimToken>,
}

impl Checkout {
    /// Whether the customer may have been charged without our knowing: its
    /// state says a payment is in doubt, or an attempt was interrupted (after
    /// which the payment may have been sent from any state). Such a checkout is
    /// never given up, only settled by asking the upstream under the same keys.
    pub fn may_have_charged(&self) -> bool {
        self.state.may_have_charged() || self.interrupted
    }

    /// The key of creating the upstream order: derived from our order id, so the
    /// same in every attempt and every process.
    pub fn upstream_order_key(&self) -> IdempotencyKey {
        IdempotencyKey::for_id("order", self.order_id.as_uuid())
    }

    /// The key of the payment: derived from our order id, so a retry, a
    /// reconciliation or a restarted process can only ever repeat the one charge.
    pub fn payment_key(&self) -> IdempotencyKey {
        IdempotencyKey::for_id("payment", self.order_id.as_uuid())
    }
}

/// One recorded step of a checkout: from `from` (a compare-and-set: nothing
/// happens when the checkout is no longer there, or no longer held under
/// `claim`) to `to`, which may equal `from` when the step made no progress (an
/// attempt is counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutUpdate {
    /// The checkout.
    pub order_id: OrderId,
    /// The claim the step was taken under; recording the step gives it up (the
    /// checkout is due again at `next_attempt_at` unless final).
    pub claim: ClaimToken,
    /// The state it was read in.
    pub from: CheckoutState,
    /// The state it moves to.
    pub to: CheckoutState,
    /// Whether this step created the upstream order (or found it created): the
    /// order's fulfilment is pending from now on.
    pub placed_upstream: bool,
    /// The payment as the order shows it from now on, if this step learned of it.
    pub payment: Option<PaymentInfo>,
    /// The upstream payment, when this step learned it.
    pub payment_id: Option<UpstreamPaymentId>,
    /// Why the step made no progress or failed, for operators.
    pub error: Option<String>,
    /// When reconciliation may take it up next (unless final).
    pub next_attempt_at: DateTime<Utc>,
    /// The instant of the step.
    pub at: DateTime<Utc>,
    /// How long a basket reopened by a failed checkout lives.
    pub basket_ttl: crate::baskets::BasketTtl,
}

/// How a checkout request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutOutcome {
    /// Charged: the order is `paid`.
    Paid(Order),
    /// The payment was declined: the order is `payment_failed`, its stock
    /// released, the basket open again.
    Declined {
        /// The order.
        order: Order,
        /// The upstream's reason.
        reason: String,
    },
    /// The upstream refused the order or payment for good (not a decline): as
    /// declined, nothing charged.
    Refused {
        /// The order.
        order: Order,
        /// The upstream's reason.
        reason: String,
    },
    /// Not settled yet (the upstream did not answer in time): the order is
    /// `pending_payment`; reconciliation settles it.
    Pending(Order),
}

impl CheckoutOutcome {
    /// The order as it stands.
    pub fn order(&self) -> &Order {
        match self {
            Self::Paid(order) | Self::Pending(order) => order,
            Self::Declined { order, .. } | Self::Refused { order, .. } => order,
        }
    }
}

/// What one reconciliation pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Checkouts taken up.
    pub examined: usize,
    /// Of those, now paid.
    pub paid: usize,
    /// Now failed (declined, refused, or given up), stock released.
    pub failed: usize,
    /// Still waiting for the upstream (or taken over by another worker).
    pub pending: usize,
}

/// A completion to deliver to the upstream: set the upstream order of
/// `order_id` to `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxDelivery {
    /// The outbox row.
    pub id: uuid::Uuid,
    /// Our order (its id is the upstream order's).
    pub order_id: OrderId,
    /// The status to deliver: `Completed` once paid, `Failed` once failed.
    pub status: UpstreamOrderStatus,
    /// Deliveries tried before.
    pub attempts: u32,
    /// The claim the row was taken under: its result is recorded only while the
    /// row still carries it.
    pub claim: ClaimToken,
}

/// What one outbox dispatch pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Delivered (or found to need no delivery).
    pub delivered: usize,
    /// Failed this time; tried again later.
    pub retried: usize,
    /// Given up: refused by the upstream, or out of attempts.
    pub abandoned: usize,
    /// Tried, but the claim had run out and another dispatcher had taken the
    /// row up meanwhile: its result, not this one, is recorded.
    pub superseded: usize,
}

impl DispatchReport {
    /// Rows this pass took up.
    pub fn handled(&self) -> usize {
        self.delivered + self.retried + self.abandoned + self.superseded
    }
}

impl std::ops::AddAssign for DispatchReport {
    fn add_assign(&mut self, other: Self) {
        self.delivered += other.delivered;
        self.retried += other.retried;
        self.abandoned += other.abandoned;
        self.superseded += other.superseded;
    }
}

/// A worker's claim on the rows it took up (checkouts, outbox rows): a fresh
/// token per claim, which the row carries while the worker holds it. A result
/// is recorded only where the row still carries the token, so a worker whose
/// lease ran out cannot overwrite the attempt of the worker that took over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimToken(uuid::Uuid);

impl ClaimToken {
    /// The token `id` (a fresh id per claim).
    pub fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }

    /// The token as stored.
    pub fn as_uuid(self) -> uuid::Uuid {
        self.0
    }
}

/// What waits in the outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxBacklog {
    /// Deliveries not yet made (ready or waiting for their checkout to settle).
    pub pending: u64,
    /// When the oldest of them was written.
    pub oldest_pending_since: Option<DateTime<Utc>>,
}

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Checkout, CheckoutUpdate, ClaimToken, NewCheckout, OutboxBacklog, OutboxDelivery,
    StartCheckoutError,
};
use crate::orders::{Order, OrderId, SpacingWindow};

/// The checkout's unit of work: what must be written together, written together.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CheckoutStore: Send + Sync {
    /// In one transaction: holds the basket, applies [`NewCheckout::plan`] to it,
    /// places the order in `pending_payment` by the rules of
    /// [`OrderRepository::insert`](crate::orders::OrderRepository::insert) (spacing
    /// under the customer's lock, stock reserved, the day's next number), stores
    /// the basket checked out, writes the checkout record (claimed by the request
    /// under `claim` until `lease_until`), links the idempotency key to the order and writes the
    /// outbox row of the upstream completion (waiting until the checkout settles).
    /// Of concurrent checkouts of one basket exactly one succeeds.
    ///
    /// # Errors
    /// `BasketNotFound`, whatever `plan` refuses, and `Order` with the order
    /// rules' refusals. On any error nothing is written.
    async fn begin(
        &self,
        checkout: NewCheckout,
        window: SpacingWindow,
    ) -> Result<(Checkout, Order), StartCheckoutError>;

    /// Records a step, if the checkout is still in `update.from` and still
    /// carries `update.claim`, and gives the claim up; in one transaction with
    /// it, the order takes the state's status and payment (and a pending
    /// fulfilment with `update.placed_upstream`), and when the step is final: a
    /// failed checkout releases the order's stock and reopens the basket, and
    /// either way the outbox row becomes due. `None` when
    /// the checkout was no longer in `update.from` or no longer held under the
    /// claim (its lease ran out and another worker took it up).
    ///
    /// # Errors
    /// When storage fails.
    async fn record(&self, update: CheckoutUpdate) -> anyhow::Result<Option<(Checkout, Order)>>;

    /// Up to `limit` unsettled checkouts that are due at `now` and held by
    /// nobody (or whose holder's lease ran out), each claimed under `claim` until
    /// `lease_until` so that no other worker takes it up meanwhile (rows another
    /// claimer is locking are skipped, not waited for). A checkout taken over
    /// from a holder whose lease ran out is marked
    /// [`interrupted`](Checkout::interrupted) in the same write: that holder
    /// never recorded its outcome and may have sent the payment.
    ///
    /// # Errors
    /// When storage fails.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        claim: ClaimToken,
    ) -> anyhow::Result<Vec<(Checkout, Order)>>;

    /// The checkout of `order_id`, claimed under `claim` until `lease_until` when
    /// it is unsettled and held by nobody at `now` (due or not: its client asks
    /// again); read without a claim (`Checkout::claim` is `None`) when it is
    /// settled or another worker holds it. `None` when there is no such checkout.
    /// A takeover marks it [`interrupted`](Checkout::interrupted), as
    /// [`claim_due`](Self::claim_due) does.
    ///
    /// # Errors
    /// When storage fails.
    async fn claim_one(
        &self,
        order_id: OrderId,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        claim: ClaimToken,
    ) -> anyhow::Result<Option<(Checkout, Order)>>;
}

/// The outbox: deliveries to the upstream, written with the local change they
/// follow from and made at least once.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Up to `limit` deliveries due at `now` and held by nobody (or whose
    /// holder's lease ran out), each claimed under `claim` until `lease_until`
    /// (rows another dispatcher is locking are skipped, not waited for).
    ///
    /// # Errors
    /// When storage fails.
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        claim: ClaimToken,
    ) -> anyhow::Result<Vec<OutboxDelivery>>;

    /// The delivery was made; the claim is given up. `false` (nothing recorded)
    /// when the row no longer carries `claim`. The same holds for
    /// [`retry_later`](Self::retry_later) and [`abandon`](Self::abandon).
    ///
    /// # Errors
    /// When storage fails.
    async fn delivered(
        &self,
        id: uuid::Uuid,
        claim: ClaimToken,
        at: DateTime<Utc>,
    ) -> anyhow::Result<bool>;

    /// The delivery failed; counts the attempt and tries again at `next_attempt_at`.
    ///
    /// # Errors
    /// When storage fails.
    async fn retry_later(
        &self,
        id: uuid::Uuid,
        claim: ClaimToken,
        error: String,
        next_attempt_at: DateTime<Utc>,
    ) -> anyhow::Result<bool>;

    /// The delivery is given up (kept, with the reason, for operators).
    ///
    /// # Errors
    /// When storage fails.
    async fn abandon(
        &self,
        id: uuid::Uuid,
        claim: ClaimToken,
        error: String,
        at: DateTime<Utc>,
    ) -> anyhow::Result<bool>;

    /// How many deliveries are not yet made, and since when the oldest waits.
    ///
    /// # Errors
    /// When storage fails.
    async fn backlog(&self) -> anyhow::Result<OutboxBacklog>;
}

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::join_all;

use super::{
    Checkout, CheckoutOutcome, CheckoutState, CheckoutStore, CheckoutUpdate, ClaimToken,
    DispatchReport, NewCheckout, Outbox, OutboxBacklog, OutboxDelivery, ReconcileReport,
    StartCheckout, StartCheckoutError,
};
use crate::baskets::BasketTtl;
use crate::clock::Clock;
use crate::ids::IdSource;
use crate::orders::{Order, OrderId, PaymentInfo, SpacingWindow};
use crate::upstream::{
    ChargeError, CircuitState, CreateUpstreamOrderError, NewPayment, NewUpstreamOrder,
    PaymentGateway, UpstreamCallError, UpstreamMonitor, UpstreamOrderId, UpstreamOrderStatus,
    UpstreamOrders, UpstreamPaymentId, UpstreamPaymentStatus,
};
use crate::{Dependency, Unavailable};

/// The knobs of checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckoutPolicy {
    /// The order rules' spacing window (as `/v1/orders`).
    pub spacing: SpacingWindow,
    /// How long a basket reopened by a failed checkout lives.
    pub basket_ttl: BasketTtl,
    /// How long a request (or a reconciliation pass, or a dispatcher) holds a
    /// checkout or delivery it claimed before another worker may take it up:
    /// longer than the upstream calls of one row take (the rows of a batch are
    /// worked on at once).
    pub lease: TimeDelta,
    /// How many rows a worker claims at a time: small, so that what one worker
    /// holds is soon done and the rest stays free for the others.
    pub claim_batch: usize,
    /// The pause before a checkout or delivery that made no progress is tried
    /// again; it doubles with every further attempt ...
    pub retry_base: TimeDelta,
    /// ... up to this.
    pub retry_max: TimeDelta,
    /// A checkout that cannot have sent its payment is given up (stock released,
    /// basket reopened) this long after it started: one whose state says no
    /// payment is in doubt and none of whose attempts was interrupted (see
    /// [`Checkout::may_have_charged`]). Any other is driven on until the
    /// upstream settles it.
    pub give_up_after: TimeDelta,
    /// `Retry-After` while the upstream's circuit is open.
    pub circuit_retry_after: Duration,
    /// Deliveries tried at most, per outbox row.
    pub max_delivery_attempts: u32,
}

impl Default for CheckoutPolicy {
    fn default() -> Self {
        Self {
            spacing: SpacingWindow::default(),
            basket_ttl: BasketTtl::default(),
            lease: TimeDelta::seconds(60),
            claim_batch: 10,
            retry_base: TimeDelta::seconds(1),
            retry_max: TimeDelta::minutes(5),
            give_up_after: TimeDelta::hours(1),
            circuit_retry_after: Duration::from_secs(5),
            max_delivery_attempts: 20,
        }
    }
}

impl CheckoutPolicy {
    /// The pause after the `attempt`-th attempt without progress (1-based).
    fn backoff(&self, attempt: u32) -> TimeDelta {
        let doublings = attempt.saturating_sub(1).min(20);
        self.retry_base
            .checked_mul(1 << doublings)
            .map_or(self.retry_max, |pause| pause.min(self.retry_max))
    }
}

/// The ports checkout works through.
#[derive(Clone)]
pub struct CheckoutPorts {
    /// The unit of work.
    pub store: Arc<dyn CheckoutStore>,
    /// The deliveries to the upstream.
    pub outbox: Arc<dyn Outbox>,
    /// Upstream orders.
    pub upstream_orders: Arc<dyn UpstreamOrders>,
    /// Payments.
    pub payments: Arc<dyn PaymentGateway>,
    /// The upstream's circuit.
    pub monitor: Arc<dyn UpstreamMonitor>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// New ids.
    pub ids: Arc<dyn IdSource>,
}

impl std::fmt::Debug for CheckoutPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckoutPorts").finish_non_exhaustive()
    }
}

/// The checkout use cases: checking out, reconciling, dispatching the outbox.
#[derive(Clone)]
pub struct CheckoutService {
    ports: CheckoutPorts,
    policy: CheckoutPolicy,
}

impl std::fmt::Debug for CheckoutService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckoutService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// What one step learned.
#[derive(Debug)]
struct Step {
    to: CheckoutState,
    placed_upstream: bool,
    payment: Option<PaymentInfo>,
    payment_id: Option<UpstreamPaymentId>,
    error: Option<String>,
    declined: bool,
}

impl Step {
    fn to(to: CheckoutState) -> Self {
        Self {
            to,
            placed_upstream: false,
            payment: None,
            payment_id: None,
            error: None,
            declined: false,
        }
    }

    fn stuck(state: CheckoutState, error: String) -> Self {
        Self {
            error: Some(error),
            ..Self::to(state)
        }
    }

    fn in_doubt(error: String) -> Self {
        Self {
            payment: Some(payment_info("unknown", None)),
            ..Self::stuck(CheckoutState::PendingPayment, error)
        }
    }

    fn paid(id: UpstreamPaymentId) -> Self {
        Self {
            payment: Some(payment_info("completed", Some(&id))),
            payment_id: Some(id),
            ..Self::to(CheckoutState::Paid)
        }
    }

    fn failed(status: &str, reason: String) -> Self {
        Self {
            payment: Some(payment_info(status, None)),
            declined: status == "declined",
            ..Self::stuck(CheckoutState::PaymentFailed, reason)
        }
    }
}

fn payment_info(status: &str, reference: Option<&UpstreamPaymentId>) -> PaymentInfo {
    PaymentInfo {
        status: status.to_owned(),
        reference: reference.map(|id| id.as_str().to_owned()),
    }
}

impl CheckoutService {
    /// A service over `ports` under `policy`.
    pub fn new(ports: CheckoutPorts, policy: CheckoutPolicy) -> Self {
        Self { ports, policy }
    }

    /// Checks a basket out: writes the order and everything local in one
    /// transaction, then creates the upstream order and pays, and answers with
    /// where that got. Once the order is written, nothing the upstream does is an
    /// error: an unanswered step leaves the checkout pending for
    /// [`reconcile_due`](Self::reconcile_due).
    ///
    /// # Errors
    /// `UpstreamUnavailable` while the upstream's circuit is open (nothing
    /// written), and the refusals of [`CheckoutStore::begin`].
    #[tracing::instrument(level = "debug", skip_all, fields(basket_id = %request.basket_id))]
    pub async fn checkout(
        &self,
        request: StartCheckout,
    ) -> Result<CheckoutOutcome, StartCheckoutError> {
        if self.ports.monitor.health().circuit == CircuitState::Open {
            return Err(StartCheckoutError::UpstreamUnavailable(Unavailable::new(
                Dependency::Upstream,
                self.policy.circuit_retry_after,
                "the upstream is failing (its circuit breaker is open)",
            )));
        }
        let at = self.ports.clock.now();
        let new = NewCheckout {
            order_id: OrderId::from_uuid(self.ports.ids.new_id()),
            basket_id: request.basket_id,
            customer_id: request.customer_id,
            scheduled_at: request.scheduled_at,
            payment_token: request.payment_token,
            idempotency: request.idempotency.map(|r| (r.owner, r.key)),
            at,
            lease_until: at + self.policy.lease,
            claim: self.new_claim(),
        };
        let (checkout, order) = self.ports.store.begin(new, self.policy.spacing).await?;
        Ok(self.drive(checkout, order).await)
    }

    /// Takes up to `limit` unsettled checkouts that are due and drives each as far
    /// as the upstream lets it, with the same idempotency keys as before: a
    /// payment in doubt is sent again under its key, which the upstream answers
    /// with the first outcome (or performs once, if it never arrived). A checkout
    /// that cannot have sent its payment — no payment in doubt, and no attempt
    /// interrupted after which one may have been sent
    /// ([`Checkout::may_have_charged`]) — and is older than the policy's
    /// `give_up_after` is failed instead: stock released, basket reopened. An
    /// interrupted one is driven on under the same keys, however old.
    ///
    /// # Errors
    /// When storage fails while claiming.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn reconcile_due(&self, limit: usize) -> anyhow::Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        while report.examined < limit {
            let now = self.ports.clock.now();
            let batch = self.policy.claim_batch.min(limit - report.examined);
            let claimed = self
                .ports
                .store
                .claim_due(now, now + self.policy.lease, batch, self.new_claim())
                .await?;
            let exhausted = claimed.len() < batch;
            let outcomes = join_all(
                claimed
                    .into_iter()
                    .map(|(checkout, order)| self.reconcile_one(checkout, order, now)),
            )
            .await;
            for outcome in outcomes {
                report.examined += 1;
                match outcome {
                    CheckoutOutcome::Paid(_) => report.paid += 1,
                    CheckoutOutcome::Declined { .. } | CheckoutOutcome::Refused { .. } => {
                        report.failed += 1;
                    }
                    CheckoutOutcome::Pending(_) => report.pending += 1,
                }
            }
            if exhausted {
                break;
            }
        }
        Ok(report)
    }

    async fn reconcile_one(
        &self,
        checkout: Checkout,
        order: Order,
        now: DateTime<Utc>,
    ) -> CheckoutOutcome {
        let abandoned =
            !checkout.may_have_charged() && now - checkout.created_at >= self.policy.give_up_after;
        if abandoned {
            let step = Step::failed(
                "failed",
                format!(
                    "given up: the upstream did not take the order within {} minutes",
                    self.policy.give_up_after.num_minutes()
                ),
            );
            self.settle(checkout, order, step).await
        } else {
            self.drive(checkout, order).await
        }
    }

    /// Takes the checkout of `order_id` up again for its client, who repeated a
    /// request whose first attempt died with its process: drives it on from
    /// where it stopped, with the same keys (never a second charge), or answers
    /// with where it is when it is settled or another worker holds it. `None`
    /// when there is no such checkout.
    ///
    /// # Errors
    /// When storage fails.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn resume(&self, order_id: OrderId) -> anyhow::Result<Option<CheckoutOutcome>> {
        let now = self.ports.clock.now();
        let found = self
            .ports
            .store
            .claim_one(order_id, now, now + self.policy.lease, self.new_claim())
            .await?;
        let Some((checkout, order)) = found else {
            return Ok(None);
        };
        let declined = order
            .payment()
            .is_some_and(|payment| payment.status == "declined");
        if checkout.state.is_final() {
            return Ok(Some(final_outcome(
                checkout.state,
                order,
                declined,
                "settled before".to_owned(),
            )));
        }
        Ok(Some(self.drive(checkout, order).await))
    }

    /// Delivers up to `limit` due outbox rows (the upstream order's final status),
    /// claiming a small batch at a time and delivering its rows at once, and
    /// records each result under the claim: delivered, tried again later after a
    /// growing pause, or given up when refused or out of attempts.
    ///
    /// # Errors
    /// When storage fails.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn dispatch_outbox_once(&self, limit: usize) -> anyhow::Result<DispatchReport> {
        let mut report = DispatchReport::default();
        while report.handled() < limit {
            let now = self.ports.clock.now();
            let batch = self.policy.claim_batch.min(limit - report.handled());
            let due = self
                .ports
                .outbox
                .claim_deliveries(now, now + self.policy.lease, batch, self.new_claim())
                .await?;
            let exhausted = due.len() < batch;
            for result in join_all(due.into_iter().map(|d| self.deliver(d))).await {
                report += result?;
            }
            if exhausted {
                break;
            }
        }
        Ok(report)
    }

    /// Delivers one claimed row and records the result under its claim.
    async fn deliver(&self, delivery: OutboxDelivery) -> anyhow::Result<DispatchReport> {
        let result = self
            .ports
            .upstream_orders
            .update_order_status(&UpstreamOrderId::of(delivery.order_id), delivery.status)
            .await;
        let at = self.ports.clock.now();
        let attempt = delivery.attempts + 1;
        let outbox = &self.ports.outbox;
        let (id, claim) = (delivery.id, delivery.claim);
        let (recorded, counted) = match result {
            Ok(_) => (outbox.delivered(id, claim, at).await?, Counted::Delivered),
            // A checkout that failed before its upstream order existed.
            Err(UpstreamCallError::NotFound(_))
                if delivery.status == UpstreamOrderStatus::Failed =>
            {
                (outbox.delivered(id, claim, at).await?, Counted::Delivered)
            }
            Err(e @ UpstreamCallError::Rejected(_)) => (
                outbox.abandon(id, claim, e.to_string(), at).await?,
                Counted::Abandoned,
            ),
            Err(e) if attempt >= self.policy.max_delivery_attempts => {
                let reason = format!("{e} (after {attempt} attempts)");
                (
                    outbox.abandon(id, claim, reason, at).await?,
                    Counted::Abandoned,
                )
            }
            Err(e) => {
                let next = at + self.policy.backoff(attempt);
                (
                    outbox.retry_later(id, claim, e.to_string(), next).await?,
                    Counted::Retried,
                )
            }
        };
        let mut report = DispatchReport::default();
        match (recorded, counted) {
            (false, _) => {
                tracing::info!(outbox_id = %id, "the delivery's lease ran out; another dispatcher took it up");
                report.superseded = 1;
            }
            (true, Counted::Delivered) => report.delivered = 1,
            (true, Counted::Retried) => report.retried = 1,
            (true, Counted::Abandoned) => report.abandoned = 1,
        }
        Ok(report)
    }

    /// What waits in the outbox, for `GET /v1/integrations/upstream`.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn outbox_backlog(&self) -> anyhow::Result<OutboxBacklog> {
        self.ports.outbox.backlog().await
    }

    fn new_claim(&self) -> ClaimToken {
        ClaimToken::from_uuid(self.ports.ids.new_id())
    }

    /// Takes the one step the checkout's state needs — from `started`, the
    /// upstream order and then at once the payment; later, the payment (or the
    /// question about it) — and records where it got, giving the claim up. A
    /// payment whose outcome is unknown is not sent again here (that is
    /// reconciliation's, later). A checkout this worker does not hold is left to
    /// its holder.
    ///
    /// Nothing is recorded between the upstream order and the payment: the
    /// critical path is the two upstream calls and one write. A worker that dies
    /// between them leaves the checkout `started` with its claim on it, and
    /// whoever takes it over next marks it interrupted (never given up) and
    /// repeats the upstream order (idempotent on our order id) and the payment
    /// (under the same key): never a second order or charge.
    async fn drive(&self, checkout: Checkout, order: Order) -> CheckoutOutcome {
        if checkout.state.is_final() {
            return final_outcome(checkout.state, order, false, String::new());
        }
        if checkout.claim.is_none() {
            return CheckoutOutcome::Pending(order);
        }
        let step = self.step(&checkout).await;
        let declined = step.declined;
        let reason = step.error.clone().unwrap_or_default();
        match self.record(&checkout, step).await {
            Some((checkout, order)) => final_outcome(checkout.state, order, declined, reason),
            None => CheckoutOutcome::Pending(order),
        }
    }

    /// Records a final step decided without asking the upstream.
    async fn settle(&self, checkout: Checkout, order: Order, step: Step) -> CheckoutOutcome {
        let reason = step.error.clone().unwrap_or_default();
        match self.record(&checkout, step).await {
            Some((_, order)) => CheckoutOutcome::Refused { order, reason },
            None => CheckoutOutcome::Pending(order),
        }
    }

    /// Stores `step` under the checkout's claim, and gives the claim up;
    /// `None` (logged) when it could not be stored, or another worker took the
    /// checkout over meanwhile. The upstream calls are idempotent, so whoever
    /// takes the checkout up next repeats them harmlessly.
    async fn record(&self, checkout: &Checkout, step: Step) -> Option<(Checkout, Order)> {
        let claim = checkout.claim?;
        let at = self.ports.clock.now();
        let progressed = step.to != checkout.state;
        let pause = if progressed {
            self.policy.retry_base
        } else {
            self.policy.backoff(checkout.attempts + 1)
        };
        let update = CheckoutUpdate {
            order_id: checkout.order_id,
            claim,
            from: checkout.state,
            to: step.to,
            placed_upstream: step.placed_upstream,
            payment: step.payment,
            payment_id: step.payment_id,
            error: step.error,
            next_attempt_at: next_attempt(at, pause),
            at,
            basket_ttl: self.policy.basket_ttl,
        };
        match self.ports.store.record(update).await {
            Ok(Some(recorded)) => Some(recorded),
            Ok(None) => {
                tracing::info!(order_id = %checkout.order_id, "the checkout was moved, or taken over, by another worker");
                None
            }
            Err(e) => {
                tracing::warn!(order_id = %checkout.order_id, error = format!("{e:#}"), "could not record a checkout step; reconciliation repeats it");
                None
            }
        }
    }

    /// One step from the checkout's state: the upstream call it needs, classified.
    async fn step(&self, checkout: &Checkout) -> Step {
        match checkout.state {
            CheckoutState::Started => {
                let created = self
                    .ports
                    .upstream_orders
                    .create_order(NewUpstreamOrder {
                        order_id: checkout.order_id,
                        total: checkout.total,
                        basket_id: Some(checkout.basket_id.as_uuid()),
                        idempotency_key: checkout.upstream_order_key(),
                    })
                    .await;
                match created {
                    Ok(_) => Step {
                        placed_upstream: true,
                        ..self
                            .charge(checkout, CheckoutState::OrderPlacedUpstream)
                            .await
                    },
                    Err(CreateUpstreamOrderError::Rejected(r)) => {
                        Step::failed("failed", r.to_string())
                    }
                    Err(e) => Step::stuck(CheckoutState::Started, e.to_string()),
                }
            }
            CheckoutState::OrderPlacedUpstream | CheckoutState::PendingPayment => {
                match &checkout.payment_id {
                    Some(id) => self.ask_about(checkout, id).await,
                    None => self.charge(checkout, checkout.state).await,
                }
            }
            CheckoutState::Paid | CheckoutState::PaymentFailed => Step::to(checkout.state),
        }
    }

    /// Sends the payment; `placed` is the state the checkout is in with its
    /// upstream order known to exist, kept when the payment certainly did not
    /// reach the upstream.
    async fn charge(&self, checkout: &Checkout, placed: CheckoutState) -> Step {
        let charged = self
            .ports
            .payments
            .create_payment(NewPayment {
                order_id: UpstreamOrderId::of(checkout.order_id),
                amount: checkout.total,
                token: checkout.payment_token.clone(),
                idempotency_key: checkout.payment_key(),
            })
            .await;
        match charged {
            Ok(payment) => Step::paid(payment.id),
            Err(ChargeError::Declined { reason }) => Step::failed("declined", reason),
            Err(ChargeError::Rejected(r)) => Step::failed("failed", r.to_string()),
            // Nothing reached the upstream: no doubt was added.
            Err(e @ ChargeError::Unavailable(_)) => Step::stuck(placed, e.to_string()),
            Err(e @ (ChargeError::OutcomeUnknown(_) | ChargeError::Unexpected(_))) => {
                Step::in_doubt(e.to_string())
            }
        }
    }

    async fn ask_about(&self, checkout: &Checkout, id: &UpstreamPaymentId) -> Step {
        match self.ports.payments.get_payment(id).await {
            Ok(payment) if payment.status == UpstreamPaymentStatus::Completed => {
                Step::paid(payment.id)
            }
            Ok(_) => Step::failed("failed", format!("payment {id} was refunded")),
            Err(UpstreamCallError::NotFound(_)) => self.charge(checkout, checkout.state).await,
            Err(e) => Step::stuck(checkout.state, e.to_string()),
        }
    }
}

/// The answer for a checkout that stopped in `state`.
fn final_outcome(
    state: CheckoutState,
    order: Order,
    declined: bool,
    reason: String,
) -> CheckoutOutcome {
    match state {
        CheckoutState::Paid => CheckoutOutcome::Paid(order),
        CheckoutState::PaymentFailed if declined => CheckoutOutcome::Declined { order, reason },
        CheckoutState::PaymentFailed => CheckoutOutcome::Refused { order, reason },
        CheckoutState::Started
        | CheckoutState::OrderPlacedUpstream
        | CheckoutState::PendingPayment => CheckoutOutcome::Pending(order),
    }
}

/// What a delivery's result counts as, once recorded.
enum Counted {
    Delivered,
    Retried,
    Abandoned,
}

fn next_attempt(at: DateTime<Utc>, pause: TimeDelta) -> DateTime<Utc> {
    at.checked_add_signed(pause).unwrap_or(at)
}

#[cfg(test)]
mod tests;

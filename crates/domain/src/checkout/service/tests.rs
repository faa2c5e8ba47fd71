//! Every transition of the checkout state machine and every class of upstream
//! failure, with mocks of the ports.

use std::sync::{Arc, Mutex};

use chrono::{NaiveDate, TimeZone};
use mockall::predicate::always;

use super::*;
use crate::baskets::BasketId;
use crate::checkout::CheckoutPorts;
use crate::checkout::{ClaimToken, MockCheckoutStore, MockOutbox, OutboxDelivery};
use crate::clock::MockClock;
use crate::customers::CustomerId;
use crate::ids::MockIdSource;
use crate::money::{Currency, Money};
use crate::orders::{OrderNumber, OrderStatus};
use crate::upstream::{
    IdempotencyKey, MockPaymentGateway, MockUpstreamMonitor, MockUpstreamOrders, PaymentToken,
    UpstreamHealth, UpstreamOrder, UpstreamPayment, UpstreamRejection,
};
use crate::value::Version;

const ORDER: uuid::Uuid = uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0009);

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("currency"))
}

fn order_in(status: OrderStatus, payment: Option<PaymentInfo>) -> Order {
    Order::restore(
        OrderId::from_uuid(ORDER),
        OrderNumber::new(NaiveDate::from_ymd_opt(2026, 11, 24).expect("date"), 1).expect("number"),
        CustomerId::generate(),
        status,
        noon(),
        Vec::new(),
        eur(2_500),
        None,
        payment,
        None,
        noon(),
        noon(),
        Version::FIRST,
    )
}

fn checkout_in(state: CheckoutState) -> Checkout {
    Checkout {
        order_id: OrderId::from_uuid(ORDER),
        basket_id: BasketId::generate(),
        state,
        total: eur(2_500),
        payment_token: PaymentToken::parse("tok_ok").expect("token"),
        payment_id: None,
        attempts: 0,
        created_at: noon(),
        interrupted: false,
        claim: Some(claim()),
    }
}

/// The claim of every worker in these tests (the ids are all `ORDER`).
fn claim() -> ClaimToken {
    ClaimToken::from_uuid(ORDER)
}

fn request() -> StartCheckout {
    StartCheckout {
        basket_id: BasketId::generate(),
        customer_id: None,
        scheduled_at: None,
        payment_token: PaymentToken::parse("tok_ok").expect("token"),
        idempotency: None,
    }
}

fn health(circuit: CircuitState) -> UpstreamHealth {
    UpstreamHealth {
        circuit,
        recent_calls: 0,
        recent_error_rate: 0.0,
        latency_p50: None,
        latency_p99: None,
    }
}

fn payment() -> UpstreamPayment {
    UpstreamPayment {
        id: UpstreamPaymentId::parse("pay_1").expect("id"),
        order_id: UpstreamOrderId::of(OrderId::from_uuid(ORDER)),
        amount: eur(2_500),
        status: UpstreamPaymentStatus::Completed,
    }
}

fn upstream_order() -> UpstreamOrder {
    UpstreamOrder {
        id: UpstreamOrderId::of(OrderId::from_uuid(ORDER)),
        total: eur(2_500),
        basket_id: None,
        status: UpstreamOrderStatus::Pending,
    }
}

fn unknown() -> String {
    "no answer within the deadline".to_owned()
}

fn rejection() -> UpstreamRejection {
    UpstreamRejection {
        status: 409,
        reason: "order id taken".into(),
    }
}

/// The ports, with a store that records every update and applies it.
struct Ports {
    store: MockCheckoutStore,
    outbox: MockOutbox,
    orders: MockUpstreamOrders,
    payments: MockPaymentGateway,
    circuit: CircuitState,
    now: DateTime<Utc>,
    updates: Arc<Mutex<Vec<CheckoutUpdate>>>,
}

impl Ports {
    fn new() -> Self {
        Self {
            store: MockCheckoutStore::new(),
            outbox: MockOutbox::new(),
            orders: MockUpstreamOrders::new(),
            payments: MockPaymentGateway::new(),
            circuit: CircuitState::Closed,
            now: noon(),
            updates: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// `begin` writes a checkout in `started`; `record` applies every update.
    fn storing(mut self) -> Self {
        self.store.expect_begin().returning(|_, _| {
            Ok((
                checkout_in(CheckoutState::Started),
                order_in(OrderStatus::PendingPayment, None),
            ))
        });
        self.recording()
    }

    /// As [`storing`](Self::storing), and the upstream order is created.
    fn placing_upstream(mut self) -> Self {
        self.orders
            .expect_create_order()
            .returning(|_| Ok(upstream_order()));
        self.storing()
    }

    /// One payment is made, under the key derived from the order's id.
    fn paying_once_under_the_order_s_key(&mut self) {
        self.payments
            .expect_create_payment()
            .withf(|p| p.idempotency_key == IdempotencyKey::for_id("payment", ORDER))
            .times(1)
            .returning(|_| Ok(payment()));
    }

    fn recording(mut self) -> Self {
        let updates = self.updates.clone();
        self.store.expect_record().returning(move |update| {
            updates.lock().expect("lock").push(update.clone());
            let checkout = Checkout {
                state: update.to,
                payment_id: update.payment_id.clone(),
                ..checkout_in(update.from)
            };
            Ok(Some((
                checkout,
                order_in(update.to.order_status(), update.payment),
            )))
        });
        self
    }

    fn service(self) -> (CheckoutService, Arc<Mutex<Vec<CheckoutUpdate>>>) {
        let mut monitor = MockUpstreamMonitor::new();
        let circuit = self.circuit;
        monitor.expect_health().returning(move || health(circuit));
        let mut clock = MockClock::new();
        clock.expect_now().return_const(self.now);
        let mut ids = MockIdSource::new();
        ids.expect_new_id().return_const(ORDER);
        let service = CheckoutService::new(
            CheckoutPorts {
                store: Arc::new(self.store),
                outbox: Arc::new(self.outbox),
                upstream_orders: Arc::new(self.orders),
                payments: Arc::new(self.payments),
                monitor: Arc::new(monitor),
                clock: Arc::new(clock),
                ids: Arc::new(ids),
            },
            CheckoutPolicy::default(),
        );
        (service, self.updates)
    }
}

fn states(updates: &Mutex<Vec<CheckoutUpdate>>) -> Vec<(CheckoutState, CheckoutState)> {
    updates
        .lock()
        .expect("lock")
        .iter()
        .map(|u| (u.from, u.to))
        .collect()
}

use CheckoutState::*;

fn assert_pending(outcome: &CheckoutOutcome) {
    assert!(
        matches!(outcome, CheckoutOutcome::Pending(_)),
        "{outcome:?}"
    );
    assert_eq!(outcome.order().status(), OrderStatus::PendingPayment);
}

#[tokio::test]
async fn a_healthy_checkout_places_the_upstream_order_pays_and_is_paid() {
    let mut ports = Ports::new().storing();
    ports
        .orders
        .expect_create_order()
        .withf(|o| {
            o.order_id.as_uuid() == ORDER
                && o.idempotency_key == IdempotencyKey::for_id("order", ORDER)
                && o.total == eur(2_500)
        })
        .times(1)
        .returning(|_| Ok(upstream_order()));
    ports
        .payments
        .expect_create_payment()
        .withf(|p| {
            p.idempotency_key == IdempotencyKey::for_id("payment", ORDER) && p.amount == eur(2_500)
        })
        .times(1)
        .returning(|_| Ok(payment()));
    let (service, updates) = ports.service();

    let outcome = service.checkout(request()).await.expect("checked out");

    let CheckoutOutcome::Paid(order) = outcome else {
        panic!("not paid: {outcome:?}");
    };
    assert_eq!(order.status(), OrderStatus::Paid);
    assert_eq!(
        order.payment().and_then(|p| p.reference.clone()).as_deref(),
        Some("pay_1")
    );
    assert_eq!(
        states(&updates),
        [(Started, Paid)],
        "one write after both upstream calls, none between them"
    );
    let updates = updates.lock().expect("lock");
    assert_eq!(updates[0].claim, claim());
    assert!(updates[0].placed_upstream);
    assert_eq!(
        updates[0]
            .payment_id
            .as_ref()
            .map(UpstreamPaymentId::as_str),
        Some("pay_1")
    );
}

#[tokio::test]
async fn a_declined_payment_fails_the_checkout_as_declined() {
    let mut ports = Ports::new().placing_upstream();
    ports
        .payments
        .expect_create_payment()
        .times(1)
        .returning(|_| {
            Err(ChargeError::Declined {
                reason: "insufficient funds".into(),
            })
        });
    let (service, updates) = ports.service();

    let outcome = service.checkout(request()).await.expect("checked out");

    assert!(
        matches!(&outcome, CheckoutOutcome::Declined { reason, .. } if reason == "insufficient funds"),
        "{outcome:?}"
    );
    assert_eq!(outcome.order().status(), OrderStatus::PaymentFailed);
    assert_eq!(states(&updates), [(Started, PaymentFailed)]);
    let update = updates.lock().expect("lock")[0].clone();
    assert_eq!(
        update.payment.as_ref().map(|p| p.status.as_str()),
        Some("declined")
    );
    assert!(
        update.placed_upstream,
        "the upstream order exists and is failed by the outbox"
    );
}

#[tokio::test]
async fn an_upstream_order_that_stays_unanswered_after_the_retries_leaves_the_checkout_pending() {
    let mut ports = Ports::new().storing();
    ports
        .orders
        .expect_create_order()
        .times(1)
        .returning(|_| Err(CreateUpstreamOrderError::OutcomeUnknown(unknown())));
    let (service, updates) = ports.service();

    let outcome = service.checkout(request()).await.expect("checked out");

    assert_pending(&outcome);
    assert_eq!(states(&updates), [(Started, Started)]);
    let update = updates.lock().expect("lock")[0].clone();
    assert!(!update.placed_upstream);
    assert_eq!(update.next_attempt_at, noon() + TimeDelta::seconds(1));
    assert!(update.error.is_some());
}

#[tokio::test]
async fn a_payment_with_an_unknown_outcome_is_pending_and_not_sent_again_in_the_request() {
    let mut ports = Ports::new().placing_upstream();
    ports
        .payments
        .expect_create_payment()
        .times(1)
        .returning(|_| Err(ChargeError::OutcomeUnknown(unknown())));
    let (service, updates) = ports.service();

    let outcome = service.checkout(request()).await.expect("checked out");

    assert_pending(&outcome);
    assert_eq!(outcome.order().status(), OrderStatus::PendingPayment);
    assert_eq!(states(&updates), [(Started, PendingPayment)]);
    let update = updates.lock().expect("lock")[0].clone();
    assert_eq!(
        update.payment.as_ref().map(|p| p.status.as_str()),
        Some("unknown")
    );
}

#[tokio::test]
async fn a_payment_that_never_reached_the_upstream_leaves_no_doubt_behind() {
    let mut ports = Ports::new().placing_upstream();
    ports
        .payments
        .expect_create_payment()
        .times(1)
        .returning(|_| {
            Err(ChargeError::Unavailable(Unavailable::new(
                Dependency::Upstream,
                Duration::from_secs(5),
                "circuit open",
            )))
        });
    let (service, updates) = ports.service();

    let outcome = service.checkout(request()).await.expect("checked out");

    assert_pending(&outcome);
    assert_eq!(
        states(&updates),
        [(Started, OrderPlacedUpstream)],
        "the upstream order exists, and no payment is in doubt"
    );
    assert!(updates.lock().expect("lock")[0].payment.is_none());
}

#[tokio::test]
async fn an_upstream_order_refused_for_good_fails_the_checkout_without_charging() {
    let mut ports = Ports::new().storing();
    ports
        .orders
        .expect_create_order()
        .returning(|_| Err(CreateUpstreamOrderError::Rejected(rejection())));
    ports.payments.expect_create_payment().never();
    let (service, updates) = ports.service();

    let outcome = service.checkout(request()).await.expect("checked out");

    assert!(
        matches!(outcome, CheckoutOutcome::Refused { .. }),
        "{outcome:?}"
    );
    assert_eq!(states(&updates), [(Started, PaymentFailed)]);
}

#[tokio::test]
async fn while_the_circuit_is_open_nothing_is_written_and_the_caller_is_told_when_to_retry() {
    let mut ports = Ports::new();
    ports.circuit = CircuitState::Open;
    ports.store.expect_begin().never();
    ports.orders.expect_create_order().never();
    let (service, _) = ports.service();

    let error = service.checkout(request()).await.expect_err("refused");

    let StartCheckoutError::UpstreamUnavailable(unavailable) = error else {
        panic!("not unavailable: {error:?}");
    };
    assert_eq!(unavailable.retry_after(), Duration::from_secs(5));
}

#[tokio::test]
async fn a_refusal_of_the_store_is_the_checkout_s_and_nothing_is_sent_upstream() {
    let mut ports = Ports::new();
    ports
        .store
        .expect_begin()
        .returning(|_, _| Err(StartCheckoutError::BasketEmpty(BasketId::generate())));
    ports.orders.expect_create_order().never();
    let (service, _) = ports.service();

    let error = service.checkout(request()).await.expect_err("refused");

    assert!(
        matches!(error, StartCheckoutError::BasketEmpty(_)),
        "{error:?}"
    );
}

#[tokio::test]
async fn reconciliation_sends_a_payment_in_doubt_again_under_the_same_key_and_settles_it() {
    let mut ports = Ports::new().recording();
    ports
        .store
        .expect_claim_due()
        .withf(|now, lease, limit, claimed| {
            *now == noon()
                && *lease == noon() + TimeDelta::seconds(60)
                && *limit == 10
                && *claimed == claim()
        })
        .returning(|_, _, _, _| {
            Ok(vec![(
                checkout_in(PendingPayment),
                order_in(OrderStatus::PendingPayment, None),
            )])
        });
    ports.paying_once_under_the_order_s_key();
    let (service, updates) = ports.service();

    let report = service.reconcile_due(10).await.expect("reconciled");

    assert_eq!(
        report,
        ReconcileReport {
            examined: 1,
            paid: 1,
            failed: 0,
            pending: 0
        }
    );
    assert_eq!(states(&updates), [(PendingPayment, Paid)]);
}

#[tokio::test]
async fn reconciliation_asks_about_a_known_payment_and_resumes_an_unplaced_order() {
    let mut ports = Ports::new().recording();
    ports.store.expect_claim_due().returning(|_, _, _, _| {
        let known = Checkout {
            payment_id: Some(UpstreamPaymentId::parse("pay_1").expect("id")),
            ..checkout_in(PendingPayment)
        };
        Ok(vec![
            (known, order_in(OrderStatus::PendingPayment, None)),
            (
                checkout_in(Started),
                order_in(OrderStatus::PendingPayment, None),
            ),
        ])
    });
    ports
        .payments
        .expect_get_payment()
        .times(1)
        .returning(|_| Ok(payment()));
    ports
        .orders
        .expect_create_order()
        .times(1)
        .returning(|_| Ok(upstream_order()));
    ports
        .payments
        .expect_create_payment()
        .times(1)
        .returning(|_| {
            Err(ChargeError::Declined {
                reason: "expired card".into(),
            })
        });
    let (service, updates) = ports.service();

    let report = service.reconcile_due(10).await.expect("reconciled");

    assert_eq!((report.paid, report.failed, report.pending), (1, 1, 0));
    assert_eq!(
        states(&updates),
        [(PendingPayment, Paid), (Started, PaymentFailed)]
    );
}

#[tokio::test]
async fn reconciliation_gives_up_only_checkouts_that_cannot_have_charged() {
    let mut ports = Ports::new().recording();
    ports.now = noon() + TimeDelta::hours(2);
    ports.store.expect_claim_due().returning(|_, _, _, _| {
        Ok(vec![
            (
                checkout_in(Started),
                order_in(OrderStatus::PendingPayment, None),
            ),
            (
                checkout_in(PendingPayment),
                order_in(OrderStatus::PendingPayment, None),
            ),
        ])
    });
    ports.orders.expect_create_order().never();
    ports
        .payments
        .expect_create_payment()
        .times(1)
        .returning(|_| Err(ChargeError::OutcomeUnknown(unknown())));
    let (service, updates) = ports.service();

    let report = service.reconcile_due(10).await.expect("reconciled");

    assert_eq!((report.failed, report.pending), (1, 1));
    assert_eq!(
        states(&updates),
        [(Started, PaymentFailed), (PendingPayment, PendingPayment)]
    );
}

/// Reconciliation, `age` after noon, claims a checkout `started` at noon whose
/// earlier attempt ended unrecorded (it may have paid), after `attempts`
/// fruitless ones.
fn reconciling_an_interrupted_start(age: TimeDelta, attempts: u32) -> Ports {
    let mut ports = Ports::new().recording();
    ports.now = noon() + age;
    ports.store.expect_claim_due().returning(move |_, _, _, _| {
        let interrupted = Checkout {
            interrupted: true,
            attempts,
            ..checkout_in(Started)
        };
        Ok(vec![(
            interrupted,
            order_in(OrderStatus::PendingPayment, None),
        )])
    });
    ports
}

#[tokio::test]
async fn an_interrupted_checkout_past_give_up_is_driven_under_the_same_keys_not_failed() {
    let mut ports = reconciling_an_interrupted_start(TimeDelta::hours(2), 0);
    ports
        .orders
        .expect_create_order()
        .withf(|o| o.idempotency_key == IdempotencyKey::for_id("order", ORDER))
        .times(1)
        .returning(|_| Ok(upstream_order()));
    // The upstream answers the repeated key with the first attempt's charge.
    ports.paying_once_under_the_order_s_key();
    let (service, updates) = ports.service();

    let report = service.reconcile_due(10).await.expect("reconciled");

    assert_eq!((report.paid, report.failed, report.pending), (1, 0, 0));
    assert_eq!(states(&updates), [(Started, Paid)]);
}

#[tokio::test]
async fn an_interrupted_checkout_whose_upstream_still_fails_stays_pending_past_give_up() {
    let mut ports = reconciling_an_interrupted_start(TimeDelta::days(2), 40);
    ports
        .orders
        .expect_create_order()
        .times(1)
        .returning(|_| Err(CreateUpstreamOrderError::OutcomeUnknown(unknown())));
    ports.payments.expect_create_payment().never();
    let (service, updates) = ports.service();

    let report = service.reconcile_due(10).await.expect("reconciled");

    assert_eq!((report.paid, report.failed, report.pending), (0, 0, 1));
    assert_eq!(states(&updates), [(Started, Started)]);
}

#[tokio::test]
async fn a_step_that_cannot_be_recorded_leaves_the_checkout_to_reconciliation_under_the_same_keys()
{
    let mut ports = Ports::new();
    ports.store.expect_begin().returning(|_, _| {
        Ok((
            checkout_in(Started),
            order_in(OrderStatus::PendingPayment, None),
        ))
    });
    ports
        .store
        .expect_record()
        .returning(|_| Err(anyhow::anyhow!("the database went away")));
    ports
        .orders
        .expect_create_order()
        .times(1)
        .returning(|_| Ok(upstream_order()));
    ports.paying_once_under_the_order_s_key();
    let (service, _) = ports.service();

    let outcome = service.checkout(request()).await.expect("checked out");

    // Stored as `started`: reconciliation repeats the order and the payment
    // under these same keys, which the upstream answers with the first outcome.
    assert_pending(&outcome);
}

fn delivery(status: UpstreamOrderStatus, attempts: u32) -> OutboxDelivery {
    OutboxDelivery {
        id: uuid::Uuid::from_u128(7),
        order_id: OrderId::from_uuid(ORDER),
        status,
        attempts,
        claim: claim(),
    }
}

#[tokio::test]
async fn the_dispatcher_delivers_completions_and_retries_failures_with_growing_pauses() {
    let mut ports = Ports::new();
    ports
        .outbox
        .expect_claim_deliveries()
        .returning(|_, _, _, _| {
            Ok(vec![
                delivery(UpstreamOrderStatus::Completed, 0),
                delivery(UpstreamOrderStatus::Completed, 3),
                delivery(UpstreamOrderStatus::Failed, 0),
            ])
        });
    let mut answers = vec![
        Ok(upstream_order()),
        Err(UpstreamCallError::Unavailable(Unavailable::new(
            Dependency::Upstream,
            Duration::from_secs(1),
            "timed out",
        ))),
        Err(UpstreamCallError::NotFound("no such order".into())),
    ]
    .into_iter();
    ports
        .orders
        .expect_update_order_status()
        .with(always(), always())
        .times(3)
        .returning(move |_, _| answers.next().expect("an answer"));
    ports
        .outbox
        .expect_delivered()
        .times(2)
        .returning(|_, _, _| Ok(true));
    ports
        .outbox
        .expect_retry_later()
        .withf(|_, _, _, next| *next == noon() + TimeDelta::seconds(8))
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    let (service, _) = ports.service();

    let report = service.dispatch_outbox_once(10).await.expect("dispatched");

    assert_eq!(
        report,
        DispatchReport {
            delivered: 2,
            retried: 1,
            abandoned: 0,
            superseded: 0
        }
    );
}

#[tokio::test]
async fn the_dispatcher_gives_up_a_refused_delivery_and_one_out_of_attempts() {
    let mut ports = Ports::new();
    ports
        .outbox
        .expect_claim_deliveries()
        .returning(|_, _, _, _| {
            Ok(vec![
                delivery(UpstreamOrderStatus::Completed, 0),
                delivery(UpstreamOrderStatus::Completed, 19),
            ])
        });
    let mut answers = vec![
        Err(UpstreamCallError::Rejected(rejection())),
        Err(UpstreamCallError::Unexpected(anyhow::anyhow!("garbage"))),
    ]
    .into_iter();
    ports
        .orders
        .expect_update_order_status()
        .returning(move |_, _| answers.next().expect("an answer"));
    ports
        .outbox
        .expect_abandon()
        .times(2)
        .returning(|_, _, _, _| Ok(true));
    let (service, _) = ports.service();

    let report = service.dispatch_outbox_once(10).await.expect("dispatched");

    assert_eq!(report.abandoned, 2);
}

#[tokio::test]
async fn the_dispatcher_claims_small_batches_up_to_its_limit_and_counts_lost_claims() {
    let mut ports = Ports::new();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let asked_by_claims = asked.clone();
    ports
        .outbox
        .expect_claim_deliveries()
        .returning(move |_, _, limit, _| {
            asked_by_claims.lock().expect("lock").push(limit);
            Ok(vec![delivery(UpstreamOrderStatus::Completed, 0); limit])
        });
    ports
        .orders
        .expect_update_order_status()
        .times(25)
        .returning(|_, _| Ok(upstream_order()));
    let mut recorded = 0;
    ports
        .outbox
        .expect_delivered()
        .times(25)
        .returning(move |_, _, _| {
            recorded += 1;
            // The first row's lease ran out; another dispatcher took it up.
            Ok(recorded > 1)
        });
    let (service, _) = ports.service();

    let report = service.dispatch_outbox_once(25).await.expect("dispatched");

    assert_eq!(*asked.lock().expect("lock"), [10, 10, 5]);
    assert_eq!(
        report,
        DispatchReport {
            delivered: 24,
            retried: 0,
            abandoned: 0,
            superseded: 1
        }
    );
}

#[tokio::test]
async fn resuming_drives_a_checkout_it_holds_on_with_the_same_keys() {
    let mut ports = Ports::new().placing_upstream();
    ports
        .store
        .expect_claim_one()
        .withf(|order, now, lease, claimed| {
            order.as_uuid() == ORDER
                && *now == noon()
                && *lease == noon() + TimeDelta::seconds(60)
                && *claimed == claim()
        })
        .returning(|_, _, _, _| {
            Ok(Some((
                checkout_in(Started),
                order_in(OrderStatus::PendingPayment, None),
            )))
        });
    ports.paying_once_under_the_order_s_key();
    let (service, updates) = ports.service();

    let outcome = service
        .resume(OrderId::from_uuid(ORDER))
        .await
        .expect("resumed");

    assert!(
        matches!(outcome, Some(CheckoutOutcome::Paid(_))),
        "{outcome:?}"
    );
    assert_eq!(states(&updates), [(Started, Paid)]);
}

#[tokio::test]
async fn resuming_leaves_a_checkout_held_elsewhere_alone_and_answers_a_settled_one() {
    let mut ports = Ports::new();
    let mut found = vec![
        Checkout {
            claim: None,
            ..checkout_in(PendingPayment)
        },
        Checkout {
            claim: None,
            ..checkout_in(PaymentFailed)
        },
    ]
    .into_iter();
    ports.store.expect_claim_one().returning(move |_, _, _, _| {
        let checkout = found.next().expect("asked twice");
        let order = if checkout.state == PaymentFailed {
            order_in(
                OrderStatus::PaymentFailed,
                Some(payment_info("declined", None)),
            )
        } else {
            order_in(OrderStatus::PendingPayment, None)
        };
        Ok(Some((checkout, order)))
    });
    ports.store.expect_record().never();
    ports.orders.expect_create_order().never();
    ports.payments.expect_create_payment().never();
    ports.payments.expect_get_payment().never();
    let (service, _) = ports.service();
    let order = OrderId::from_uuid(ORDER);

    let held = service.resume(order).await.expect("read");
    let settled = service.resume(order).await.expect("read");

    assert!(
        matches!(held, Some(CheckoutOutcome::Pending(_))),
        "{held:?}"
    );
    assert!(
        matches!(settled, Some(CheckoutOutcome::Declined { .. })),
        "{settled:?}"
    );
}

#[test]
fn pauses_double_from_the_base_up_to_the_cap() {
    let policy = CheckoutPolicy::default();
    assert_eq!(policy.backoff(1), TimeDelta::seconds(1));
    assert_eq!(policy.backoff(4), TimeDelta::seconds(8));
    assert_eq!(policy.backoff(30), TimeDelta::minutes(5));
}

//! The PostgreSQL checkout store against a real cluster, a fresh database per
//! test: one transaction that writes everything or nothing, one order per basket
//! however many checkouts race, a failed checkout that gives everything back, and
//! per-row claims: two dispatchers at once deliver each outbox row once, a
//! crashed claim is taken over after its lease, and a late result is refused.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use ordo_domain::baskets::{Basket, BasketStatus};
use ordo_domain::catalog::{NewProduct, Product, ProductKind, ProductName, Sku, StockLevel};
use ordo_domain::checkout::{
    Checkout, CheckoutPolicy, CheckoutPorts, CheckoutService, CheckoutState, CheckoutStore,
    CheckoutUpdate, ClaimToken, NewCheckout, Outbox, StartCheckoutError,
};
use ordo_domain::customers::{City, CustomerName, Email, NewCustomer};
use ordo_domain::orders::{
    OrderId, OrderStatus, PaymentInfo, PlaceOrderError, Quantity, SpacingWindow,
};
use ordo_domain::upstream::{PaymentToken, UpstreamOrderStatus, UpstreamPaymentId};
use ordo_domain::{Currency, Money};
use ordo_postgres::testing::fresh_database;
use ordo_postgres::{PgCheckoutStore, PgPool};
use ordo_server::Services;

struct Fixture {
    pool: PgPool,
    services: Services,
    store: Arc<PgCheckoutStore>,
}

async fn fixture() -> Fixture {
    let db = fresh_database().await.expect("test database");
    let pool = db.pool(24).expect("pool");
    let settings = ordo_server::Settings::default();
    let data_keys = ordo_server::app::data_keyring(&settings, &pool)
        .await
        .expect("the sandbox's data key");
    let services = Services::assemble(
        &ordo_server::Adapters::postgres(&pool, data_keys),
        &settings,
    )
    .expect("services");
    Fixture {
        store: Arc::new(PgCheckoutStore::new(pool.clone())),
        services,
        pool,
    }
}

async fn good(f: &Fixture, stock: i64) -> Product {
    let new = NewProduct::new(
        Sku::parse("BEANS").expect("sku"),
        ProductName::parse("Beans").expect("name"),
        ProductKind::Good,
        Money::new(1_250, Currency::parse("EUR").expect("currency")),
        Some(StockLevel::parse(stock).expect("stock")),
        None,
    )
    .expect("new product");
    f.services
        .catalog
        .create(new)
        .await
        .expect("product created")
}

/// A basket of a new customer holding `quantity` of `product`.
async fn basket(f: &Fixture, product: &Product, quantity: i64) -> Basket {
    let customer = f
        .services
        .customers
        .create(NewCustomer {
            name: CustomerName::parse("Ada").expect("name"),
            email: Email::parse(&format!("{}@example.com", uuid::Uuid::now_v7())).expect("email"),
            city: City::parse("Oslo").expect("city"),
            phone: None,
        })
        .await
        .expect("customer");
    let basket = f
        .services
        .baskets
        .create(Some(customer.id()))
        .await
        .expect("basket");
    f.services
        .baskets
        .set_item(
            basket.id(),
            product.id(),
            Some(Quantity::parse(quantity).expect("quantity")),
            None,
        )
        .await
        .expect("line set")
}

fn new_checkout(basket: &Basket, lease: TimeDelta) -> NewCheckout {
    let at = ordo_domain::to_micros(Utc::now());
    NewCheckout {
        order_id: OrderId::generate(),
        basket_id: basket.id(),
        customer_id: None,
        scheduled_at: None,
        payment_token: PaymentToken::parse("tok_ok").expect("token"),
        idempotency: None,
        at,
        lease_until: at + lease,
        claim: new_claim(),
    }
}

fn new_claim() -> ClaimToken {
    ClaimToken::from_uuid(uuid::Uuid::now_v7())
}

/// A checkout of `basket`, begun and held by its request for `lease`.
async fn begun(f: &Fixture, basket: &Basket, lease: TimeDelta) -> Checkout {
    f.store
        .begin(new_checkout(basket, lease), SpacingWindow::default())
        .await
        .expect("begun")
        .0
}

/// The request's step of `checkout` from `started` to `to` at `at`, giving its
/// claim up.
fn step(checkout: &Checkout, to: CheckoutState, at: DateTime<Utc>) -> CheckoutUpdate {
    CheckoutUpdate {
        order_id: checkout.order_id,
        claim: checkout.claim.expect("held by its request"),
        from: CheckoutState::Started,
        to,
        placed_upstream: false,
        payment: None,
        payment_id: None,
        error: None,
        next_attempt_at: at,
        at,
        basket_ttl: Default::default(),
    }
}

/// The statuses of the outbox deliveries due at `at`, claimed.
async fn due_deliveries(f: &Fixture, at: DateTime<Utc>) -> Vec<UpstreamOrderStatus> {
    f.store
        .claim_deliveries(at, at + TimeDelta::seconds(60), 10, new_claim())
        .await
        .expect("claimed")
        .into_iter()
        .map(|d| d.status)
        .collect()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    ordo_postgres::testing::count(pool, sql)
        .await
        .expect("count")
}

async fn stock(f: &Fixture, product: &Product) -> Option<i64> {
    f.services
        .catalog
        .get(product.id())
        .await
        .expect("read")
        .expect("the product")
        .stock()
        .map(StockLevel::get)
}

async fn stored_basket(f: &Fixture, basket: &Basket) -> Basket {
    f.services
        .baskets
        .get(basket.id())
        .await
        .expect("read")
        .expect("the basket")
}

#[tokio::test]
async fn of_concurrent_checkouts_of_one_basket_exactly_one_writes_its_order() {
    let f = fixture().await;
    let product = good(&f, 10).await;
    let basket = basket(&f, &product, 3).await;

    let results = futures::future::join_all((0..8).map(|_| {
        f.store.begin(
            new_checkout(&basket, TimeDelta::seconds(60)),
            SpacingWindow::default(),
        )
    }))
    .await;

    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1);
    let (checkout, order) = won[0];
    assert_eq!(checkout.state, CheckoutState::Started);
    assert_eq!(order.status(), OrderStatus::PendingPayment);
    assert_eq!(order.total().minor(), 3_750);
    for lost in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(
                lost,
                StartCheckoutError::BasketNotOpen {
                    status: BasketStatus::CheckedOut,
                    ..
                }
            ),
            "{lost:?}"
        );
    }
    assert_eq!(stock(&f, &product).await, Some(7));
    assert_eq!(
        stored_basket(&f, &basket).await.status(),
        BasketStatus::CheckedOut
    );
    assert_eq!(count(&f.pool, "SELECT count(*) AS n FROM orders").await, 1);
    assert_eq!(
        count(
            &f.pool,
            "SELECT count(*) AS n FROM outbox WHERE status = 'waiting'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_checkout_the_order_rules_refuse_writes_nothing_at_all() {
    let f = fixture().await;
    let product = good(&f, 10).await;
    let basket = basket(&f, &product, 4).await;
    f.services
        .catalog
        .adjust_stock(product.id(), -8, "breakage")
        .await
        .expect("adjusted");

    let refused = f
        .store
        .begin(
            new_checkout(&basket, TimeDelta::seconds(60)),
            SpacingWindow::default(),
        )
        .await;

    assert!(
        matches!(
            refused,
            Err(StartCheckoutError::Order(
                PlaceOrderError::InsufficientStock(_)
            ))
        ),
        "{refused:?}"
    );
    assert_eq!(stored_basket(&f, &basket).await, basket);
    assert_eq!(stock(&f, &product).await, Some(2));
    for table in [
        "orders",
        "order_lines",
        "checkouts",
        "outbox",
        "order_number_counters",
    ] {
        assert_eq!(
            count(&f.pool, &format!("SELECT count(*) AS n FROM {table}")).await,
            0,
            "{table}"
        );
    }
}

#[tokio::test]
async fn a_failed_checkout_gives_the_stock_back_reopens_the_basket_and_readies_the_outbox() {
    let f = fixture().await;
    let product = good(&f, 10).await;
    let basket = basket(&f, &product, 4).await;
    let checkout = begun(&f, &basket, TimeDelta::seconds(60)).await;
    let at = ordo_domain::to_micros(Utc::now());
    let update = CheckoutUpdate {
        payment: Some(PaymentInfo {
            status: "declined".into(),
            reference: None,
        }),
        error: Some("declined".into()),
        ..step(&checkout, CheckoutState::PaymentFailed, at)
    };

    let (failed, order) = f
        .store
        .record(update.clone())
        .await
        .expect("recorded")
        .expect("still started");
    let again = f.store.record(update).await.expect("recorded");

    assert_eq!(failed.state, CheckoutState::PaymentFailed);
    assert_eq!(order.status(), OrderStatus::PaymentFailed);
    assert_eq!(order.payment().map(|p| p.status.as_str()), Some("declined"));
    assert!(
        again.is_none(),
        "a step from a state it left is not applied"
    );
    assert_eq!(stock(&f, &product).await, Some(10));
    let reopened = stored_basket(&f, &basket).await;
    assert_eq!(reopened.status(), BasketStatus::Open);
    assert_eq!(reopened.lines(), basket.lines());
    assert_eq!(due_deliveries(&f, at).await, [UpstreamOrderStatus::Failed]);
    assert_eq!(
        f.store.backlog().await.expect("backlog").pending,
        1,
        "claimed but not yet delivered"
    );
}

#[tokio::test]
async fn one_write_takes_a_started_checkout_to_paid_with_its_payment_and_pending_fulfilment() {
    let f = fixture().await;
    let product = good(&f, 10).await;
    let basket = basket(&f, &product, 4).await;
    let checkout = begun(&f, &basket, TimeDelta::seconds(60)).await;
    let at = ordo_domain::to_micros(Utc::now());

    let (paid, order) = f
        .store
        .record(CheckoutUpdate {
            placed_upstream: true,
            payment: Some(PaymentInfo {
                status: "completed".into(),
                reference: Some("pay_7".into()),
            }),
            payment_id: Some(UpstreamPaymentId::parse("pay_7").expect("an id")),
            ..step(&checkout, CheckoutState::Paid, at)
        })
        .await
        .expect("recorded")
        .expect("still started");

    assert_eq!(paid.state, CheckoutState::Paid);
    assert_eq!(
        paid.payment_id.as_ref().map(UpstreamPaymentId::as_str),
        Some("pay_7")
    );
    assert_eq!(paid.claim, None, "the claim is given up");
    assert_eq!(order.status(), OrderStatus::Paid);
    assert_eq!(
        order.payment().and_then(|p| p.reference.as_deref()),
        Some("pay_7")
    );
    let fulfillment = order.fulfillment().expect("the upstream order exists");
    assert_eq!(fulfillment.status, "pending");
    assert_eq!(
        fulfillment.reference.as_deref(),
        Some(checkout.order_id.to_string().as_str())
    );
    assert_eq!(
        stock(&f, &product).await,
        Some(6),
        "paid: the stock stays sold"
    );
    assert_eq!(
        count(
            &f.pool,
            &format!(
                "SELECT count(*) AS n FROM checkouts WHERE order_id = '{}' \
                 AND claim_token IS NULL AND claimed_until IS NULL AND last_error IS NULL",
                checkout.order_id
            )
        )
        .await,
        1
    );
    assert_eq!(
        due_deliveries(&f, at).await,
        [UpstreamOrderStatus::Completed]
    );
}

#[tokio::test]
async fn due_checkouts_are_claimed_once_until_their_lease_runs_out() {
    let f = fixture().await;
    let product = good(&f, 10).await;
    for _ in 0..3 {
        let basket = basket(&f, &product, 1).await;
        f.store
            .begin(
                new_checkout(&basket, TimeDelta::seconds(-1)),
                SpacingWindow::default(),
            )
            .await
            .expect("begun");
    }
    let now = ordo_domain::to_micros(Utc::now());
    let lease = now + TimeDelta::seconds(30);

    let (first, second) = tokio::join!(
        f.store.claim_due(now, lease, 2, new_claim()),
        f.store.claim_due(now, lease, 2, new_claim())
    );
    let third = f
        .store
        .claim_due(now, lease, 10, new_claim())
        .await
        .expect("claimed");
    let after_lease = f
        .store
        .claim_due(lease, lease + TimeDelta::seconds(30), 10, new_claim())
        .await
        .expect("claimed");

    let claimed = first.expect("claimed").len() + second.expect("claimed").len();
    assert_eq!(claimed, 3, "no checkout is claimed twice, none is left out");
    assert!(third.is_empty());
    assert_eq!(after_lease.len(), 3);
}

/// An upstream whose order-status calls are counted per order, each taking a
/// few milliseconds so that dispatchers running at once really overlap. Any
/// other call is a test failure.
#[derive(Default)]
struct CountingUpstream {
    deliveries: std::sync::Mutex<std::collections::HashMap<OrderId, u32>>,
}

#[async_trait::async_trait]
impl ordo_domain::upstream::UpstreamOrders for CountingUpstream {
    async fn create_order(
        &self,
        _: ordo_domain::upstream::NewUpstreamOrder,
    ) -> Result<ordo_domain::upstream::UpstreamOrder, ordo_domain::upstream::CreateUpstreamOrderError>
    {
        panic!("no checkout is driven here");
    }

    async fn update_order_status(
        &self,
        id: &ordo_domain::upstream::UpstreamOrderId,
        status: ordo_domain::upstream::UpstreamOrderStatus,
    ) -> Result<ordo_domain::upstream::UpstreamOrder, ordo_domain::upstream::UpstreamCallError>
    {
        let order_id = OrderId::from_uuid(id.as_str().parse().expect("our order id"));
        *self
            .deliveries
            .lock()
            .expect("lock")
            .entry(order_id)
            .or_default() += 1;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        Ok(ordo_domain::upstream::UpstreamOrder {
            id: id.clone(),
            total: Money::new(1_250, Currency::parse("EUR").expect("currency")),
            basket_id: None,
            status,
        })
    }

    async fn get_order(
        &self,
        _: &ordo_domain::upstream::UpstreamOrderId,
    ) -> Result<ordo_domain::upstream::UpstreamOrder, ordo_domain::upstream::UpstreamCallError>
    {
        panic!("not asked here");
    }
}

struct NoPayments;

#[async_trait::async_trait]
impl ordo_domain::upstream::PaymentGateway for NoPayments {
    async fn create_payment(
        &self,
        _: ordo_domain::upstream::NewPayment,
    ) -> Result<ordo_domain::upstream::UpstreamPayment, ordo_domain::upstream::ChargeError> {
        panic!("nothing is charged here");
    }

    async fn get_payment(
        &self,
        _: &ordo_domain::upstream::UpstreamPaymentId,
    ) -> Result<ordo_domain::upstream::UpstreamPayment, ordo_domain::upstream::UpstreamCallError>
    {
        panic!("nothing is charged here");
    }

    async fn refund_payment(
        &self,
        _: &ordo_domain::upstream::UpstreamPaymentId,
    ) -> Result<ordo_domain::upstream::UpstreamPayment, ordo_domain::upstream::UpstreamCallError>
    {
        panic!("nothing is refunded here");
    }
}

struct ClosedCircuit;

impl ordo_domain::upstream::UpstreamMonitor for ClosedCircuit {
    fn health(&self) -> ordo_domain::upstream::UpstreamHealth {
        ordo_domain::upstream::UpstreamHealth {
            circuit: ordo_domain::upstream::CircuitState::Closed,
            recent_calls: 0,
            recent_error_rate: 0.0,
            latency_p50: None,
            latency_p99: None,
        }
    }
}

/// A dispatcher as one instance has it: its own store over its own pool, the
/// shared counting upstream.
fn dispatcher(pool: &PgPool, upstream: &Arc<CountingUpstream>) -> CheckoutService {
    let store = Arc::new(PgCheckoutStore::new(pool.clone()));
    CheckoutService::new(
        CheckoutPorts {
            store: store.clone(),
            outbox: store,
            upstream_orders: upstream.clone(),
            payments: Arc::new(NoPayments),
            monitor: Arc::new(ClosedCircuit),
            clock: Arc::new(ordo_domain::SystemClock),
            ids: Arc::new(ordo_domain::UuidV7Ids),
        },
        CheckoutPolicy::default(),
    )
}

/// `count` paid checkouts, each with its outbox row due.
async fn paid_checkouts(f: &Fixture, count: usize) -> Vec<OrderId> {
    let product = good(f, 1_000).await;
    let mut paid = Vec::with_capacity(count);
    for _ in 0..count {
        let basket = basket(f, &product, 1).await;
        let checkout = begun(f, &basket, TimeDelta::seconds(60)).await;
        let at = ordo_domain::to_micros(Utc::now());
        f.store
            .record(CheckoutUpdate {
                payment: Some(PaymentInfo {
                    status: "completed".into(),
                    reference: Some("pay_1".into()),
                }),
                ..step(&checkout, CheckoutState::Paid, at)
            })
            .await
            .expect("recorded")
            .expect("still started");
        paid.push(checkout.order_id);
    }
    paid
}

#[tokio::test]
async fn two_dispatchers_at_once_deliver_every_outbox_row_exactly_once() {
    let f = fixture().await;
    let paid = paid_checkouts(&f, 60).await;
    let upstream = Arc::new(CountingUpstream::default());
    let second_instance = f.pool.clone();
    let (one, two) = (
        dispatcher(&f.pool, &upstream),
        dispatcher(&second_instance, &upstream),
    );

    let (first, second) = tokio::join!(
        one.dispatch_outbox_once(1_000),
        two.dispatch_outbox_once(1_000)
    );

    let (first, second) = (first.expect("dispatched"), second.expect("dispatched"));
    let deliveries = upstream.deliveries.lock().expect("lock").clone();
    assert_eq!(deliveries.len(), paid.len(), "every row was delivered");
    for order in &paid {
        assert_eq!(deliveries.get(order), Some(&1), "{order} delivered once");
    }
    assert_eq!(first.delivered + second.delivered, paid.len());
    assert!(
        first.delivered > 0 && second.delivered > 0,
        "both dispatchers took part: {first:?} {second:?}"
    );
    assert_eq!(first.superseded + second.superseded, 0);
    assert_eq!(
        count(
            &f.pool,
            "SELECT count(*) AS n FROM outbox WHERE status = 'delivered' AND attempts = 1 AND claim_token IS NULL"
        )
        .await,
        60
    );
    assert_eq!(f.store.backlog().await.expect("backlog").pending, 0);
}

#[tokio::test]
async fn a_claim_whose_lease_ran_out_is_taken_over_and_its_late_result_is_not_recorded() {
    let f = fixture().await;
    let paid = paid_checkouts(&f, 1).await;
    let now = ordo_domain::to_micros(Utc::now());
    let (crashed, successor) = (new_claim(), new_claim());

    let first = f
        .store
        .claim_deliveries(now, now + TimeDelta::seconds(30), 10, crashed)
        .await
        .expect("claimed");
    let while_held = f
        .store
        .claim_deliveries(
            now + TimeDelta::seconds(29),
            now + TimeDelta::seconds(60),
            10,
            successor,
        )
        .await
        .expect("claimed");
    let after_lease = f
        .store
        .claim_deliveries(
            now + TimeDelta::seconds(30),
            now + TimeDelta::seconds(60),
            10,
            successor,
        )
        .await
        .expect("claimed");
    let late = f
        .store
        .delivered(first[0].id, crashed, now + TimeDelta::seconds(31))
        .await
        .expect("recorded");
    let newer = f
        .store
        .retry_later(
            after_lease[0].id,
            successor,
            "timed out".into(),
            now + TimeDelta::seconds(40),
        )
        .await
        .expect("recorded");

    assert_eq!(first.len(), 1);
    assert_eq!(first[0].order_id, paid[0]);
    assert!(while_held.is_empty(), "a held row is skipped");
    assert_eq!(
        after_lease.len(),
        1,
        "a crashed claim is retried after its lease"
    );
    assert_eq!(after_lease[0].claim, successor);
    assert!(!late, "the late finisher's result is refused");
    assert!(newer, "the successor's result is recorded");
    assert_eq!(
        count(
            &f.pool,
            "SELECT count(*) AS n FROM outbox WHERE status = 'ready' AND attempts = 1 AND last_error = 'timed out' AND delivered_at IS NULL"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_checkout_step_is_recorded_only_under_the_claim_that_holds_it() {
    let f = fixture().await;
    let product = good(&f, 10).await;
    let basket = basket(&f, &product, 1).await;
    let checkout = begun(&f, &basket, TimeDelta::seconds(30)).await;
    let now = ordo_domain::to_micros(Utc::now());
    let later = now + TimeDelta::seconds(31);

    let while_held = f
        .store
        .claim_one(
            checkout.order_id,
            now,
            now + TimeDelta::seconds(60),
            new_claim(),
        )
        .await
        .expect("read")
        .expect("the checkout");
    let taken_over = f
        .store
        .claim_one(
            checkout.order_id,
            later,
            later + TimeDelta::seconds(60),
            new_claim(),
        )
        .await
        .expect("read")
        .expect("the checkout");
    let placed = |claim| CheckoutUpdate {
        claim,
        placed_upstream: true,
        ..step(&checkout, CheckoutState::OrderPlacedUpstream, later)
    };
    let late = f
        .store
        .record(placed(checkout.claim.expect("held by its request")))
        .await
        .expect("recorded");
    let newer = f
        .store
        .record(placed(taken_over.0.claim.expect("taken over")))
        .await
        .expect("recorded");

    assert_eq!(while_held.0.claim, None, "held by the request: read only");
    assert!(
        taken_over.0.interrupted,
        "taken over from an attempt that never recorded its outcome"
    );
    assert!(
        late.is_none(),
        "the request's lease ran out: its step is refused"
    );
    let (moved, _) = newer.expect("the successor's step is recorded");
    assert_eq!(moved.state, CheckoutState::OrderPlacedUpstream);
    assert_eq!(moved.claim, None, "recorded, and the claim given up");
}

#[tokio::test]
async fn a_claim_taken_over_after_its_lease_marks_the_checkout_interrupted_for_good() {
    let f = fixture().await;
    let product = good(&f, 10).await;
    // Both requests' leases have run out; only the second recorded its step.
    let died = begun(&f, &basket(&f, &product, 1).await, TimeDelta::seconds(-1)).await;
    let recorded = begun(&f, &basket(&f, &product, 1).await, TimeDelta::seconds(-1)).await;
    let now = ordo_domain::to_micros(Utc::now());
    f.store
        .record(step(&recorded, CheckoutState::Started, now))
        .await
        .expect("recorded")
        .expect("held by its request");
    let claim_all = async |at: DateTime<Utc>| {
        let mut claimed = f
            .store
            .claim_due(at, at + TimeDelta::seconds(60), 10, new_claim())
            .await
            .expect("claimed");
        claimed.sort_by_key(|(c, _)| c.order_id != died.order_id);
        claimed
            .into_iter()
            .map(|(checkout, _)| checkout)
            .collect::<Vec<_>>()
    };

    let first = claim_all(now).await;
    // Reconciliation records both its steps (the upstream still failing) ...
    for checkout in &first {
        f.store
            .record(CheckoutUpdate {
                claim: checkout.claim.expect("claimed"),
                ..step(checkout, CheckoutState::Started, now)
            })
            .await
            .expect("recorded")
            .expect("held by reconciliation");
    }
    // ... and takes them up again: the mark stays, none is added.
    let again = claim_all(now + TimeDelta::seconds(1)).await;

    let marks = |checkouts: &[Checkout]| {
        checkouts
            .iter()
            .map(|c| (c.order_id, c.interrupted))
            .collect::<Vec<_>>()
    };
    let expected = [(died.order_id, true), (recorded.order_id, false)];
    assert_eq!(marks(&first), expected);
    assert_eq!(marks(&again), expected);
    assert!(!died.interrupted && !recorded.interrupted, "begun unmarked");
}

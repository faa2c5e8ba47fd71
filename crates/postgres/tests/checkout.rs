//! The PostgreSQL checkout store against a real cluster, a fresh database per
//! test: one transaction that writes everything or nothing, one order per basket
//! however many checkouts race, a failed checkout that gives everything back, and
//! claims that lease their rows.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use ordo_domain::baskets::{Basket, BasketStatus};
use ordo_domain::catalog::{NewProduct, Product, ProductKind, ProductName, Sku, StockLevel};
use ordo_domain::checkout::{
    CheckoutState, CheckoutStore, CheckoutUpdate, NewCheckout, Outbox, StartCheckoutError,
};
use ordo_domain::customers::{City, CustomerName, Email, NewCustomer};
use ordo_domain::orders::{
    OrderId, OrderStatus, PaymentInfo, PlaceOrderError, Quantity, SpacingWindow,
};
use ordo_domain::upstream::PaymentToken;
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
    }
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
    let (checkout, _) = f
        .store
        .begin(
            new_checkout(&basket, TimeDelta::seconds(60)),
            SpacingWindow::default(),
        )
        .await
        .expect("begun");
    let at = ordo_domain::to_micros(Utc::now());
    let update = CheckoutUpdate {
        order_id: checkout.order_id,
        from: CheckoutState::Started,
        to: CheckoutState::PaymentFailed,
        payment: Some(PaymentInfo {
            status: "declined".into(),
            reference: None,
        }),
        payment_id: None,
        error: Some("declined".into()),
        next_attempt_at: at,
        at,
        basket_ttl: Default::default(),
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
    let due = f
        .store
        .claim_deliveries(at, at + TimeDelta::seconds(60), 10)
        .await
        .expect("claimed");
    assert_eq!(due.len(), 1);
    assert_eq!(
        due[0].status,
        ordo_domain::upstream::UpstreamOrderStatus::Failed
    );
    assert_eq!(
        f.store.backlog().await.expect("backlog").pending,
        1,
        "claimed but not yet delivered"
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
        f.store.claim_due(now, lease, 2),
        f.store.claim_due(now, lease, 2)
    );
    let third = f.store.claim_due(now, lease, 10).await.expect("claimed");
    let after_lease = f
        .store
        .claim_due(lease, lease + TimeDelta::seconds(30), 10)
        .await
        .expect("claimed");

    let claimed = first.expect("claimed").len() + second.expect("claimed").len();
    assert_eq!(claimed, 3, "no checkout is claimed twice, none is left out");
    assert!(third.is_empty());
    assert_eq!(after_lease.len(), 3);
}

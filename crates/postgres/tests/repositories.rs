//! The PostgreSQL adapters against a real cluster, a fresh database per test.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use ordo_domain::catalog::{
    AdjustStockError, CatalogService, CreateProductError, NewProduct, Product, ProductDeletion,
    ProductKind, ProductName, Sku, StockLevel, StockShortage,
};
use ordo_domain::customers::{
    City, CreateCustomerError, Customer, CustomerName, CustomerService, Email, NewCustomer,
};
use ordo_domain::idempotency::{
    IdempotencyClaim, IdempotencyStore, IdempotentRequest, KeyOwner, RequestFingerprint,
};
use ordo_domain::orders::{
    OrderItem, OrderItems, OrderRef, OrderService, OrderStatus, PlaceOrder, PlaceOrderError,
    Quantity, ReviseOrder, ScheduledAt, UpdateOrderError,
};
use ordo_domain::upstream::IdempotencyKey;
use ordo_domain::{Currency, Money, PageLimit, PageRequest};
use ordo_postgres::testing::fresh_database;
use ordo_postgres::{PgIdempotencyStore, PgPool};

struct Services {
    pool: PgPool,
    catalog: CatalogService,
    customers: CustomerService,
    orders: OrderService,
}

/// The services as `ordo serve` assembles them, through the same composition root.
async fn services() -> Services {
    let db = fresh_database().await.expect("test database");
    let pool = db.pool(20).expect("pool");
    let settings = ordo_server::Settings::default();
    let data_keys = ordo_server::app::data_keyring(&settings, &pool)
        .await
        .expect("the sandbox's data key");
    let assembled = ordo_server::Services::assemble(
        &ordo_server::Adapters::postgres(&pool, data_keys),
        &settings,
    )
    .expect("services");
    Services {
        catalog: assembled.catalog,
        customers: assembled.customers,
        orders: assembled.orders,
        pool,
    }
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("currency"))
}

async fn product(s: &Services, sku: &str, stock: Option<i64>) -> Product {
    let kind = if stock.is_some() {
        ProductKind::Good
    } else {
        ProductKind::Service
    };
    let new = NewProduct::new(
        Sku::parse(sku).expect("sku"),
        ProductName::parse(sku).expect("name"),
        kind,
        eur(1000),
        stock.map(|n| StockLevel::parse(n).expect("stock")),
        None,
    )
    .expect("new product");
    s.catalog.create(new).await.expect("product created")
}

async fn customer(s: &Services, email: &str) -> Customer {
    s.customers
        .create(NewCustomer {
            name: CustomerName::parse("Ada").expect("name"),
            email: Email::parse(email).expect("email"),
            city: City::parse("Oslo").expect("city"),
            phone: None,
        })
        .await
        .expect("customer created")
}

fn items(of: &[(&Product, i64)]) -> OrderItems {
    OrderItems::new(
        of.iter()
            .map(|(p, q)| OrderItem {
                product_id: p.id(),
                quantity: Quantity::parse(*q).expect("quantity"),
            })
            .collect(),
    )
    .expect("items")
}

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0)
        .single()
        .expect("time")
}

fn place(customer: &Customer, when: DateTime<Utc>, of: &[(&Product, i64)]) -> PlaceOrder {
    PlaceOrder {
        customer_id: customer.id(),
        scheduled_at: Some(ScheduledAt::parse(when).expect("schedulable")),
        items: items(of),
        note: None,
    }
}

async fn stock_of(s: &Services, p: &Product) -> Option<i64> {
    s.catalog
        .get(p.id())
        .await
        .expect("read")
        .expect("exists")
        .stock()
        .map(StockLevel::get)
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    ordo_postgres::testing::count(pool, sql)
        .await
        .expect("count query")
}

#[tokio::test]
async fn an_order_reserves_stock_and_gets_the_first_number_of_its_day() {
    let s = services().await;
    let widget = product(&s, "W-1", Some(10)).await;
    let ada = customer(&s, "ada@example.com").await;

    let order = s
        .orders
        .place(place(&ada, at(9), &[(&widget, 3)]))
        .await
        .expect("placed");

    assert_eq!(order.status(), OrderStatus::Placed);
    assert_eq!(order.total().minor(), 3000);
    assert_eq!(order.number().sequence(), 1);
    assert_eq!(order.number().day(), order.created_at().date_naive());
    assert_eq!(stock_of(&s, &widget).await, Some(7));
    let found = s
        .orders
        .get(OrderRef::Number(order.number()))
        .await
        .expect("read");
    assert_eq!(found.as_ref().map(|o| o.id()), Some(order.id()));
    assert_eq!(found.map(|o| o.lines().len()), Some(1));
}

#[tokio::test]
async fn a_create_that_fails_on_stock_writes_nothing_at_all() {
    let s = services().await;
    let plenty = product(&s, "PLENTY", Some(100)).await;
    let scarce = product(&s, "SCARCE", Some(2)).await;
    let ada = customer(&s, "ada@example.com").await;

    let result = s
        .orders
        .place(place(&ada, at(9), &[(&plenty, 5), (&scarce, 3)]))
        .await;

    assert!(matches!(
        result,
        Err(PlaceOrderError::InsufficientStock(short)) if short.product_id == scarce.id() && short.available == 2
    ));
    assert_eq!(count(&s.pool, "SELECT count(*) AS n FROM orders").await, 0);
    assert_eq!(
        count(&s.pool, "SELECT count(*) AS n FROM order_lines").await,
        0
    );
    assert_eq!(
        count(&s.pool, "SELECT count(*) AS n FROM order_number_counters").await,
        0
    );
    assert_eq!(stock_of(&s, &plenty).await, Some(100));
    assert_eq!(stock_of(&s, &scarce).await, Some(2));
}

#[tokio::test]
async fn concurrent_orders_of_one_customer_at_one_time_yield_exactly_one() {
    let s = Arc::new(services().await);
    let inspection = product(&s, "INSPECTION", None).await;
    let ada = customer(&s, "ada@example.com").await;

    let attempts = (0..30).map(|_| {
        let s = s.clone();
        let request = place(&ada, at(10), &[(&inspection, 1)]);
        tokio::spawn(async move { s.orders.place(request).await })
    });
    let results = futures::future::join_all(attempts).await;

    let placed = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    let too_close = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(PlaceOrderError::TooClose(_)))))
        .count();
    assert_eq!((placed, too_close), (1, 29));
    assert_eq!(count(&s.pool, "SELECT count(*) AS n FROM orders").await, 1);
}

#[tokio::test]
async fn concurrent_orders_on_one_day_get_gapless_distinct_numbers() {
    let s = Arc::new(services().await);
    let inspection = product(&s, "INSPECTION", None).await;
    let mut customers = Vec::new();
    for i in 0..40 {
        customers.push(customer(&s, &format!("c{i}@example.com")).await);
    }

    let attempts = customers.iter().map(|c| {
        let s = s.clone();
        let request = place(c, at(10), &[(&inspection, 1)]);
        tokio::spawn(async move { s.orders.place(request).await })
    });
    let numbers: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("task").expect("placed").number())
        .collect();

    // Numbers run per day of placing; a run that straddles midnight UTC has two days.
    let mut by_day: std::collections::BTreeMap<_, Vec<u32>> = Default::default();
    for number in &numbers {
        by_day
            .entry(number.day())
            .or_default()
            .push(number.sequence());
    }
    for sequences in by_day.values_mut() {
        sequences.sort_unstable();
        let expected: Vec<u32> = (1..=u32::try_from(sequences.len()).expect("few")).collect();
        assert_eq!(*sequences, expected, "numbers run from 1 without gaps");
    }
    assert_eq!(numbers.len(), 40);
}

#[tokio::test]
async fn concurrent_orders_never_oversell_stock() {
    let s = Arc::new(services().await);
    let widget = product(&s, "W-1", Some(10)).await;
    let mut customers = Vec::new();
    for i in 0..25 {
        customers.push(customer(&s, &format!("c{i}@example.com")).await);
    }

    let attempts = customers.iter().map(|c| {
        let s = s.clone();
        let request = place(c, at(10), &[(&widget, 1)]);
        tokio::spawn(async move { s.orders.place(request).await })
    });
    let results = futures::future::join_all(attempts).await;

    let placed = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    let short = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(PlaceOrderError::InsufficientStock(_)))))
        .count();
    assert_eq!((placed, short), (10, 15));
    assert_eq!(stock_of(&s, &widget).await, Some(0));
}

#[tokio::test]
async fn revising_moves_stock_by_the_difference_and_checks_spacing_against_others() {
    let s = services().await;
    let widget = product(&s, "W-1", Some(10)).await;
    let gadget = product(&s, "G-1", Some(10)).await;
    let ada = customer(&s, "ada@example.com").await;
    let first = s
        .orders
        .place(place(&ada, at(9), &[(&widget, 4)]))
        .await
        .expect("first");
    let second = s
        .orders
        .place(place(&ada, at(13), &[(&gadget, 1)]))
        .await
        .expect("second");

    let revised = s
        .orders
        .revise(
            first.id(),
            ReviseOrder {
                scheduled_at: ScheduledAt::parse(at(8)).expect("schedulable"),
                items: items(&[(&widget, 1), (&gadget, 2)]),
                note: None,
            },
            Some(ordo_domain::VersionMatch::one(first.version())),
        )
        .await
        .expect("revised");
    assert_eq!(revised.version().get(), 2);
    assert_eq!(stock_of(&s, &widget).await, Some(9));
    assert_eq!(stock_of(&s, &gadget).await, Some(7));

    let too_close = s
        .orders
        .revise(
            first.id(),
            ReviseOrder {
                scheduled_at: ScheduledAt::parse(at(11)).expect("schedulable"),
                items: items(&[(&widget, 1)]),
                note: None,
            },
            None,
        )
        .await;
    assert!(
        matches!(too_close, Err(UpdateOrderError::TooClose(c)) if c.conflicting == second.id())
    );

    let stale = s
        .orders
        .revise(
            first.id(),
            ReviseOrder {
                scheduled_at: ScheduledAt::parse(at(7)).expect("schedulable"),
                items: items(&[(&widget, 1)]),
                note: None,
            },
            Some(ordo_domain::VersionMatch::one(first.version())),
        )
        .await;
    assert!(matches!(stale, Err(UpdateOrderError::VersionMismatch(_))));
}

#[tokio::test]
async fn returning_units_never_takes_stock_above_its_bound() {
    let s = services().await;
    let widget = product(&s, "W-1", Some(10)).await;
    let ada = customer(&s, "ada@example.com").await;
    let order = s
        .orders
        .place(place(&ada, at(9), &[(&widget, 4)]))
        .await
        .expect("placed");
    s.catalog
        .adjust_stock(widget.id(), StockLevel::MAX - 6, "delivery")
        .await
        .expect("filled to the bound");

    let cancelled = s.orders.cancel(order.id()).await;

    assert!(cancelled.is_err(), "{cancelled:?}");
    assert_eq!(stock_of(&s, &widget).await, Some(StockLevel::MAX));
    assert_eq!(
        s.orders
            .get(OrderRef::Id(order.id()))
            .await
            .expect("read")
            .expect("exists")
            .status(),
        OrderStatus::Placed
    );
}

#[tokio::test]
async fn cancelling_returns_stock_exactly_once_even_when_raced() {
    let s = Arc::new(services().await);
    let widget = product(&s, "W-1", Some(10)).await;
    let ada = customer(&s, "ada@example.com").await;
    let order = s
        .orders
        .place(place(&ada, at(9), &[(&widget, 4)]))
        .await
        .expect("placed");

    let id = order.id();
    let cancels = (0..10).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.orders.cancel(id).await })
    });
    let results = futures::future::join_all(cancels).await;

    assert_eq!(results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count(), 1);
    assert_eq!(stock_of(&s, &widget).await, Some(10));
    // A cancelled order frees its slot.
    assert!(
        s.orders
            .place(place(&ada, at(10), &[(&widget, 1)]))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn deleting_an_order_returns_its_stock_and_removes_its_lines() {
    let s = services().await;
    let widget = product(&s, "W-1", Some(10)).await;
    let ada = customer(&s, "ada@example.com").await;
    let order = s
        .orders
        .place(place(&ada, at(9), &[(&widget, 4)]))
        .await
        .expect("placed");

    s.orders.delete(order.id()).await.expect("deleted");

    assert_eq!(stock_of(&s, &widget).await, Some(10));
    assert_eq!(
        count(&s.pool, "SELECT count(*) AS n FROM order_lines").await,
        0
    );
    assert!(
        s.orders
            .get(OrderRef::Id(order.id()))
            .await
            .expect("read")
            .is_none()
    );
}

#[tokio::test]
async fn stock_adjustments_never_go_below_zero_and_are_recorded() {
    let s = Arc::new(services().await);
    let widget = product(&s, "W-1", Some(5)).await;
    let service = product(&s, "SVC", None).await;

    let takes = (0..12).map(|_| {
        let s = s.clone();
        let id = widget.id();
        tokio::spawn(async move { s.catalog.adjust_stock(id, -1, "breakage").await })
    });
    let results = futures::future::join_all(takes).await;

    assert_eq!(results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count(), 5);
    assert!(results.iter().all(|r| matches!(
        r,
        Ok(Ok(_))
            | Ok(Err(AdjustStockError::InsufficientStock(StockShortage {
                available: 0,
                ..
            })))
    )));
    assert_eq!(stock_of(&s, &widget).await, Some(0));
    assert_eq!(
        count(&s.pool, "SELECT count(*) AS n FROM stock_adjustments").await,
        5
    );
    assert!(matches!(
        s.catalog.adjust_stock(service.id(), 1, "count").await,
        Err(AdjustStockError::NotTracked(_))
    ));
}

#[tokio::test]
async fn skus_and_customer_emails_are_unique() {
    let s = services().await;
    product(&s, "W-1", Some(1)).await;
    let again = NewProduct::new(
        Sku::parse("W-1").expect("sku"),
        ProductName::parse("Other").expect("name"),
        ProductKind::Good,
        eur(1),
        None,
        None,
    )
    .expect("new product");
    assert!(matches!(
        s.catalog.create(again).await,
        Err(CreateProductError::SkuTaken { .. })
    ));

    customer(&s, "ada@example.com").await;
    let shouting = s
        .customers
        .create(NewCustomer {
            name: CustomerName::parse("Ada").expect("name"),
            email: Email::parse("ADA@Example.com").expect("email"),
            city: City::parse("Oslo").expect("city"),
            phone: None,
        })
        .await;
    assert!(matches!(shouting, Err(CreateCustomerError::EmailTaken)));
}

#[tokio::test]
async fn a_product_used_by_orders_is_deactivated_instead_of_deleted() {
    let s = services().await;
    let used = product(&s, "USED", None).await;
    let unused = product(&s, "UNUSED", None).await;
    let ada = customer(&s, "ada@example.com").await;
    s.orders
        .place(place(&ada, at(9), &[(&used, 1)]))
        .await
        .expect("placed");

    assert_eq!(
        s.catalog.delete(used.id()).await.expect("delete"),
        ProductDeletion::Deactivated
    );
    assert_eq!(
        s.catalog.delete(unused.id()).await.expect("delete"),
        ProductDeletion::Deleted
    );
    let used_now = s.catalog.get(used.id()).await.expect("read").expect("kept");
    assert!(!used_now.is_active());
    assert!(s.catalog.get(unused.id()).await.expect("read").is_none());
}

#[tokio::test]
async fn lists_page_newest_first_without_repeats() {
    let s = services().await;
    let svc = product(&s, "SVC", None).await;
    let ada = customer(&s, "ada@example.com").await;
    let mut created = Vec::new();
    for i in 0..5 {
        let order = s
            .orders
            .place(place(&ada, at(0) + TimeDelta::hours(3 * i), &[(&svc, 1)]))
            .await
            .expect("placed");
        created.push(order.id());
    }
    let limit = PageLimit::parse(2).expect("limit");
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .orders
            .list(Default::default(), PageRequest { limit, after })
            .await
            .expect("page");
        seen.extend(page.items.iter().map(|o| o.id()));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(seen, created, "every order once, newest first");
}

#[tokio::test]
async fn a_day_whose_numbers_are_used_up_refuses_orders_and_writes_nothing() {
    let s = services().await;
    let svc = product(&s, "SVC", None).await;
    let ada = customer(&s, "ada@example.com").await;
    let today = Utc::now().date_naive();
    count(
        &s.pool,
        &format!(
            "WITH full_day AS (INSERT INTO order_number_counters (day, last_value) \
             VALUES ('{today}', 999999) RETURNING 1) SELECT count(*) AS n FROM full_day"
        ),
    )
    .await;

    let result = s.orders.place(place(&ada, at(9), &[(&svc, 1)])).await;

    assert!(matches!(result, Err(PlaceOrderError::NumbersExhausted(day)) if day == today));
    assert_eq!(count(&s.pool, "SELECT count(*) AS n FROM orders").await, 0);
}

#[tokio::test]
async fn a_revision_and_a_create_that_conflict_only_with_each_other_never_both_succeed() {
    let s = Arc::new(services().await);
    let svc = product(&s, "SVC", None).await;
    for round in 0..10_u32 {
        let ada = customer(&s, &format!("ada{round}@example.com")).await;
        let existing = s
            .orders
            .place(place(&ada, at(9), &[(&svc, 1)]))
            .await
            .expect("placed");
        // 12:00 and 14:00 are each fine against 09:00, but two hours apart.
        let revise = {
            let s = s.clone();
            let items = items(&[(&svc, 1)]);
            tokio::spawn(async move {
                s.orders
                    .revise(
                        existing.id(),
                        ReviseOrder {
                            scheduled_at: ScheduledAt::parse(at(12)).expect("schedulable"),
                            items,
                            note: None,
                        },
                        None,
                    )
                    .await
                    .is_ok()
            })
        };
        let create = {
            let s = s.clone();
            let request = place(&ada, at(14), &[(&svc, 1)]);
            tokio::spawn(async move { s.orders.place(request).await.is_ok() })
        };
        let (revised, created) = (revise.await.expect("task"), create.await.expect("task"));

        assert!(
            revised ^ created,
            "round {round}: exactly one may win (revised {revised}, created {created})"
        );
    }
}

/// A request with `key`, as the orders route claims it.
fn keyed(key: &str) -> IdempotentRequest {
    IdempotentRequest {
        owner: KeyOwner::new("user", uuid::Uuid::nil()),
        key: IdempotencyKey::parse(key).expect("key"),
        fingerprint: RequestFingerprint::parse(&"a".repeat(64)).expect("fingerprint"),
    }
}

/// `request`'s key claimed at `now` with a minute's lease.
async fn claim(s: &Services, request: &IdempotentRequest, now: DateTime<Utc>) -> IdempotencyClaim {
    PgIdempotencyStore::new(s.pool.clone())
        .claim(
            request,
            now,
            now + TimeDelta::minutes(1),
            now + TimeDelta::hours(24),
        )
        .await
        .expect("claimed")
}

#[tokio::test]
async fn a_first_request_that_links_its_key_after_a_takeover_placed_its_order_gets_that_order() {
    let s = services().await;
    let widget = product(&s, "W-1", Some(10)).await;
    let ada = customer(&s, "ada@example.com").await;
    let request = keyed("k-1");
    let start = Utc::now();
    // A claims the key and is still running past its lease, not linked yet; B
    // (the client's repetition) takes the key over and places its order.
    assert_eq!(claim(&s, &request, start).await, IdempotencyClaim::Claimed);
    assert_eq!(
        claim(&s, &request, start + TimeDelta::minutes(2)).await,
        IdempotencyClaim::TakeOver { order_id: None }
    );
    let by_b = s
        .orders
        .place_with_key(place(&ada, at(9), &[(&widget, 3)]), Some(request.clone()))
        .await
        .expect("B placed");

    // A's transaction links second: its order is not written.
    let by_a = s
        .orders
        .place_with_key(place(&ada, at(15), &[(&widget, 4)]), Some(request))
        .await
        .expect("A answered");
    let next = s
        .orders
        .place(place(&ada, at(21), &[(&widget, 1)]))
        .await
        .expect("placed without a key");

    assert_eq!(by_a.id(), by_b.id(), "A answers with B's order");
    assert_eq!(count(&s.pool, "SELECT count(*) AS n FROM orders").await, 2);
    assert_eq!(
        stock_of(&s, &widget).await,
        Some(10 - 3 - 1),
        "A reserved nothing"
    );
    assert_eq!(next.number().sequence(), 2, "A used no number");
}

#[tokio::test]
async fn concurrent_requests_with_one_key_place_exactly_one_order() {
    let s = services().await;
    let widget = product(&s, "W-1", Some(100)).await;
    let ada = customer(&s, "ada@example.com").await;
    let request = keyed("k-many");
    assert_eq!(
        claim(&s, &request, Utc::now()).await,
        IdempotencyClaim::Claimed
    );

    // Schedules far enough apart that, but for the key, every one would be placed.
    let placed = futures::future::join_all((0..8).map(|i| {
        s.orders.place_with_key(
            place(&ada, at(0) + TimeDelta::hours(4 * i), &[(&widget, 1)]),
            Some(request.clone()),
        )
    }))
    .await;

    let ids: std::collections::HashSet<_> = placed
        .iter()
        .map(|r| r.as_ref().expect("answered with an order").id())
        .collect();
    assert_eq!(ids.len(), 1, "every request answers with the one order");
    assert_eq!(count(&s.pool, "SELECT count(*) AS n FROM orders").await, 1);
    assert_eq!(stock_of(&s, &widget).await, Some(99));
}

#[tokio::test]
async fn a_request_whose_key_was_given_up_meanwhile_places_nothing() {
    let s = services().await;
    let widget = product(&s, "W-1", Some(10)).await;
    let ada = customer(&s, "ada@example.com").await;
    let request = keyed("k-released");
    assert_eq!(
        claim(&s, &request, Utc::now()).await,
        IdempotencyClaim::Claimed
    );
    // A repetition took the key over and failed without effect: it released it.
    PgIdempotencyStore::new(s.pool.clone())
        .release(&request.owner, &request.key)
        .await
        .expect("released");

    let result = s
        .orders
        .place_with_key(place(&ada, at(9), &[(&widget, 3)]), Some(request))
        .await;

    let Err(PlaceOrderError::KeyHeldElsewhere(held)) = result else {
        panic!("expected the key to be held elsewhere: {result:?}");
    };
    assert_eq!(held.linked_order, None, "the key names no order");
    assert_eq!(count(&s.pool, "SELECT count(*) AS n FROM orders").await, 0);
    assert_eq!(stock_of(&s, &widget).await, Some(10));
}

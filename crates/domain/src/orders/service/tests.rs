use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use super::*;
use crate::catalog::{MockProductRepository, Product};
use crate::clock::MockClock;
use crate::customers::{City, Customer, CustomerId, CustomerName, Email, MockCustomerRepository};
use crate::idempotency::{KeyOwner, RequestFingerprint};
use crate::ids::MockIdSource;
use crate::orders::pricing::tests::{items, product};
use crate::orders::{MockOrderRepository, OrderNumber, SpacingConflict, StockShortage};
use crate::upstream::IdempotencyKey;
use crate::value::Version;

/// The id the service's id source hands out.
const NEW_ORDER_ID: uuid::Uuid = uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001);

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn customer(id: CustomerId) -> Customer {
    Customer::restore(
        id,
        CustomerName::parse("Ada").expect("name"),
        Email::parse("ada@example.com").expect("email"),
        City::parse("Oslo").expect("city"),
        None,
        Version::FIRST,
        noon(),
        noon(),
    )
}

fn stored_order(status: OrderStatus, version: i32) -> Order {
    let p = product(100, "EUR", Some(5), true);
    let (lines, total) = price_lines(&items(&[(&p, 1)]), &[p]).expect("priced");
    Order::restore(
        OrderId::generate(),
        OrderNumber::new(NaiveDate::from_ymd_opt(2026, 11, 21).expect("date"), 1).expect("number"),
        CustomerId::generate(),
        status,
        noon(),
        lines,
        total,
        None,
        None,
        None,
        noon(),
        noon(),
        Version::new(version).expect("version"),
    )
}

/// `order` with another id, status and version.
fn rebuilt(order: &Order, id: OrderId, status: OrderStatus, version: Version) -> Order {
    Order::restore(
        id,
        order.number(),
        order.customer_id(),
        status,
        order.scheduled_at(),
        order.lines().to_vec(),
        order.total(),
        order.note().cloned(),
        order.payment().cloned(),
        order.fulfillment().cloned(),
        order.created_at(),
        order.updated_at(),
        version,
    )
}

struct Ports {
    orders: MockOrderRepository,
    products: MockProductRepository,
    customers: MockCustomerRepository,
    ids: MockIdSource,
}

impl Ports {
    fn new() -> Self {
        Self {
            orders: MockOrderRepository::new(),
            products: MockProductRepository::new(),
            customers: MockCustomerRepository::new(),
            ids: {
                let mut ids = MockIdSource::new();
                ids.expect_new_id().return_const(NEW_ORDER_ID);
                ids
            },
        }
    }

    fn with_customer(mut self, id: CustomerId) -> Self {
        self.customers
            .expect_find()
            .returning(|id| Ok(Some(customer(id))));
        let _ = id;
        self
    }

    fn with_products(mut self, catalog: Vec<Product>) -> Self {
        self.products
            .expect_find_many()
            .returning(move |_| Ok(catalog.clone()));
        self
    }

    fn service(self) -> OrderService {
        let mut clock = MockClock::new();
        clock.expect_now().returning(noon);
        OrderService::new(
            Arc::new(self.orders),
            Arc::new(self.products),
            Arc::new(self.customers),
            Arc::new(clock),
            Arc::new(self.ids),
            OrderPolicy::default(),
        )
    }
}

fn place_request(customer_id: CustomerId, catalog: &[(&Product, i64)]) -> PlaceOrder {
    PlaceOrder {
        customer_id,
        scheduled_at: None,
        items: items(catalog),
        note: None,
    }
}

#[tokio::test]
async fn placing_for_an_unknown_customer_writes_nothing() {
    let mut ports = Ports::new();
    ports.customers.expect_find().returning(|_| Ok(None));
    ports.orders.expect_insert().never();
    let p = product(100, "EUR", None, true);
    let customer_id = CustomerId::generate();

    let result = ports
        .service()
        .place(place_request(customer_id, &[(&p, 1)]))
        .await;

    assert!(matches!(result, Err(PlaceOrderError::CustomerNotFound(id)) if id == customer_id));
}

#[tokio::test]
async fn placing_an_unknown_product_writes_nothing() {
    let customer_id = CustomerId::generate();
    let mut ports = Ports::new()
        .with_customer(customer_id)
        .with_products(vec![]);
    ports.orders.expect_insert().never();
    let p = product(100, "EUR", None, true);

    let result = ports
        .service()
        .place(place_request(customer_id, &[(&p, 1)]))
        .await;

    assert!(matches!(
        result,
        Err(PlaceOrderError::Pricing(PricingError::UnknownProduct(id))) if id == p.id()
    ));
}

#[tokio::test]
async fn placing_an_inactive_product_writes_nothing() {
    let customer_id = CustomerId::generate();
    let p = product(100, "EUR", None, false);
    let mut ports = Ports::new()
        .with_customer(customer_id)
        .with_products(vec![p.clone()]);
    ports.orders.expect_insert().never();

    let result = ports
        .service()
        .place(place_request(customer_id, &[(&p, 1)]))
        .await;

    assert!(matches!(
        result,
        Err(PlaceOrderError::Pricing(PricingError::InactiveProduct(_)))
    ));
}

/// What storage answers for `order`: the order, placed.
fn stored_as_placed(order: &NewOrder) -> Order {
    let stored = stored_order(OrderStatus::Placed, 1);
    rebuilt(&stored, order.id, OrderStatus::Placed, stored.version())
}

#[tokio::test]
async fn an_order_without_a_schedule_is_due_now_and_priced_from_the_catalog() {
    let customer_id = CustomerId::generate();
    let p = product(250, "EUR", Some(9), true);
    let mut ports = Ports::new()
        .with_customer(customer_id)
        .with_products(vec![p.clone()]);
    ports
        .orders
        .expect_insert()
        .withf(move |order, window, idempotency| {
            order.id == OrderId::from_uuid(NEW_ORDER_ID)
                && order.customer_id == customer_id
                && order.scheduled_at == noon()
                && order.created_at == noon()
                && order.total.minor() == 750
                && order.lines.len() == 1
                && order.lines[0].reserves_stock()
                && *window == SpacingWindow::default()
                && idempotency.is_none()
        })
        .returning(|order, _, _| Ok(stored_as_placed(&order)));

    let placed = ports
        .service()
        .place(place_request(customer_id, &[(&p, 3)]))
        .await
        .expect("placed");

    assert_eq!(placed.status(), OrderStatus::Placed);
}

#[tokio::test]
async fn an_order_placed_under_an_idempotency_key_links_the_key_in_its_own_transaction() {
    let customer_id = CustomerId::generate();
    let p = product(250, "EUR", Some(9), true);
    let mut ports = Ports::new()
        .with_customer(customer_id)
        .with_products(vec![p.clone()]);
    let request = keyed_request();
    let linked = (request.owner.clone(), request.key.clone());
    ports
        .orders
        .expect_insert()
        .withf(move |_, _, idempotency| idempotency.as_ref() == Some(&linked))
        .times(1)
        .returning(|order, _, _| Ok(stored_as_placed(&order)));

    let placed = ports
        .service()
        .place_with_key(place_request(customer_id, &[(&p, 1)]), Some(request))
        .await
        .expect("placed");

    assert_eq!(placed.id(), OrderId::from_uuid(NEW_ORDER_ID));
}

fn keyed_request() -> IdempotentRequest {
    IdempotentRequest {
        owner: KeyOwner::new("user", uuid::Uuid::from_u128(7)),
        key: IdempotencyKey::parse("order-key-1").expect("a key"),
        fingerprint: RequestFingerprint::parse(&"a".repeat(64)).expect("a fingerprint"),
    }
}

/// A keyed request for one unit of a product, whose link storage refuses:
/// another request with the key linked `linked_order` first (or none, having
/// given the key up).
fn key_held_elsewhere(linked_order: Option<Order>) -> (Ports, PlaceOrder) {
    let customer_id = CustomerId::generate();
    let p = product(250, "EUR", Some(9), true);
    let request = place_request(customer_id, &[(&p, 1)]);
    let mut ports = Ports::new()
        .with_customer(customer_id)
        .with_products(vec![p]);
    let linked_id = linked_order.as_ref().map(Order::id);
    ports
        .orders
        .expect_insert()
        .times(1)
        .returning(move |_, _, _| {
            Err(KeyHeldElsewhere {
                linked_order: linked_id,
            }
            .into())
        });
    if let Some(order) = linked_order {
        let id = order.id();
        ports
            .orders
            .expect_find()
            .withf(move |r| *r == OrderRef::Id(id))
            .times(1)
            .returning(move |_| Ok(Some(order.clone())));
    }
    (ports, request)
}

#[tokio::test]
async fn a_request_whose_key_another_request_linked_first_answers_with_that_order() {
    let theirs = stored_order(OrderStatus::Placed, 1);
    let (ports, request) = key_held_elsewhere(Some(theirs.clone()));

    let answered = ports
        .service()
        .place_with_key(request, Some(keyed_request()))
        .await
        .expect("answered with the key's order");

    assert_eq!(answered, theirs);
}

#[tokio::test]
async fn a_request_whose_key_was_given_up_meanwhile_is_refused() {
    let (ports, request) = key_held_elsewhere(None);

    let result = ports
        .service()
        .place_with_key(request, Some(keyed_request()))
        .await;

    assert!(
        matches!(
            result,
            Err(PlaceOrderError::KeyHeldElsewhere(KeyHeldElsewhere {
                linked_order: None
            }))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_spacing_conflict_from_storage_reaches_the_caller() {
    let customer_id = CustomerId::generate();
    let p = product(100, "EUR", None, true);
    let conflicting = OrderId::generate();
    let mut ports = Ports::new()
        .with_customer(customer_id)
        .with_products(vec![p.clone()]);
    ports.orders.expect_insert().returning(move |_, window, _| {
        Err(SpacingConflict {
            conflicting,
            window,
        }
        .into())
    });

    let result = ports
        .service()
        .place(place_request(customer_id, &[(&p, 1)]))
        .await;

    assert!(matches!(
        result,
        Err(PlaceOrderError::TooClose(c)) if c.conflicting == conflicting && c.window.minutes() == 180
    ));
}

#[tokio::test]
async fn a_stock_shortage_from_storage_reaches_the_caller() {
    let customer_id = CustomerId::generate();
    let p = product(100, "EUR", Some(1), true);
    let product_id = p.id();
    let mut ports = Ports::new()
        .with_customer(customer_id)
        .with_products(vec![p.clone()]);
    ports.orders.expect_insert().returning(move |_, _, _| {
        Err(StockShortage {
            product_id,
            available: 1,
        }
        .into())
    });

    let result = ports
        .service()
        .place(place_request(customer_id, &[(&p, 2)]))
        .await;

    assert!(matches!(
        result,
        Err(PlaceOrderError::InsufficientStock(s)) if s.product_id == product_id && s.available == 1
    ));
}

fn revision_of(p: &Product) -> ReviseOrder {
    ReviseOrder {
        scheduled_at: ScheduledAt::parse(noon()).expect("schedulable"),
        items: items(&[(p, 2)]),
        note: None,
    }
}

#[tokio::test]
async fn revising_a_missing_order_is_not_found() {
    let p = product(100, "EUR", None, true);
    let mut ports = Ports::new().with_products(vec![p.clone()]);
    ports.orders.expect_find().returning(|_| Ok(None));
    ports.orders.expect_revise().never();
    let id = OrderId::generate();

    let result = ports.service().revise(id, revision_of(&p), None).await;

    assert!(matches!(result, Err(UpdateOrderError::NotFound(got)) if got == id));
}

#[tokio::test]
async fn only_placed_orders_can_be_revised() {
    let p = product(100, "EUR", None, true);
    let mut ports = Ports::new().with_products(vec![p.clone()]);
    let paid = stored_order(OrderStatus::Paid, 2);
    let id = paid.id();
    ports
        .orders
        .expect_find()
        .returning(move |_| Ok(Some(paid.clone())));
    ports.orders.expect_revise().never();

    let result = ports.service().revise(id, revision_of(&p), None).await;

    assert!(matches!(
        result,
        Err(UpdateOrderError::NotEditable {
            status: OrderStatus::Paid,
            ..
        })
    ));
}

#[tokio::test]
async fn a_stale_if_match_is_refused_before_any_write() {
    let p = product(100, "EUR", None, true);
    let mut ports = Ports::new().with_products(vec![p.clone()]);
    let current = stored_order(OrderStatus::Placed, 3);
    let id = current.id();
    ports
        .orders
        .expect_find()
        .returning(move |_| Ok(Some(current.clone())));
    ports.orders.expect_revise().never();

    let stale = Version::new(2).expect("version");
    let result = ports
        .service()
        .revise(id, revision_of(&p), Some(VersionMatch::one(stale)))
        .await;

    assert!(matches!(result, Err(UpdateOrderError::VersionMismatch(_))));
}

#[tokio::test]
async fn without_if_match_a_concurrent_change_is_retried_against_the_fresh_order() {
    let p = product(100, "EUR", None, true);
    let mut ports = Ports::new().with_products(vec![p.clone()]);
    let current = stored_order(OrderStatus::Placed, 1);
    let id = current.id();
    let mut seq = mockall::Sequence::new();
    let first = current.clone();
    ports
        .orders
        .expect_find()
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_| Ok(Some(first.clone())));
    ports
        .orders
        .expect_revise()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|r, _| Err(UpdateOrderError::VersionMismatch(r.id)));
    let fresher = rebuilt(
        &current,
        current.id(),
        current.status(),
        Version::new(2).expect("version"),
    );
    ports
        .orders
        .expect_find()
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_| Ok(Some(fresher.clone())));
    let revised = current.clone();
    ports
        .orders
        .expect_revise()
        .withf(|r, _| r.expected.get() == 2 && r.total.minor() == 200)
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_, _| Ok(revised.clone()));

    let result = ports.service().revise(id, revision_of(&p), None).await;

    assert!(result.is_ok());
}

#[tokio::test]
async fn cancelling_a_placed_order_releases_its_stock() {
    let mut ports = Ports::new();
    let placed = stored_order(OrderStatus::Placed, 4);
    let id = placed.id();
    let found = placed.clone();
    ports
        .orders
        .expect_find()
        .returning(move |_| Ok(Some(found.clone())));
    ports
        .orders
        .expect_transition()
        .withf(move |got, expected, to, release, at| {
            *got == id
                && expected.get() == 4
                && *to == OrderStatus::Cancelled
                && *release
                && *at == noon()
        })
        .returning(move |_, _, _, _, _| {
            Ok(Some(rebuilt(
                &placed,
                placed.id(),
                OrderStatus::Cancelled,
                placed.version(),
            )))
        });

    let cancelled = ports.service().cancel(id).await.expect("cancelled");

    assert_eq!(cancelled.status(), OrderStatus::Cancelled);
}

#[tokio::test]
async fn cancelling_after_a_failed_payment_releases_nothing_twice() {
    let mut ports = Ports::new();
    let failed = stored_order(OrderStatus::PaymentFailed, 2);
    let id = failed.id();
    let found = failed.clone();
    ports
        .orders
        .expect_find()
        .returning(move |_| Ok(Some(found.clone())));
    ports
        .orders
        .expect_transition()
        .withf(|_, _, _, release, _| !*release)
        .returning(move |_, _, _, _, _| Ok(Some(failed.clone())));

    assert!(ports.service().cancel(id).await.is_ok());
}

#[tokio::test]
async fn a_paid_order_cannot_be_cancelled() {
    let mut ports = Ports::new();
    let paid = stored_order(OrderStatus::Paid, 2);
    let id = paid.id();
    ports
        .orders
        .expect_find()
        .returning(move |_| Ok(Some(paid.clone())));
    ports.orders.expect_transition().never();

    let result = ports.service().cancel(id).await;

    assert!(matches!(
        result,
        Err(CancelOrderError::NotCancellable {
            status: OrderStatus::Paid,
            ..
        })
    ));
}

#[tokio::test]
async fn cancelling_a_missing_order_is_not_found() {
    let mut ports = Ports::new();
    ports.orders.expect_find().returning(|_| Ok(None));
    assert!(matches!(
        ports.service().cancel(OrderId::generate()).await,
        Err(CancelOrderError::NotFound(_))
    ));
}

#[tokio::test]
async fn an_order_that_keeps_changing_is_reported_as_contended() {
    let mut ports = Ports::new();
    let placed = stored_order(OrderStatus::Placed, 1);
    let id = placed.id();
    ports
        .orders
        .expect_find()
        .times(3)
        .returning(move |_| Ok(Some(placed.clone())));
    ports
        .orders
        .expect_transition()
        .times(3)
        .returning(|_, _, _, _, _| Ok(None));

    assert!(matches!(
        ports.service().cancel(id).await,
        Err(CancelOrderError::Contended(got)) if got == id
    ));
}

#[tokio::test]
async fn a_paid_order_cannot_be_deleted() {
    let mut ports = Ports::new();
    let paid = stored_order(OrderStatus::Paid, 2);
    let id = paid.id();
    ports
        .orders
        .expect_find()
        .returning(move |_| Ok(Some(paid.clone())));
    ports.orders.expect_delete().never();

    assert!(matches!(
        ports.service().delete(id).await,
        Err(DeleteOrderError::NotDeletable {
            status: OrderStatus::Paid,
            ..
        })
    ));
}

#[tokio::test]
async fn deleting_a_placed_order_releases_stock_and_a_cancelled_one_does_not() {
    for (status, expect_release) in [(OrderStatus::Placed, true), (OrderStatus::Cancelled, false)] {
        let mut ports = Ports::new();
        let order = stored_order(status, 1);
        let id = order.id();
        ports
            .orders
            .expect_find()
            .returning(move |_| Ok(Some(order.clone())));
        ports
            .orders
            .expect_delete()
            .withf(move |got, _, release, at| {
                *got == id && *release == expect_release && *at == noon()
            })
            .times(1)
            .returning(|_, _, _, _| Ok(true));

        assert!(ports.service().delete(id).await.is_ok(), "{status}");
    }
}

#[tokio::test]
async fn deleting_a_missing_order_is_not_found_and_a_contended_one_says_so() {
    let mut ports = Ports::new();
    ports.orders.expect_find().returning(|_| Ok(None));
    assert!(matches!(
        ports.service().delete(OrderId::generate()).await,
        Err(DeleteOrderError::NotFound(_))
    ));

    let mut ports = Ports::new();
    let order = stored_order(OrderStatus::Placed, 1);
    let id = order.id();
    ports
        .orders
        .expect_find()
        .returning(move |_| Ok(Some(order.clone())));
    ports
        .orders
        .expect_delete()
        .times(3)
        .returning(|_, _, _, _| Ok(false));
    assert!(matches!(
        ports.service().delete(id).await,
        Err(DeleteOrderError::Contended(_))
    ));
}

#[tokio::test]
async fn storage_failures_surface_as_unexpected() {
    let mut ports = Ports::new();
    ports
        .customers
        .expect_find()
        .returning(|_| Err(anyhow::anyhow!("connection reset")));
    let p = product(100, "EUR", None, true);

    let result = ports
        .service()
        .place(place_request(CustomerId::generate(), &[(&p, 1)]))
        .await;

    assert!(matches!(result, Err(PlaceOrderError::Unexpected(_))));
}

#[tokio::test]
async fn revising_to_an_unknown_product_writes_nothing() {
    let p = product(100, "EUR", None, true);
    let mut ports = Ports::new().with_products(vec![]);
    ports.orders.expect_find().never();
    ports.orders.expect_revise().never();

    let result = ports
        .service()
        .revise(OrderId::generate(), revision_of(&p), None)
        .await;

    assert!(matches!(
        result,
        Err(UpdateOrderError::Pricing(PricingError::UnknownProduct(id))) if id == p.id()
    ));
}

#[tokio::test]
async fn a_revision_refused_by_the_spacing_rule_is_not_retried() {
    let p = product(100, "EUR", None, true);
    let mut ports = Ports::new().with_products(vec![p.clone()]);
    let current = stored_order(OrderStatus::Placed, 1);
    let id = current.id();
    let conflicting = OrderId::generate();
    ports
        .orders
        .expect_find()
        .times(1)
        .returning(move |_| Ok(Some(current.clone())));
    ports
        .orders
        .expect_revise()
        .times(1)
        .returning(move |_, window| {
            Err(SpacingConflict {
                conflicting,
                window,
            }
            .into())
        });

    let result = ports.service().revise(id, revision_of(&p), None).await;

    assert!(matches!(result, Err(UpdateOrderError::TooClose(c)) if c.conflicting == conflicting));
}

#[tokio::test]
async fn a_revision_short_of_stock_reports_the_product() {
    let p = product(100, "EUR", Some(1), true);
    let product_id = p.id();
    let mut ports = Ports::new().with_products(vec![p.clone()]);
    let current = stored_order(OrderStatus::Placed, 1);
    let id = current.id();
    ports
        .orders
        .expect_find()
        .returning(move |_| Ok(Some(current.clone())));
    ports.orders.expect_revise().returning(move |_, _| {
        Err(StockShortage {
            product_id,
            available: 1,
        }
        .into())
    });

    let result = ports.service().revise(id, revision_of(&p), None).await;

    assert!(
        matches!(result, Err(UpdateOrderError::InsufficientStock(s)) if s.product_id == product_id)
    );
}

#[tokio::test]
async fn storage_failures_while_cancelling_or_deleting_surface_as_unexpected() {
    let mut ports = Ports::new();
    ports
        .orders
        .expect_find()
        .returning(|_| Err(anyhow::anyhow!("connection reset")));
    let service = ports.service();

    assert!(matches!(
        service.cancel(OrderId::generate()).await,
        Err(CancelOrderError::Unexpected(_))
    ));
    assert!(matches!(
        service.delete(OrderId::generate()).await,
        Err(DeleteOrderError::Unexpected(_))
    ));
}

#[tokio::test]
async fn a_revision_that_keeps_losing_the_race_is_contended_not_a_failed_precondition() {
    let p = product(100, "EUR", None, true);
    let mut ports = Ports::new().with_products(vec![p.clone()]);
    let current = stored_order(OrderStatus::Placed, 1);
    let id = current.id();
    ports
        .orders
        .expect_find()
        .times(3)
        .returning(move |_| Ok(Some(current.clone())));
    ports
        .orders
        .expect_revise()
        .times(3)
        .returning(|r, _| Err(UpdateOrderError::VersionMismatch(r.id)));

    let result = ports.service().revise(id, revision_of(&p), None).await;

    assert!(matches!(result, Err(UpdateOrderError::Contended(got)) if got == id));
}

#[tokio::test]
async fn with_if_match_an_order_deleted_meanwhile_is_not_found() {
    let p = product(100, "EUR", None, true);
    let mut ports = Ports::new().with_products(vec![p.clone()]);
    let current = stored_order(OrderStatus::Placed, 1);
    let id = current.id();
    let version = current.version();
    let mut seq = mockall::Sequence::new();
    ports
        .orders
        .expect_find()
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_| Ok(Some(current.clone())));
    ports
        .orders
        .expect_revise()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|r, _| Err(UpdateOrderError::VersionMismatch(r.id)));
    ports
        .orders
        .expect_find()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(None));

    let result = ports
        .service()
        .revise(id, revision_of(&p), Some(VersionMatch::one(version)))
        .await;

    assert!(matches!(result, Err(UpdateOrderError::NotFound(got)) if got == id));
}

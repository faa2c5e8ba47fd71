use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::*;
use crate::baskets::{BasketStatus, MockBasketRepository};
use crate::catalog::{MockProductRepository, Product};
use crate::clock::MockClock;
use crate::customers::{City, Customer, CustomerName, Email, MockCustomerRepository};
use crate::ids::MockIdSource;
use crate::orders::PricingError;
use crate::orders::pricing_fixtures::product;
use crate::value::{Version, VersionMatch};

/// The id the service's id source hands out.
const NEW_BASKET_ID: uuid::Uuid = uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_00b1);

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn policy() -> BasketPolicy {
    BasketPolicy {
        ttl: BasketTtl::from_secs(3600).expect("ttl"),
        currency: Currency::parse("EUR").expect("currency"),
    }
}

fn stored_basket() -> Basket {
    Basket::open(
        BasketId::generate(),
        None,
        policy().currency,
        noon() - TimeDelta::minutes(10),
        policy().ttl,
    )
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

struct Ports {
    baskets: MockBasketRepository,
    products: MockProductRepository,
    customers: MockCustomerRepository,
}

impl Ports {
    fn new() -> Self {
        Self {
            baskets: MockBasketRepository::new(),
            products: MockProductRepository::new(),
            customers: MockCustomerRepository::new(),
        }
    }

    /// The repository's `edit` applies the edit to `stored` as storage would.
    fn editing(mut self, stored: Basket) -> Self {
        self.baskets
            .expect_edit()
            .returning(move |_, edit, _| Ok(stored.edited(&edit)?.unwrap_or(stored.clone())));
        self
    }

    fn with_product(mut self, catalog: Option<Product>) -> Self {
        self.products
            .expect_find()
            .returning(move |_| Ok(catalog.clone()));
        self
    }

    fn service(self) -> BasketService {
        let mut clock = MockClock::new();
        clock.expect_now().returning(noon);
        let mut ids = MockIdSource::new();
        ids.expect_new_id().return_const(NEW_BASKET_ID);
        BasketService::new(
            Arc::new(self.baskets),
            Arc::new(self.products),
            Arc::new(self.customers),
            Arc::new(clock),
            Arc::new(ids),
            policy(),
        )
    }
}

#[tokio::test]
async fn a_basket_is_opened_with_a_new_id_the_default_currency_and_its_ttl() {
    let mut ports = Ports::new();
    ports
        .baskets
        .expect_insert()
        .withf(|b| b.id().as_uuid() == NEW_BASKET_ID && b.lines().is_empty())
        .times(1)
        .returning(|_| Ok(()));

    let basket = ports.service().create(None).await.expect("created");

    assert_eq!(basket.id().as_uuid(), NEW_BASKET_ID);
    assert_eq!(basket.status(), BasketStatus::Open);
    assert_eq!(basket.total().currency().as_str(), "EUR");
    assert_eq!(basket.expires_at(), noon() + TimeDelta::hours(1));
}

#[tokio::test]
async fn a_basket_for_an_unknown_customer_is_refused_and_not_stored() {
    let mut ports = Ports::new();
    ports.customers.expect_find().returning(|_| Ok(None));
    ports.baskets.expect_insert().never();
    let unknown = CustomerId::generate();

    let result = ports.service().create(Some(unknown)).await;

    assert!(matches!(result, Err(CreateBasketError::CustomerNotFound(id)) if id == unknown));
}

#[tokio::test]
async fn a_basket_for_a_known_customer_names_them() {
    let mut ports = Ports::new();
    ports
        .customers
        .expect_find()
        .returning(|id| Ok(Some(customer(id))));
    ports.baskets.expect_insert().returning(|_| Ok(()));
    let known = CustomerId::generate();

    let basket = ports.service().create(Some(known)).await.expect("created");

    assert_eq!(basket.customer_id(), Some(known));
}

#[tokio::test]
async fn setting_an_item_prices_it_from_the_catalog_at_the_clocks_time() {
    let coffee = product(250, "EUR", None, true);
    let stored = stored_basket();
    let ports = Ports::new()
        .with_product(Some(coffee.clone()))
        .editing(stored.clone());

    let basket = ports
        .service()
        .set_item(
            stored.id(),
            coffee.id(),
            Some(Quantity::parse(4).expect("quantity")),
            None,
        )
        .await
        .expect("set");

    assert_eq!(basket.total().minor(), 1_000);
    assert_eq!(basket.version().get(), 2);
    assert_eq!(basket.expires_at(), noon() + TimeDelta::hours(1));
}

#[tokio::test]
async fn an_unknown_product_is_refused_with_its_id() {
    let stored = stored_basket();
    let missing = ProductId::generate();
    let ports = Ports::new().with_product(None).editing(stored.clone());

    let result = ports
        .service()
        .set_item(
            stored.id(),
            missing,
            Some(Quantity::parse(1).expect("quantity")),
            None,
        )
        .await;

    assert!(matches!(
        result,
        Err(ChangeBasketError::Pricing(PricingError::UnknownProduct(id))) if id == missing
    ));
}

#[tokio::test]
async fn a_zero_quantity_removes_the_line_without_reading_the_catalog() {
    let stored = stored_basket();
    let mut ports = Ports::new();
    ports.products.expect_find().never();
    ports
        .baskets
        .expect_edit()
        .withf(|_, edit, _| matches!(edit.change, LineChange::Remove(_)))
        .times(1)
        .returning(|_, _, _| Err(ChangeBasketError::NotFound(BasketId::generate())));

    let result = ports
        .service()
        .set_item(stored.id(), ProductId::generate(), None, None)
        .await;

    assert!(matches!(result, Err(ChangeBasketError::NotFound(_))));
}

#[tokio::test]
async fn the_if_match_versions_are_handed_to_storage() {
    let coffee = product(250, "EUR", None, true);
    let mut ports = Ports::new().with_product(Some(coffee.clone()));
    let expected = VersionMatch::one(Version::new(7).expect("version"));
    let wanted = expected.clone();
    ports
        .baskets
        .expect_edit()
        .withf(move |_, _, given| given.as_ref() == Some(&wanted))
        .times(1)
        .returning(|id, _, _| Err(ChangeBasketError::VersionMismatch(id)));

    let result = ports
        .service()
        .set_item(
            BasketId::generate(),
            coffee.id(),
            Some(Quantity::parse(1).expect("quantity")),
            Some(expected),
        )
        .await;

    assert!(matches!(result, Err(ChangeBasketError::VersionMismatch(_))));
}

#[tokio::test]
async fn removing_an_absent_line_returns_the_basket_unchanged() {
    let stored = stored_basket();
    let ports = Ports::new().editing(stored.clone());

    let basket = ports
        .service()
        .remove_item(stored.id(), ProductId::generate())
        .await
        .expect("removed");

    assert_eq!(basket, stored);
}

#[tokio::test]
async fn a_basket_read_after_its_time_is_expired() {
    let mut ports = Ports::new();
    let stale = Basket::open(
        BasketId::generate(),
        None,
        policy().currency,
        noon() - TimeDelta::hours(2),
        policy().ttl,
    );
    let fresh = stored_basket();
    let (stale_id, stale_copy, fresh_copy) = (stale.id(), stale.clone(), fresh.clone());
    ports.baskets.expect_find().returning(move |id| {
        Ok(Some(if id == stale_id {
            stale_copy.clone()
        } else {
            fresh_copy.clone()
        }))
    });
    let service = ports.service();

    let stale = service.get(stale.id()).await.expect("read").expect("found");
    let fresh = service.get(fresh.id()).await.expect("read").expect("found");

    assert_eq!(stale.status(), BasketStatus::Expired);
    assert_eq!(fresh.status(), BasketStatus::Open);
}

#[tokio::test]
async fn deleting_is_left_to_storage_under_its_lock() {
    let mut ports = Ports::new();
    ports
        .baskets
        .expect_delete()
        .times(1)
        .returning(|id| Err(DeleteBasketError::NotFound(id)));
    let id = BasketId::generate();

    let result = ports.service().delete(id).await;

    assert!(matches!(result, Err(DeleteBasketError::NotFound(gone)) if gone == id));
}

#[tokio::test]
async fn expiring_marks_the_baskets_due_at_the_clocks_instant() {
    let mut ports = Ports::new();
    ports
        .baskets
        .expect_expire_due()
        .withf(|now| *now == noon())
        .times(1)
        .returning(|_| Ok(3));

    let expired = ports.service().expire_due().await.expect("expired");

    assert_eq!(expired, 3);
}

//! The PostgreSQL basket repository against a real cluster, a fresh database per
//! test: round trips, the lock that serialises changes, version checks, and the
//! constraints behind the domain's rules.

use std::sync::Arc;

use chrono::Utc;
use diesel_async::RunQueryDsl;
use ordo_domain::baskets::{
    Basket, BasketEdit, BasketId, BasketRepository, BasketStatus, BasketTtl, ChangeBasketError,
    CreateBasketError, DeleteBasketError, LineChange,
};
use ordo_domain::catalog::{
    CatalogService, NewProduct, Product, ProductDeletion, ProductKind, ProductName, Sku,
};
use ordo_domain::customers::CustomerId;
use ordo_domain::orders::{PricingError, Quantity};
use ordo_domain::{Currency, Money, Version, VersionMatch};
use ordo_postgres::testing::fresh_database;
use ordo_postgres::{PgBasketRepository, PgPool};

struct Fixture {
    pool: PgPool,
    baskets: Arc<PgBasketRepository>,
    catalog: CatalogService,
}

async fn fixture() -> Fixture {
    let db = fresh_database().await.expect("test database");
    let pool = db.pool(24).expect("pool");
    let settings = ordo_server::Settings::default();
    let data_keys = ordo_server::app::data_keyring(&settings, &pool)
        .await
        .expect("the sandbox's data key");
    let assembled = ordo_server::Services::assemble(
        &ordo_server::Adapters::postgres(&pool, data_keys),
        &settings,
    )
    .expect("services");
    Fixture {
        baskets: Arc::new(PgBasketRepository::new(pool.clone())),
        catalog: assembled.catalog,
        pool,
    }
}

fn eur() -> Currency {
    Currency::parse("EUR").expect("currency")
}

async fn product(f: &Fixture, sku: &str, price: i64) -> Product {
    let new = NewProduct::new(
        Sku::parse(sku).expect("sku"),
        ProductName::parse(sku).expect("name"),
        ProductKind::Service,
        Money::new(price, eur()),
        None,
        None,
    )
    .expect("new product");
    f.catalog.create(new).await.expect("product created")
}

async fn open_basket(f: &Fixture) -> Basket {
    let basket = Basket::open(
        BasketId::generate(),
        None,
        eur(),
        Utc::now(),
        BasketTtl::default(),
    );
    f.baskets
        .insert(basket.clone())
        .await
        .expect("basket stored");
    basket
}

fn set(product: &Product, quantity: i64) -> BasketEdit {
    BasketEdit {
        change: LineChange::Set {
            product_id: product.id(),
            quantity: Quantity::parse(quantity).expect("quantity"),
            product: Some(product.clone()),
        },
        at: ordo_domain::to_micros(Utc::now()),
        ttl: BasketTtl::default(),
    }
}

/// The basket as stored; it must exist.
async fn stored(f: &Fixture, id: BasketId) -> Basket {
    f.baskets
        .find(id)
        .await
        .expect("read")
        .expect("the basket is stored")
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    ordo_postgres::testing::count(pool, sql)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_basket_round_trips_with_its_priced_lines_in_order() {
    let f = fixture().await;
    let coffee = product(&f, "COFFEE", 250).await;
    let beans = product(&f, "BEANS", 1_299).await;
    let basket = open_basket(&f).await;

    f.baskets
        .edit(basket.id(), set(&beans, 2), None)
        .await
        .expect("beans");
    let written = f
        .baskets
        .edit(basket.id(), set(&coffee, 3), None)
        .await
        .expect("coffee");
    let read = stored(&f, basket.id()).await;

    assert_eq!(read, written);
    assert_eq!(read.total().minor(), 2 * 1_299 + 3 * 250);
    assert_eq!(read.lines()[0].product_id(), beans.id());
    assert_eq!(read.lines()[1].line_total().minor(), 750);
    assert_eq!(read.version().get(), 3);
}

#[tokio::test]
async fn concurrent_changes_of_one_basket_are_all_applied_one_after_another() {
    let f = fixture().await;
    let basket = open_basket(&f).await;
    let mut products = Vec::new();
    for i in 0..20 {
        products.push(product(&f, &format!("P-{i}"), 100 + i).await);
    }

    let results = futures::future::join_all(
        products
            .iter()
            .map(|p| f.baskets.edit(basket.id(), set(p, 1), None)),
    )
    .await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let read = stored(&f, basket.id()).await;
    assert_eq!(read.lines().len(), 20);
    assert_eq!(read.version().get(), 21);
    assert_eq!(read.total().minor(), (100..120).sum::<i64>());
    let versions: std::collections::BTreeSet<i32> = results
        .into_iter()
        .map(|r| r.expect("applied").version().get())
        .collect();
    assert_eq!(versions, (2..=21).collect());
}

#[tokio::test]
async fn a_stale_expected_version_changes_nothing() {
    let f = fixture().await;
    let coffee = product(&f, "COFFEE", 250).await;
    let basket = open_basket(&f).await;
    f.baskets
        .edit(basket.id(), set(&coffee, 1), None)
        .await
        .expect("first change");

    let stale = f
        .baskets
        .edit(
            basket.id(),
            set(&coffee, 5),
            Some(VersionMatch::one(Version::FIRST)),
        )
        .await;

    assert!(matches!(stale, Err(ChangeBasketError::VersionMismatch(_))));
    let read = stored(&f, basket.id()).await;
    assert_eq!(read.lines()[0].quantity().get(), 1);
    assert_eq!(read.version().get(), 2);
}

#[tokio::test]
async fn an_unknown_basket_or_customer_is_named() {
    let f = fixture().await;
    let coffee = product(&f, "COFFEE", 250).await;
    let for_nobody = Basket::open(
        BasketId::generate(),
        Some(CustomerId::generate()),
        eur(),
        Utc::now(),
        BasketTtl::default(),
    );

    let edit = f
        .baskets
        .edit(BasketId::generate(), set(&coffee, 1), None)
        .await;
    let insert = f.baskets.insert(for_nobody).await;
    let delete = f.baskets.delete(BasketId::generate()).await;

    assert!(matches!(edit, Err(ChangeBasketError::NotFound(_))));
    assert!(matches!(
        insert,
        Err(CreateBasketError::CustomerNotFound(_))
    ));
    assert!(matches!(delete, Err(DeleteBasketError::NotFound(_))));
    assert_eq!(count(&f.pool, "SELECT count(*) AS n FROM baskets").await, 0);
}

#[tokio::test]
async fn a_product_deleted_after_pricing_is_an_unknown_product_and_nothing_is_written() {
    let f = fixture().await;
    let coffee = product(&f, "COFFEE", 250).await;
    let basket = open_basket(&f).await;
    let priced_before = set(&coffee, 1);
    assert_eq!(
        f.catalog.delete(coffee.id()).await.expect("deleted"),
        ProductDeletion::Deleted
    );

    let result = f.baskets.edit(basket.id(), priced_before, None).await;

    assert!(matches!(
        result,
        Err(ChangeBasketError::Pricing(PricingError::UnknownProduct(id))) if id == coffee.id()
    ));
    let read = stored(&f, basket.id()).await;
    assert_eq!(read.version(), Version::FIRST);
}

#[tokio::test]
async fn a_product_in_a_basket_is_deactivated_instead_of_deleted() {
    let f = fixture().await;
    let coffee = product(&f, "COFFEE", 250).await;
    let basket = open_basket(&f).await;
    f.baskets
        .edit(basket.id(), set(&coffee, 1), None)
        .await
        .expect("set");

    let deletion = f.catalog.delete(coffee.id()).await.expect("handled");

    assert_eq!(deletion, ProductDeletion::Deactivated);
    let read = stored(&f, basket.id()).await;
    assert_eq!(read.lines().len(), 1);
}

#[tokio::test]
async fn deleting_a_basket_removes_its_lines_but_a_checked_out_one_is_kept() {
    let f = fixture().await;
    let coffee = product(&f, "COFFEE", 250).await;
    let basket = open_basket(&f).await;
    f.baskets
        .edit(basket.id(), set(&coffee, 2), None)
        .await
        .expect("set");
    f.baskets.delete(basket.id()).await.expect("deleted");
    let checked_out = open_basket(&f).await;
    diesel::sql_query(format!(
        "UPDATE baskets SET status = 'checked_out' WHERE id = '{}'",
        checked_out.id()
    ))
    .execute(&mut *f.pool.get().await.expect("connection"))
    .await
    .expect("marked");

    let refused = f.baskets.delete(checked_out.id()).await;

    assert!(f.baskets.find(basket.id()).await.expect("read").is_none());
    assert_eq!(
        count(&f.pool, "SELECT count(*) AS n FROM basket_lines").await,
        0
    );
    assert!(matches!(
        refused,
        Err(DeleteBasketError::NotDeletable {
            status: BasketStatus::CheckedOut,
            ..
        })
    ));
    let kept = stored(&f, checked_out.id()).await;
    assert_eq!(kept.status(), BasketStatus::CheckedOut);
}

#[tokio::test]
async fn products_external_ids_are_unique_and_optional() {
    let f = fixture().await;
    let a = product(&f, "A", 1).await;
    let b = product(&f, "B", 1).await;
    let mut conn = f.pool.get().await.expect("connection");
    let set_external = |id: ordo_domain::catalog::ProductId| {
        format!("UPDATE products SET external_id = 'up-1' WHERE id = '{id}'")
    };

    diesel::sql_query(set_external(a.id()))
        .execute(&mut *conn)
        .await
        .expect("first external id");
    let second = diesel::sql_query(set_external(b.id()))
        .execute(&mut *conn)
        .await;

    assert!(
        second.is_err(),
        "a second product took the same external id"
    );
    assert_eq!(
        count(
            &f.pool,
            "SELECT count(*) AS n FROM products WHERE external_id IS NULL"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn expiry_marks_the_open_baskets_due_in_batches_and_skips_one_being_changed() {
    let f = fixture().await;
    let due = stored(&f, open_basket(&f).await.id()).await;
    let held = open_basket(&f).await;
    let later = Utc::now() + chrono::TimeDelta::days(1) + chrono::TimeDelta::minutes(1);
    // More than one batch of 1 000, written directly.
    diesel::sql_query(
        "INSERT INTO baskets (id, customer_id, status, total_minor, currency, expires_at, version, created_at, updated_at) \
         SELECT gen_random_uuid(), NULL, 'open', 0, 'EUR', now(), 1, now(), now() FROM generate_series(1, 2500)",
    )
    .execute(&mut f.pool.get().await.expect("a connection"))
    .await
    .expect("baskets inserted");
    // Another transaction holds one basket, as a change being applied does.
    let mut holder = f.pool.get().await.expect("a connection");
    diesel::sql_query("BEGIN")
        .execute(&mut holder)
        .await
        .expect("begin");
    diesel::sql_query(format!(
        "SELECT id FROM baskets WHERE id = '{}' FOR UPDATE",
        held.id()
    ))
    .execute(&mut holder)
    .await
    .expect("the basket is held");

    let now = f.baskets.expire_due(Utc::now()).await.expect("expired");
    let first = f.baskets.expire_due(later).await.expect("expired");
    diesel::sql_query("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("rollback");
    let second = f.baskets.expire_due(later).await.expect("expired");
    let third = f.baskets.expire_due(later).await.expect("expired");

    assert_eq!(now, 2500, "the baskets due now, not the two due tomorrow");
    assert_eq!(first, 1, "not the held basket");
    assert_eq!(second, 1, "the held basket, once released");
    assert_eq!(third, 0);
    let read = stored(&f, due.id()).await;
    assert_eq!(read.status(), BasketStatus::Expired);
    assert_eq!(
        read.version(),
        due.version(),
        "a read showed it expired already"
    );
    assert_eq!(read.updated_at(), due.updated_at());
    assert_eq!(
        count(
            &f.pool,
            "SELECT count(*) AS n FROM baskets WHERE status = 'open'"
        )
        .await,
        0
    );
}

//! The catalog sync's storage against a real cluster: products created, updated,
//! deactivated (never deleted) by external id, stock untouched, idempotent, and
//! serialised when two syncs race.

use chrono::{DateTime, TimeZone, Utc};
use ordo_domain::catalog::{
    CatalogMirror, NewProduct, ProductId, ProductKind, ProductName, ProductRepository, Sku,
    SyncReport, SyncedProduct,
};
use ordo_domain::upstream::{UpstreamProduct, UpstreamProductId, VatRate};
use ordo_domain::{Currency, Money};
use ordo_postgres::testing::{count, fresh_database};
use ordo_postgres::{PgCatalogMirror, PgPool, PgProductRepository};

fn eur(minor: i64) -> Money {
    Money::price(minor, Currency::parse("EUR").expect("EUR")).expect("a price")
}

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, minute, 0)
        .single()
        .expect("time")
}

fn upstream(products: &[(&str, &str, i64)]) -> Vec<SyncedProduct> {
    products
        .iter()
        .map(|&(id, name, minor)| {
            SyncedProduct::from_upstream(
                &UpstreamProduct {
                    id: UpstreamProductId::parse(id).expect("an id"),
                    name: name.to_owned(),
                    vat_rate: VatRate::from_basis_points(2_500).expect("25 %"),
                    price: eur(minor),
                },
                ProductId::generate(),
            )
            .expect("mirrorable")
        })
        .collect()
}

async fn setup() -> (PgCatalogMirror, PgProductRepository, PgPool) {
    let pool = fresh_database()
        .await
        .expect("test database")
        .pool(8)
        .expect("pool");
    (
        PgCatalogMirror::new(pool.clone()),
        PgProductRepository::new(pool.clone()),
        pool,
    )
}

/// (name, price, active, stock, version) of the product mirroring `external_id`.
async fn mirrored(pool: &PgPool, external_id: &str) -> String {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        row: String,
    }
    let mut conn = pool.get().await.expect("connection");
    let rows: Vec<Row> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT concat_ws(' ', sku, name, price_minor, currency, kind, active, \
             coalesce(stock::text, 'untracked'), version) AS row \
             FROM products WHERE external_id = $1",
        )
        .bind::<diesel::sql_types::Text, _>(external_id),
        &mut conn,
    )
    .await
    .expect("rows");
    rows.into_iter()
        .map(|r| r.row)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_sync_creates_updates_and_deactivates_by_external_id_and_leaves_stock_alone() {
    let (mirror, _, pool) = setup().await;
    let first = mirror
        .apply(
            upstream(&[
                ("coffee", "Coffee", 2_500),
                ("tea", "Tea", 1_800),
                ("soup", "Soup", 4_500),
            ]),
            at(0),
        )
        .await
        .expect("first sync");
    assert_eq!(
        first,
        SyncReport {
            created: 3,
            ..SyncReport::default()
        }
    );
    assert_eq!(
        mirrored(&pool, "coffee").await,
        "UP-coffee Coffee 2500 EUR good t untracked 1"
    );
    // Stock is local: an admin tracks the tea's.
    assert_eq!(
        count(
            &pool,
            "WITH t AS (UPDATE products SET stock = 7 WHERE external_id = 'tea' RETURNING 1) \
             SELECT count(*) AS n FROM t"
        )
        .await
        .expect("stock set"),
        1
    );

    let second = mirror
        .apply(
            upstream(&[("coffee", "Coffee", 2_600), ("tea", "Green tea", 1_800)]),
            at(5),
        )
        .await
        .expect("second sync");

    assert_eq!(
        second,
        SyncReport {
            updated: 2,
            deactivated: 1,
            ..SyncReport::default()
        }
    );
    assert_eq!(
        mirrored(&pool, "coffee").await,
        "UP-coffee Coffee 2600 EUR good t untracked 2"
    );
    assert_eq!(
        mirrored(&pool, "tea").await,
        "UP-tea Green tea 1800 EUR good t 7 2"
    );
    assert_eq!(
        mirrored(&pool, "soup").await,
        "UP-soup Soup 4500 EUR good f untracked 2",
        "deactivated, not deleted"
    );

    let back = mirror
        .apply(
            upstream(&[
                ("coffee", "Coffee", 2_600),
                ("tea", "Green tea", 1_800),
                ("soup", "Soup", 4_500),
            ]),
            at(10),
        )
        .await
        .expect("third sync");
    assert_eq!(
        back,
        SyncReport {
            updated: 1,
            unchanged: 2,
            ..SyncReport::default()
        }
    );
    assert_eq!(
        mirrored(&pool, "soup").await,
        "UP-soup Soup 4500 EUR good t untracked 3"
    );
}

#[tokio::test]
async fn syncing_an_unchanged_catalog_again_writes_nothing() {
    let (mirror, _, pool) = setup().await;
    let catalog = [("coffee", "Coffee", 2_500), ("tea", "Tea", 1_800)];
    mirror
        .apply(upstream(&catalog), at(0))
        .await
        .expect("first sync");

    let again = mirror
        .apply(upstream(&catalog), at(5))
        .await
        .expect("second sync");

    assert_eq!(
        again,
        SyncReport {
            unchanged: 2,
            ..SyncReport::default()
        }
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) AS n FROM products WHERE version = 1 AND updated_at = created_at"
        )
        .await
        .expect("count"),
        2
    );
}

#[tokio::test]
async fn a_new_upstream_product_whose_sku_a_local_product_holds_is_skipped_not_fatal() {
    let (mirror, products, pool) = setup().await;
    products
        .insert(
            ProductId::generate(),
            NewProduct::new(
                Sku::parse("UP-coffee").expect("sku"),
                ProductName::parse("Our own coffee").expect("name"),
                ProductKind::Service,
                eur(100),
                None,
                None,
            )
            .expect("product"),
            at(0),
        )
        .await
        .expect("a local product");

    let report = mirror
        .apply(
            upstream(&[("coffee", "Coffee", 2_500), ("tea", "Tea", 1_800)]),
            at(1),
        )
        .await
        .expect("synced");

    assert_eq!(
        report,
        SyncReport {
            created: 1,
            skipped: 1,
            ..SyncReport::default()
        }
    );
    assert_eq!(
        count(&pool, "SELECT count(*) AS n FROM products WHERE name = 'Our own coffee' AND external_id IS NULL")
            .await
            .expect("count"),
        1
    );
}

#[tokio::test]
async fn syncs_racing_on_one_database_create_every_product_exactly_once() {
    let (mirror, _, pool) = setup().await;
    let catalog: Vec<(String, String, i64)> = (0..40)
        .map(|i| (format!("prod_{i}"), format!("Product {i}"), 100 + i))
        .collect();
    let borrowed: Vec<(&str, &str, i64)> = catalog
        .iter()
        .map(|(id, name, minor)| (id.as_str(), name.as_str(), *minor))
        .collect();

    let reports =
        futures::future::join_all((0..6).map(|_| mirror.apply(upstream(&borrowed), at(0)))).await;

    let reports: Vec<SyncReport> = reports.into_iter().map(|r| r.expect("synced")).collect();
    assert_eq!(reports.iter().map(|r| r.created).sum::<usize>(), 40);
    assert_eq!(reports.iter().map(|r| r.unchanged).sum::<usize>(), 5 * 40);
    assert_eq!(
        count(
            &pool,
            "SELECT count(DISTINCT external_id) AS n FROM products"
        )
        .await
        .expect("count"),
        40
    );
    assert_eq!(
        count(&pool, "SELECT count(*) AS n FROM products")
            .await
            .expect("count"),
        40
    );
}

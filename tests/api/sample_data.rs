//! Sample data is loaded once per database, recorded in the database itself.

use ordo_postgres::testing::fresh_database;
use ordo_server::seed::{self, SeedOutcome};
use ordo_server::state::AppState;
use ordo_server::tasks::TaskHealth;
use ordo_server::{Adapters, Services, Settings};

async fn count(pool: &ordo_postgres::PgPool, table: &str) -> i64 {
    ordo_postgres::testing::count(pool, &format!("SELECT count(*) AS n FROM {table}"))
        .await
        .expect("a count")
}

#[tokio::test]
async fn sample_data_never_comes_back_after_the_catalog_was_emptied() {
    let database = fresh_database().await.expect("a database");
    let pool = database.pool(4).expect("a pool");
    let settings = Settings::default();
    let data_keys = ordo_server::app::data_keyring(&settings, &pool)
        .await
        .expect("the sandbox's data key");
    let services =
        Services::assemble(&Adapters::postgres(&pool, data_keys), &settings).expect("services");
    let state = AppState::new(
        services,
        pool.clone(),
        ordo_server::middleware::metrics::handle(),
        TaskHealth::default(),
    );

    let first = seed::load_once(&state).await.expect("first start");
    assert!(
        matches!(first, Some(SeedOutcome::Loaded { products, .. }) if products > 0),
        "{first:?}"
    );
    // Empty the database through the services, as a user would through the API.
    let everything = || ordo_domain::PageRequest {
        limit: ordo_domain::PageLimit::parse(200).expect("a limit"),
        after: None,
    };
    let orders = state.orders.list(Default::default(), everything()).await;
    for order in orders.expect("orders").items {
        state
            .orders
            .delete(order.id())
            .await
            .expect("an order is deleted");
    }
    for customer in state
        .customers
        .list(everything())
        .await
        .expect("customers")
        .items
    {
        state
            .customers
            .delete(customer.id())
            .await
            .expect("a customer is deleted");
    }
    for product in state
        .catalog
        .list(everything())
        .await
        .expect("products")
        .items
    {
        state
            .catalog
            .delete(product.id())
            .await
            .expect("a product is deleted");
    }

    let after_restart = seed::load_once(&state).await.expect("a later start");

    assert_eq!(after_restart, None);
    assert_eq!(count(&pool, "products").await, 0);
    assert_eq!(count(&pool, "customers").await, 0);
}

//! PostgreSQL adapters for Ordo's repository ports (diesel + diesel-async), the
//! embedded migrations, a connection pool, and a launcher for a private local
//! cluster used by `ordo serve` without `DATABASE_URL` and by the tests.

mod activity;
mod baskets;
mod catalog_mirror;
mod checkout;
mod clients;
pub mod cluster;
mod customers;
mod errors;
mod hit_copy;
mod idempotency;
pub mod installation;
mod jobs;
mod migrate;
mod orders;
mod pool;
mod prebuilt;
mod products;
mod reports;
mod sales_rollup;
mod schema;
pub mod sealing;
mod stock;
pub mod synthetic;
pub mod synthetic_hits;
pub mod testing;

pub use activity::PgActivityStore;
pub use baskets::PgBasketRepository;
pub use catalog_mirror::PgCatalogMirror;
pub use checkout::PgCheckoutStore;
pub use clients::PgClientRepository;
pub use cluster::{
    ClusterError, ClusterHealth, Durability, LocalCluster, LocalClusterConfig, Supervisor,
};
pub use customers::PgCustomerRepository;
pub use idempotency::PgIdempotencyStore;
pub use jobs::PgJobStore;
pub use migrate::run_migrations;
pub use orders::{INSERT_NUMBERED_ORDER, OrderReadSql, PgOrderRepository};
pub use pool::{MIN_SHARED, PgPool, PoolConfig, Shares, connect_pool, ping};
pub use products::PgProductRepository;
pub use reports::{
    MONTHLY_SALES, PgReportQueries, REQUESTS_PER_HOUR, SALES_BY_CITY, STOCK, TOP_CUSTOMERS,
};

mod refresh_tokens;
mod users;

pub use refresh_tokens::PgRefreshTokenStore;
pub use sales_rollup::PgSalesRollup;
pub use users::PgUserRepository;

use std::time::Duration;

use anyhow::Context;
use diesel_async::AsyncPgConnection;
use diesel_async::RunQueryDsl;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};

/// A pool of asynchronous PostgreSQL connections.
pub type PgPool = Pool<AsyncPgConnection>;

/// Builds a pool of at most `max_size` connections to `database_url`. Connections
/// are opened lazily; waiting for a free one gives up after `wait`.
///
/// # Errors
/// When the pool cannot be built (an invalid configuration).
pub fn connect_pool(database_url: &str, max_size: usize, wait: Duration) -> anyhow::Result<PgPool> {
    // `Fast` recycling: the default `Verified` sends `SELECT 1` on every checkout, a
    // round trip per request. A closed connection is still discarded on return
    // (diesel-async checks it), and a broken transaction is never handed out.
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, config);
    Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(wait))
        .create_timeout(Some(Duration::from_secs(10)))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .context("building the PostgreSQL connection pool")
}

/// Checks that the database answers a trivial query.
///
/// # Errors
/// When no connection can be had or the query fails.
pub async fn ping(pool: &PgPool) -> anyhow::Result<()> {
    let mut conn = checkout(pool).await?;
    diesel::sql_query("SELECT 1")
        .execute(&mut conn)
        .await
        .context("pinging PostgreSQL")?;
    Ok(())
}

/// No database connection could be had: none became free in time, or PostgreSQL
/// refused or could not be reached. Callers answer "try again later", not "bug".
#[derive(Debug, thiserror::Error)]
#[error("no database connection is available: {0}")]
pub struct DatabaseUnavailable(String);

/// Takes a connection from the pool.
pub(crate) async fn checkout(pool: &PgPool) -> anyhow::Result<Object<AsyncPgConnection>> {
    use deadpool::managed::PoolError;
    pool.get().await.map_err(|e| match e {
        PoolError::Timeout(_) | PoolError::Backend(_) => DatabaseUnavailable(e.to_string()).into(),
        other => anyhow::Error::new(other).context("taking a PostgreSQL connection from the pool"),
    })
}

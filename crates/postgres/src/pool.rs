use std::time::Duration;

use anyhow::Context;
use diesel_async::AsyncPgConnection;
use diesel_async::RunQueryDsl;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use ordo_domain::{Dependency, Unavailable};

use crate::errors::RETRY_AFTER;

/// A pool of asynchronous PostgreSQL connections.
pub type PgPool = Pool<AsyncPgConnection>;

/// How Ordo's connections to PostgreSQL behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Connections in the pool at most.
    pub max_size: usize,
    /// How long a request waits for a free connection before it is answered 503.
    pub wait: Duration,
    /// `statement_timeout`: the longest one statement may run.
    pub statement_timeout: Duration,
    /// `lock_timeout`: the longest a statement waits for a lock.
    pub lock_timeout: Duration,
    /// `idle_in_transaction_session_timeout`: a transaction left idle this long is
    /// ended by the server, releasing its locks.
    pub idle_in_transaction_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_size: 16,
            wait: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(5),
            idle_in_transaction_timeout: Duration::from_secs(60),
        }
    }
}

impl PoolConfig {
    /// A pool of `max_size` connections with the other settings at their defaults.
    pub fn with_max_size(max_size: usize) -> Self {
        Self {
            max_size,
            ..Self::default()
        }
    }

    /// `url` with the session settings attached as the `options` startup parameter,
    /// so every connection has them from its first statement, without a round trip.
    /// `lc_messages=C` keeps server messages in English, which the error mapping reads.
    /// `jit=off`: compiling a statement costs 50–150 ms each time the planner
    /// judges it expensive (the reports over a million orders), more than such a
    /// statement runs for here; JIT pays only for statements that run for seconds.
    pub(crate) fn session_url(&self, url: &str) -> String {
        let millis = |d: Duration| d.as_millis().max(1);
        let options = format!(
            "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={} -c lc_messages=C -c jit=off",
            millis(self.statement_timeout),
            millis(self.lock_timeout),
            millis(self.idle_in_transaction_timeout),
        );
        let encoded = options.replace(' ', "%20").replace('=', "%3D");
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}options={encoded}")
    }
}

/// Builds a pool of connections to `database_url` as `config` says. Connections are
/// opened lazily.
///
/// # Errors
/// When the pool cannot be built (an invalid configuration).
pub fn connect_pool(database_url: &str, config: &PoolConfig) -> anyhow::Result<PgPool> {
    // `Fast` recycling: the default `Verified` sends `SELECT 1` on every checkout, a
    // round trip per request. A closed connection is still discarded on return
    // (diesel-async checks it), and a broken transaction is never handed out.
    let mut manager_config = ManagerConfig::default();
    manager_config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        config.session_url(database_url),
        manager_config,
    );
    Pool::builder(manager)
        .max_size(config.max_size)
        .wait_timeout(Some(config.wait))
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

/// Takes a connection from the pool. No connection to be had (none became free in
/// time, or PostgreSQL refused or could not be reached) is the domain's
/// [`Unavailable`]: callers answer "try again later", not "bug".
pub(crate) async fn checkout(pool: &PgPool) -> anyhow::Result<Object<AsyncPgConnection>> {
    use deadpool::managed::PoolError;
    pool.get().await.map_err(|e| match e {
        PoolError::Timeout(_) | PoolError::Backend(_) => anyhow::Error::new(Unavailable::new(
            Dependency::Database,
            RETRY_AFTER,
            format!("no database connection is available: {e}"),
        )),
        other => anyhow::Error::new(other).context("taking a PostgreSQL connection from the pool"),
    })
}

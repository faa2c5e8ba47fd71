use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context;
use diesel_async::AsyncPgConnection;
use diesel_async::RunQueryDsl;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use ordo_domain::{Dependency, Unavailable};

use crate::errors::RETRY_AFTER;

/// A pool of asynchronous PostgreSQL connections: connections shared by every
/// thread, and connections of its own for each thread that adopted a shard
/// ([`PgPool::adopt_thread`]), such as the HTTP server's workers.
///
/// A connection's I/O runs as a task on the runtime that opened it, and actix-web
/// serves each worker on a single-threaded runtime of its own. With one pool for
/// all, a request on one worker would often hold a connection opened by another:
/// each message to and from PostgreSQL would then wake that other thread and wait
/// until it is between requests. A worker's own shard keeps a request, its
/// connection and the connection's I/O on one thread.
#[derive(Clone)]
pub struct PgPool {
    /// Replaced by a smaller pool when the pool is shared out between workers
    /// (deadpool cannot shrink a pool's bound below the connections it never
    /// opened).
    shared: Arc<RwLock<Pool<AsyncPgConnection>>>,
    shards: Arc<ShardSource>,
}

/// What a thread needs to open a shard of a [`PgPool`].
struct ShardSource {
    /// Tells this pool's shards apart from other pools' on one thread.
    id: u64,
    url: String,
    config: PoolConfig,
}

thread_local! {
    /// The shards this thread adopted, by pool id.
    static THREAD_SHARDS: RefCell<Vec<(u64, Pool<AsyncPgConnection>)>> = const { RefCell::new(Vec::new()) };
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("shared", &self.shared().status())
            .field("max_size", &self.shards.config.max_size)
            .finish_non_exhaustive()
    }
}

impl PgPool {
    /// Gives the calling thread up to `size` connections of its own: from now on
    /// the tasks this thread runs take their connections from them, and they are
    /// opened (so their I/O is driven) on this thread. Meant for threads that run
    /// one single-threaded runtime for good, as actix-web's workers do; tasks on
    /// other threads keep using the shared connections. Adopting twice is a no-op.
    ///
    /// # Errors
    /// When the shard cannot be built (an invalid configuration).
    pub fn adopt_thread(&self, size: usize) -> anyhow::Result<()> {
        if self.thread_shard().is_some() {
            return Ok(());
        }
        let shard = build(
            &self.shards.url,
            &PoolConfig {
                max_size: size.max(1),
                ..self.shards.config.clone()
            },
        )?;
        THREAD_SHARDS.with(|shards| shards.borrow_mut().push((self.shards.id, shard)));
        Ok(())
    }

    /// Shares the pool out between `workers` serving threads, which then each
    /// [`adopt`](Shares::adopt) a share: the shares together hold the configured
    /// size (split as evenly as it goes), and the shared connections, which other
    /// threads (background tasks, start-up) keep using, are cut to a quarter of it,
    /// at least [`MIN_SHARED`]. The pool then holds at most the configured size
    /// plus that quarter. `None` (nothing changed, every thread shares) when there
    /// are fewer connections than workers.
    pub fn share_out(&self, workers: usize) -> Option<Arc<Shares>> {
        let max_size = self.shards.config.max_size;
        if workers == 0 || max_size < workers {
            return None;
        }
        let shared = PoolConfig {
            max_size: (max_size / 4).max(MIN_SHARED).min(max_size),
            ..self.shards.config.clone()
        };
        match build(&self.shards.url, &shared) {
            Ok(smaller) => *self.shared.write().unwrap_or_else(PoisonError::into_inner) = smaller,
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "the shared connections keep their configured bound"
            ),
        }
        let sizes = (0..workers)
            .map(|i| max_size / workers + usize::from(i < max_size % workers))
            .collect();
        Some(Arc::new(Shares {
            pool: self.clone(),
            sizes,
            next: AtomicUsize::new(0),
        }))
    }

    /// A connection: from the calling thread's shard when it adopted one, else a
    /// shared one; waits up to the configured time for one to be free.
    ///
    /// # Errors
    /// When none became free in time, or none could be opened.
    pub async fn get(&self) -> Result<Object<AsyncPgConnection>, PoolError> {
        match self.thread_shard() {
            Some(shard) => shard.get().await,
            None => self.shared().get().await,
        }
    }

    fn shared(&self) -> Pool<AsyncPgConnection> {
        self.shared
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn thread_shard(&self) -> Option<Pool<AsyncPgConnection>> {
        THREAD_SHARDS.with(|shards| {
            shards
                .borrow()
                .iter()
                .find(|(id, _)| *id == self.shards.id)
                .map(|(_, shard)| shard.clone())
        })
    }
}

/// The fewest shared connections left when a pool is shared out: background
/// tasks (the scheduler's jobs, the activity writer, the outbox dispatcher,
/// reconciliation) take theirs from them at the same time.
pub const MIN_SHARED: usize = 4;

/// A pool's connections shared out between serving threads ([`PgPool::share_out`]).
#[derive(Debug)]
pub struct Shares {
    pool: PgPool,
    sizes: Vec<usize>,
    next: AtomicUsize,
}

impl Shares {
    /// Gives the calling thread the next share (see [`PgPool::adopt_thread`]);
    /// once every share is taken (a worker restarted), the thread keeps to the
    /// shared connections, so the bound holds.
    ///
    /// # Errors
    /// When the shard cannot be built (an invalid configuration).
    pub fn adopt(&self) -> anyhow::Result<()> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        match self.sizes.get(index) {
            Some(&size) => self.pool.adopt_thread(size),
            None => Ok(()),
        }
    }

    /// The size of each share, in the order they are adopted.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }
}

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
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let url = config.session_url(database_url);
    Ok(PgPool {
        shared: Arc::new(RwLock::new(build(&url, config)?)),
        shards: Arc::new(ShardSource {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            url,
            config: config.clone(),
        }),
    })
}

/// A pool of `config.max_size` connections to `url` (with its session options).
fn build(url: &str, config: &PoolConfig) -> anyhow::Result<Pool<AsyncPgConnection>> {
    // `Fast` recycling: the default `Verified` sends `SELECT 1` on every checkout, a
    // round trip per request. A closed connection is still discarded on return
    // (diesel-async checks it), and a broken transaction is never handed out.
    let mut manager_config = ManagerConfig::default();
    manager_config.recycling_method = RecyclingMethod::Fast;
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, manager_config);
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
    pool.get().await.map_err(|e| match e {
        PoolError::Timeout(_) | PoolError::Backend(_) => anyhow::Error::new(Unavailable::new(
            Dependency::Database,
            RETRY_AFTER,
            format!("no database connection is available: {e}"),
        )),
        other => anyhow::Error::new(other).context("taking a PostgreSQL connection from the pool"),
    })
}

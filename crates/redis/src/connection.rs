use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Where Redis is and how long Ordo waits for it.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS).
    pub url: String,
    /// How long one command may take, connecting included, before it counts as
    /// failed: a request waits at most this long on an unreachable Redis.
    pub timeout: Duration,
}

/// A connection to Redis shared by every adapter of one instance: one multiplexed
/// connection that reconnects in the background when it drops, and one more per
/// thread that [adopts](Redis::adopt_thread) its own. Cheap to clone.
#[derive(Clone)]
pub struct Redis {
    id: u64,
    client: redis::Client,
    manager_config: ConnectionManagerConfig,
    connection: ConnectionManager,
    timeout: Duration,
}

thread_local! {
    /// The connections this thread adopted, by the [`Redis`] they belong to.
    static ADOPTED: RefCell<HashMap<u64, Adopted>> = RefCell::new(HashMap::new());
}

/// A thread's own connection, used once it has answered: until then (and for
/// good if it never connects) the thread's commands take the shared connection,
/// which was connected at start, so no request waits on a connection being made.
struct Adopted {
    connection: ConnectionManager,
    ready: Arc<AtomicBool>,
}

/// How often a thread's own connection is tried again while Redis does not answer.
const ADOPT_RETRY: Duration = Duration::from_secs(1);

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// A connection to the Redis at `config.url`, attempted at once. An unreachable
    /// Redis is not an error here: the instance starts anyway (its adapters report
    /// Redis unavailable until it can be reached, and the callers' fallbacks
    /// apply), because a Redis that is down for a moment must not keep every
    /// instance from starting.
    ///
    /// # Errors
    /// When the URL is not a Redis URL.
    pub async fn connect(config: &RedisConfig) -> anyhow::Result<Self> {
        let client = redis::Client::open(config.url.as_str()).context("ORDO_REDIS_URL")?;
        // Few, quick reconnection attempts: a request waiting on a reconnection is
        // bounded by `timeout` anyway, and the next request starts a new attempt.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection =
            ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
                .context("setting up the Redis connection")?;
        let redis = Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            client,
            manager_config,
            connection,
            timeout: config.timeout,
        };
        // Connecting here, on the runtime that builds the application, keeps the
        // connection's driver task on it rather than on whichever worker happens to
        // send the first command.
        if let Err(error) = redis.ping().await {
            tracing::warn!(%error, "Redis is unreachable; continuing, and retrying on use");
        }
        Ok(redis)
    }

    /// Whether Redis answers.
    ///
    /// # Errors
    /// When it does not, within the timeout.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.ping_over(&mut self.connection()).await
    }

    async fn ping_over(&self, connection: &mut ConnectionManager) -> anyhow::Result<()> {
        self.bounded(redis::cmd("PING").query_async::<()>(connection))
            .await
    }

    /// Gives the calling thread a connection of its own, used for every command
    /// sent from it once it has connected. Its driver runs on the calling thread's
    /// runtime, so on a single-threaded runtime (an HTTP worker) a command never
    /// leaves the thread but for the socket; over the shared connection each
    /// command hops to the thread driving it and its answer hops back. Connecting
    /// starts at once, as a task on the calling thread's runtime, and is tried
    /// again every second until Redis answers; until then the shared connection
    /// serves. Without a runtime on the calling thread, nothing is adopted;
    /// adopting twice is a no-op.
    ///
    /// # Errors
    /// When the connection cannot be set up.
    pub fn adopt_thread(&self) -> anyhow::Result<()> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Ok(());
        };
        // Adopting twice is a no-op: actix-web builds a worker's app again on the
        // same thread when its service failed, and the connection it has works.
        if ADOPTED.with(|adopted| adopted.borrow().contains_key(&self.id)) {
            return Ok(());
        }
        let connection = ConnectionManager::new_lazy_with_config(
            self.client.clone(),
            self.manager_config.clone(),
        )
        .context("setting up this thread's Redis connection")?;
        let ready = Arc::new(AtomicBool::new(false));
        let (redis, mut warming, warmed) = (self.clone(), connection.clone(), ready.clone());
        runtime.spawn(async move {
            while redis.ping_over(&mut warming).await.is_err() {
                tokio::time::sleep(ADOPT_RETRY).await;
            }
            warmed.store(true, Ordering::Release);
        });
        ADOPTED.with(|adopted| {
            adopted
                .borrow_mut()
                .insert(self.id, Adopted { connection, ready })
        });
        Ok(())
    }

    /// Whether commands sent from the calling thread go over a connection of its
    /// own: it [adopted](Self::adopt_thread) one, and that one has answered.
    pub fn uses_own_connection(&self) -> bool {
        self.own_connection().is_some()
    }

    pub(crate) fn connection(&self) -> ConnectionManager {
        self.own_connection()
            .unwrap_or_else(|| self.connection.clone())
    }

    /// The calling thread's own connection, once it has answered.
    fn own_connection(&self) -> Option<ConnectionManager> {
        ADOPTED.with(|adopted| {
            adopted
                .borrow()
                .get(&self.id)
                .filter(|own| own.ready.load(Ordering::Acquire))
                .map(|own| own.connection.clone())
        })
    }

    /// Runs `command`, failing when it takes longer than the timeout.
    pub(crate) async fn bounded<T>(
        &self,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> anyhow::Result<T> {
        tokio::time::timeout(self.timeout, command)
            .await
            .map_err(|_| anyhow::anyhow!("Redis did not answer within {:?}", self.timeout))?
            .context("Redis failed")
    }
}

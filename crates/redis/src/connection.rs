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
/// connection that reconnects in the background when it drops. Cheap to clone.
#[derive(Clone)]
pub struct Redis {
    connection: ConnectionManager,
    timeout: Duration,
}

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
        let connection = ConnectionManager::new_lazy_with_config(client, manager_config)
            .context("setting up the Redis connection")?;
        let redis = Self {
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
        let mut connection = self.connection();
        self.bounded(redis::cmd("PING").query_async::<()>(&mut connection))
            .await
    }

    pub(crate) fn connection(&self) -> ConnectionManager {
        self.connection.clone()
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

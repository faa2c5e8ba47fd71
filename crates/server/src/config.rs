//! Settings: built-in defaults < an optional TOML file < `ORDO_*` environment
//! variables (and `DATABASE_URL`) < command-line flags.
//!
//! The settings are nested by concern (`http`, `database`, `orders`, `auth`,
//! `rate_limits`, `redis`); the TOML file
//! uses the same sections. Environment variables keep short flat names
//! (`ORDO_DATABASE_POOL_SIZE`, `ORDO_LISTEN`); any nested key can also be set as
//! `ORDO_<SECTION>__<KEY>` (e.g. `ORDO_HTTP__MAX_CONNECTIONS`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Everything Ordo can be configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The HTTP server.
    pub http: HttpSettings,
    /// The database and its connections.
    pub database: DatabaseSettings,
    /// The order rules.
    pub orders: OrderSettings,
    /// The basket rules.
    pub baskets: BasketSettings,
    /// Users, tokens and secrets.
    pub auth: AuthSettings,
    /// The external order, payment and catalog API.
    pub upstream: UpstreamSettings,
    /// How many requests each caller may make.
    pub rate_limits: RateLimitSettings,
    /// Scheduled jobs.
    pub scheduler: SchedulerSettings,
    /// The Redis that several instances share.
    pub redis: RedisSettings,
    /// Hits: how they are queued and written, how long they are kept, how long
    /// usage answers are cached.
    pub activity: ActivitySettings,
    /// `text` or `json` (`ORDO_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Load sample data on the first start of a new embedded database
    /// (`ORDO_SAMPLE_DATA`).
    pub sample_data: bool,
}

/// The HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Address to serve on (`ORDO_LISTEN`).
    pub listen: SocketAddr,
    /// Worker threads; one per core when unset (`ORDO_WORKERS`).
    pub workers: Option<usize>,
    /// Seconds in-flight requests get to finish on shutdown, and background tasks
    /// get to finish their work after that (`ORDO_SHUTDOWN_TIMEOUT_SECS`).
    pub shutdown_timeout_secs: u64,
    /// Milliseconds between the start of a graceful shutdown and the moment the
    /// server stops accepting connections, while `/readyz` already answers 503
    /// and everything else is still served: time for a load balancer's health
    /// checks to take the instance out (`ORDO_SHUTDOWN_DRAIN_MS`). 0 for a single
    /// instance with nothing in front of it.
    pub shutdown_drain_ms: u64,
    /// Seconds a client has to send a request's head, and then its whole body; a
    /// stalled request is answered 408 and its connection closed
    /// (`ORDO_REQUEST_TIMEOUT_SECS`).
    pub request_timeout_secs: u64,
    /// Open connections per worker at most; more wait in the listen backlog
    /// (`ORDO_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Reverse proxies whose `X-Forwarded-For` is believed: addresses or CIDR
    /// blocks, as a list or comma-separated (`ORDO_TRUSTED_PROXIES`). Empty: the
    /// client's address is always the socket peer.
    #[serde(deserialize_with = "list_or_commas")]
    pub trusted_proxies: Vec<String>,
}

/// A list of strings, given as a list or as one comma-separated string (as an
/// environment variable gives it).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCommas {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match ListOrCommas::deserialize(d)? {
        ListOrCommas::List(items) => items,
        ListOrCommas::Commas(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// The database and its connections.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// An existing PostgreSQL database (`DATABASE_URL`); when unset, Ordo starts its
    /// own cluster in `data_dir`. It may hold a password, so it never prints.
    pub url: Option<SecretString>,
    /// Where the embedded PostgreSQL cluster keeps its data (`ORDO_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Connections in the pool (`ORDO_DATABASE_POOL_SIZE`).
    pub pool_size: usize,
    /// Seconds a request waits for a free connection before it is answered 503
    /// (`ORDO_DATABASE_POOL_WAIT_SECS`).
    pub pool_wait_secs: u64,
    /// `statement_timeout` of Ordo's connections (`ORDO_DATABASE_STATEMENT_TIMEOUT_MS`).
    pub statement_timeout_ms: u64,
    /// `lock_timeout` of Ordo's connections (`ORDO_DATABASE_LOCK_TIMEOUT_MS`).
    pub lock_timeout_ms: u64,
    /// `idle_in_transaction_session_timeout` of Ordo's connections
    /// (`ORDO_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS`).
    pub idle_in_transaction_timeout_ms: u64,
}

/// The order rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct OrderSettings {
    /// Minimum minutes between two orders of one customer (`ORDO_SPACING_WINDOW_MINUTES`).
    pub spacing_window_minutes: i64,
    /// Currency of products created without one (`ORDO_DEFAULT_CURRENCY`).
    pub default_currency: String,
}

/// The basket rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BasketSettings {
    /// Seconds a basket lives after its last change, 60 to 30 days
    /// (`ORDO_BASKET_TTL_SECS`).
    pub ttl_secs: u64,
}

impl Default for BasketSettings {
    fn default() -> Self {
        Self {
            ttl_secs: ordo_domain::baskets::BasketTtl::DEFAULT_SECS,
        }
    }
}

/// Scheduled jobs: whether this instance runs them, and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SchedulerSettings {
    /// Whether this instance polls for due jobs and runs them
    /// (`ORDO_SCHEDULER_ENABLED`). Jobs are listed, changed and triggered
    /// through the API either way; with several instances, any number may run
    /// the scheduler and each due run still happens once.
    pub enabled: bool,
    /// Milliseconds between two polls (`ORDO_SCHEDULER_POLL_MS`); a manual run
    /// requested through this instance starts at once.
    pub poll_ms: u64,
    /// Seconds an instance holds a run without renewing it, 1 to 86 400
    /// (`ORDO_SCHEDULER_LEASE_SECS`): how soon another instance takes over a run
    /// whose instance died. The lease is renewed every third of it.
    pub lease_secs: u64,
    /// Times a run is taken before a run whose lease keeps running out is given
    /// up (`ORDO_SCHEDULER__MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// Days finished runs are kept (`ORDO_SCHEDULER__HISTORY_DAYS`).
    pub history_days: u32,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_ms: 5_000,
            lease_secs: 60,
            max_attempts: 3,
            history_days: 30,
        }
    }
}

impl SchedulerSettings {
    /// Time between two polls, at least 10 ms.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_ms.max(10))
    }
}

/// Users, tokens and secrets. Secrets never print.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// The HMAC key access tokens are signed with, at least 32 bytes
    /// (`ORDO_JWT_SECRET`). Required with `DATABASE_URL`; in sandbox mode (embedded
    /// database, no secret) one is generated and kept in the database.
    pub jwt_secret: Option<SecretString>,
    /// The key personal data is sealed under at rest (`ORDO_DATA_KEY`): random text
    /// of at least 16 bytes. Required with `DATABASE_URL`; generated and kept in the
    /// database in sandbox mode.
    pub data_key: Option<SecretString>,
    /// Data keys of before a rotation, comma-separated (`ORDO_DATA_KEY_PREVIOUS`):
    /// values sealed under them stay readable until `ordo rekey` seals them again
    /// under `data_key`.
    pub data_key_previous: Option<SecretString>,
    /// An administrator created when there is no user yet (`ORDO_ADMIN_EMAIL`).
    pub admin_email: Option<String>,
    /// That administrator's password (`ORDO_ADMIN_PASSWORD`).
    pub admin_password: Option<SecretString>,
    /// `iss` of access tokens (`ORDO_AUTH__ISSUER`).
    pub issuer: String,
    /// `aud` of access tokens (`ORDO_AUTH__AUDIENCE`).
    pub audience: String,
    /// Seconds an access token is accepted (`ORDO_ACCESS_TTL_SECS`).
    pub access_ttl_secs: u64,
    /// Seconds a refresh token can be exchanged (`ORDO_REFRESH_TTL_SECS`).
    pub refresh_ttl_secs: u64,
    /// Seconds of clock skew tolerated on `exp` and `iat` (`ORDO_AUTH__LEEWAY_SECS`).
    pub leeway_secs: u64,
    /// Milliseconds a resolved API key (or an unknown one) is remembered, at most
    /// 5 000: the bound within which a key rotated or deleted through another
    /// instance stops working here (`ORDO_API_KEY_CACHE_TTL_MS`).
    pub api_key_cache_ttl_ms: u64,
    /// Resolved API keys remembered at most (`ORDO_AUTH__API_KEY_CACHE_CAPACITY`).
    pub api_key_cache_capacity: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            data_key: None,
            data_key_previous: None,
            admin_email: None,
            admin_password: None,
            issuer: "ordo".into(),
            audience: "ordo-api".into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 2_592_000,
            leeway_secs: 30,
            api_key_cache_ttl_ms: 5_000,
            api_key_cache_capacity: 50_000,
        }
    }
}

/// Hits: the writer's queue and batches, retention, and the usage cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ActivitySettings {
    /// Hits held in memory at most, queued or being written; a request that does
    /// not fit is answered 503 `ingestion_backpressure`
    /// (`ORDO_ACTIVITY_QUEUE_CAPACITY`, at least 1 000).
    pub queue_capacity: usize,
    /// A batch is written once it has this many hits (`ORDO_ACTIVITY_BATCH_SIZE`).
    pub batch_size: usize,
    /// …or once its oldest hit has waited this many milliseconds: the most a
    /// `kill -9` can lose (`ORDO_ACTIVITY_FLUSH_INTERVAL_MS`).
    pub flush_interval_ms: u64,
    /// Durable mode: answer `POST /v1/logs` only once its hits are committed
    /// (`ORDO_ACTIVITY_SYNC`).
    pub sync: bool,
    /// Days of raw hits kept; hourly counts are kept longer
    /// (`ORDO_ACTIVITY_RETENTION_DAYS`).
    pub retention_days: u32,
    /// Days ahead whose storage is made ready at start
    /// (`ORDO_ACTIVITY__PREPARE_DAYS_AHEAD`).
    pub prepare_days_ahead: u16,
    /// The longest wait between two attempts at writing a batch while the
    /// database fails (`ORDO_ACTIVITY__MAX_RETRY_BACKOFF_MS`).
    pub max_retry_backoff_ms: u64,
    /// Milliseconds usage answers are cached, and the `max-age` clients are told
    /// (`ORDO_USAGE_CACHE_TTL_MS`).
    pub usage_cache_ttl_ms: u64,
}

impl Default for ActivitySettings {
    fn default() -> Self {
        Self {
            queue_capacity: 100_000,
            batch_size: 5_000,
            flush_interval_ms: 100,
            sync: false,
            retention_days: 30,
            prepare_days_ahead: 3,
            max_retry_backoff_ms: 5_000,
            usage_cache_ttl_ms: 5_000,
        }
    }
}

/// The external order, payment and catalog API, and how patiently it is called.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct UpstreamSettings {
    /// Its base URL (`ORDO_UPSTREAM_URL`). Unset: sandbox mode, in which Ordo
    /// starts the upstream simulator in-process and calls that.
    pub url: Option<String>,
    /// Sent as `x-auth-user` on every call (`ORDO_UPSTREAM_USER`).
    pub user: String,
    /// The currency of the upstream's amounts (`ORDO_UPSTREAM__CURRENCY`).
    pub currency: String,
    /// How long connecting may take (`ORDO_UPSTREAM_CONNECT_TIMEOUT_MS`).
    pub connect_timeout_ms: u64,
    /// How long one attempt may take (`ORDO_UPSTREAM_ATTEMPT_TIMEOUT_MS`).
    pub attempt_timeout_ms: u64,
    /// How long one call may take, retries included (`ORDO_UPSTREAM_DEADLINE_MS`).
    pub deadline_ms: u64,
    /// Attempts per call at most (`ORDO_UPSTREAM_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// The bound of the first retry's random wait; it doubles with every retry
    /// (`ORDO_UPSTREAM__BACKOFF_BASE_MS`).
    pub backoff_base_ms: u64,
    /// The largest bound of a retry's random wait (`ORDO_UPSTREAM__BACKOFF_MAX_MS`).
    pub backoff_max_ms: u64,
    /// The window the circuit breaker's error rate is computed over
    /// (`ORDO_UPSTREAM__BREAKER_WINDOW_SECS`).
    pub breaker_window_secs: u64,
    /// Attempts in the window before the circuit can open
    /// (`ORDO_UPSTREAM__BREAKER_MIN_CALLS`).
    pub breaker_min_calls: u32,
    /// The failure share that opens the circuit (`ORDO_UPSTREAM__BREAKER_FAILURE_RATIO`).
    pub breaker_failure_ratio: f64,
    /// How long the circuit stays open before probing
    /// (`ORDO_UPSTREAM__BREAKER_OPEN_MS`).
    pub breaker_open_ms: u64,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        let config = ordo_upstream::UpstreamConfig::default();
        Self {
            url: None,
            user: "ordo".into(),
            currency: config.currency.to_string(),
            connect_timeout_ms: millis(config.connect_timeout),
            attempt_timeout_ms: millis(config.attempt_timeout),
            deadline_ms: millis(config.deadline),
            max_attempts: config.max_attempts,
            backoff_base_ms: millis(config.backoff_base),
            backoff_max_ms: millis(config.backoff_max),
            breaker_window_secs: config.breaker.window.as_secs(),
            breaker_min_calls: config.breaker.min_calls,
            breaker_failure_ratio: config.breaker.failure_ratio,
            breaker_open_ms: millis(config.breaker.open_for),
        }
    }
}

/// How many requests each caller may make. A client's limit is on its record
/// (600/min, burst 100 unless set otherwise).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RateLimitSettings {
    /// Each logged-in user (`ORDO_RATE_LIMIT_USER_PER_MINUTE`,
    /// `ORDO_RATE_LIMIT_USER_BURST`): 6 000/min, burst 1 000 — staff tools
    /// batch-create, and a widely used payments API allows 100 requests/s per
    /// account.
    pub user: LimitSettings,
    /// Each network address, for requests without valid credentials
    /// (`ORDO_RATE_LIMIT_ANONYMOUS_PER_MINUTE`, `ORDO_RATE_LIMIT_ANONYMOUS_BURST`):
    /// 600/min, burst 100, as much as one API client — without credentials only
    /// logging in, exchanging tokens and logging out do any work, and an office
    /// behind one NAT address refreshing its tokens stays far below it.
    pub anonymous: LimitSettings,
    /// Login attempts from each network address, on top of the above
    /// (`ORDO_RATE_LIMIT_LOGIN_IP_PER_MINUTE`, `ORDO_RATE_LIMIT_LOGIN_IP_BURST`):
    /// 30/min, burst 20 — a morning rush behind one NAT address gets in, while one
    /// address cannot keep more than a sliver of a core busy hashing passwords.
    pub login_per_ip: LimitSettings,
    /// Login attempts for each e-mail address, existing or not
    /// (`ORDO_RATE_LIMIT_LOGIN_EMAIL_PER_MINUTE`, `ORDO_RATE_LIMIT_LOGIN_EMAIL_BURST`):
    /// 1/min, burst 5 — five typos in a row, then one try a minute, so guessing
    /// one account's password from any number of addresses gets ~1 500 tries a day.
    pub login_per_email: LimitSettings,
    /// Keys the in-memory store holds at most; beyond, the key closest to a whole
    /// allowance is forgotten (`ORDO_RATE_LIMIT_MAX_KEYS`).
    pub max_keys: usize,
}

/// The Redis several instances share. Without a URL each instance keeps rate
/// limits in its own memory, which is right for one instance and wrong for more
/// (each would grant the whole allowance).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]` (`ORDO_REDIS_URL`). It may hold a
    /// password, so it never prints.
    pub url: Option<SecretString>,
    /// Milliseconds one Redis command may take, connecting included, before it
    /// counts as failed and the caller's fallback applies (`ORDO_REDIS_TIMEOUT_MS`).
    pub timeout_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            timeout_ms: 250,
        }
    }
}

/// One rate limit: `requests_per_minute` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct LimitSettings {
    /// Requests per minute, on average.
    pub requests_per_minute: u32,
    /// Requests at once.
    pub burst: u32,
}

impl LimitSettings {
    /// The policy these settings describe.
    ///
    /// # Errors
    /// When either number is zero, or the rate is above one request per microsecond.
    pub fn policy(self) -> Result<ordo_domain::ratelimit::RatePolicy, ordo_domain::InvalidValue> {
        ordo_domain::ratelimit::RatePolicy::per_minute(self.requests_per_minute, self.burst)
    }
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        let limit = |requests_per_minute, burst| LimitSettings {
            requests_per_minute,
            burst,
        };
        Self {
            user: limit(6_000, 1_000),
            anonymous: limit(600, 100),
            login_per_ip: limit(30, 20),
            login_per_email: limit(1, 5),
            max_keys: 1_000_000,
        }
    }
}

impl UpstreamSettings {
    /// The adapter's configuration for the upstream at `base_url`.
    ///
    /// # Errors
    /// When a setting is out of range.
    pub fn adapter_config(
        &self,
        base_url: String,
    ) -> anyhow::Result<ordo_upstream::UpstreamConfig> {
        let defaults = ordo_upstream::UpstreamConfig::default();
        let config = ordo_upstream::UpstreamConfig {
            base_url: Some(base_url),
            auth_user: self.user.clone(),
            currency: ordo_domain::Currency::parse(&self.currency)
                .map_err(|e| anyhow::anyhow!("upstream.currency: {e}"))?,
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            attempt_timeout: Duration::from_millis(self.attempt_timeout_ms),
            deadline: Duration::from_millis(self.deadline_ms),
            max_attempts: self.max_attempts,
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            breaker: ordo_upstream::BreakerConfig {
                window: Duration::from_secs(self.breaker_window_secs),
                min_calls: self.breaker_min_calls,
                failure_ratio: self.breaker_failure_ratio,
                open_for: Duration::from_millis(self.breaker_open_ms),
                ..defaults.breaker
            },
            ..defaults
        };
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("upstream settings: {e}"))?;
        Ok(config)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            http: HttpSettings::default(),
            database: DatabaseSettings::default(),
            orders: OrderSettings::default(),
            baskets: BasketSettings::default(),
            auth: AuthSettings::default(),
            upstream: UpstreamSettings::default(),
            rate_limits: RateLimitSettings::default(),
            scheduler: SchedulerSettings::default(),
            redis: RedisSettings::default(),
            activity: ActivitySettings::default(),
            log_format: LogFormat::Text,
            sample_data: true,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: None,
            shutdown_timeout_secs: 30,
            shutdown_drain_ms: 0,
            request_timeout_secs: 10,
            max_connections: 10_000,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        let pool = ordo_postgres::PoolConfig::default();
        Self {
            url: None,
            data_dir: PathBuf::from(".ordo"),
            pool_size: pool.max_size,
            pool_wait_secs: pool.wait.as_secs(),
            statement_timeout_ms: millis(pool.statement_timeout),
            lock_timeout_ms: millis(pool.lock_timeout),
            idle_in_transaction_timeout_ms: millis(pool.idle_in_transaction_timeout),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Default for OrderSettings {
    fn default() -> Self {
        Self {
            spacing_window_minutes: ordo_domain::orders::SpacingWindow::DEFAULT_MINUTES,
            default_currency: "EUR".into(),
        }
    }
}

impl DatabaseSettings {
    /// The pool configuration these settings describe.
    pub fn pool_config(&self) -> ordo_postgres::PoolConfig {
        ordo_postgres::PoolConfig {
            max_size: self.pool_size,
            wait: Duration::from_secs(self.pool_wait_secs),
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
            lock_timeout: Duration::from_millis(self.lock_timeout_ms),
            idle_in_transaction_timeout: Duration::from_millis(self.idle_in_transaction_timeout_ms),
        }
    }
}

impl HttpSettings {
    /// How long a client has for a request's head, and then for its body.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }

    /// How long in-flight requests, then background tasks, get on shutdown.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    /// How long a graceful shutdown stays ready to serve but not ready for more.
    pub fn shutdown_drain(&self) -> Duration {
        Duration::from_millis(self.shutdown_drain_ms)
    }
}

/// The flat environment names of the README, and the setting each one sets.
const FLAT_ENV_NAMES: &[(&str, &str)] = &[
    ("listen", "http.listen"),
    ("workers", "http.workers"),
    ("shutdown_timeout_secs", "http.shutdown_timeout_secs"),
    ("shutdown_drain_ms", "http.shutdown_drain_ms"),
    ("request_timeout_secs", "http.request_timeout_secs"),
    ("max_connections", "http.max_connections"),
    ("trusted_proxies", "http.trusted_proxies"),
    ("data_dir", "database.data_dir"),
    ("database_pool_size", "database.pool_size"),
    ("database_pool_wait_secs", "database.pool_wait_secs"),
    (
        "database_statement_timeout_ms",
        "database.statement_timeout_ms",
    ),
    ("database_lock_timeout_ms", "database.lock_timeout_ms"),
    (
        "database_idle_in_transaction_timeout_ms",
        "database.idle_in_transaction_timeout_ms",
    ),
    ("spacing_window_minutes", "orders.spacing_window_minutes"),
    ("default_currency", "orders.default_currency"),
    ("basket_ttl_secs", "baskets.ttl_secs"),
    ("jwt_secret", "auth.jwt_secret"),
    ("data_key", "auth.data_key"),
    ("data_key_previous", "auth.data_key_previous"),
    ("admin_email", "auth.admin_email"),
    ("admin_password", "auth.admin_password"),
    ("access_ttl_secs", "auth.access_ttl_secs"),
    ("refresh_ttl_secs", "auth.refresh_ttl_secs"),
    ("upstream_url", "upstream.url"),
    ("upstream_user", "upstream.user"),
    ("upstream_connect_timeout_ms", "upstream.connect_timeout_ms"),
    ("upstream_attempt_timeout_ms", "upstream.attempt_timeout_ms"),
    ("upstream_deadline_ms", "upstream.deadline_ms"),
    ("upstream_max_attempts", "upstream.max_attempts"),
    (
        "rate_limit_user_per_minute",
        "rate_limits.user.requests_per_minute",
    ),
    ("rate_limit_user_burst", "rate_limits.user.burst"),
    (
        "rate_limit_anonymous_per_minute",
        "rate_limits.anonymous.requests_per_minute",
    ),
    ("rate_limit_anonymous_burst", "rate_limits.anonymous.burst"),
    (
        "rate_limit_login_ip_per_minute",
        "rate_limits.login_per_ip.requests_per_minute",
    ),
    (
        "rate_limit_login_ip_burst",
        "rate_limits.login_per_ip.burst",
    ),
    (
        "rate_limit_login_email_per_minute",
        "rate_limits.login_per_email.requests_per_minute",
    ),
    (
        "rate_limit_login_email_burst",
        "rate_limits.login_per_email.burst",
    ),
    ("rate_limit_max_keys", "rate_limits.max_keys"),
    ("redis_url", "redis.url"),
    ("redis_timeout_ms", "redis.timeout_ms"),
    ("api_key_cache_ttl_ms", "auth.api_key_cache_ttl_ms"),
    ("scheduler_enabled", "scheduler.enabled"),
    ("scheduler_poll_ms", "scheduler.poll_ms"),
    ("scheduler_lease_secs", "scheduler.lease_secs"),
    ("activity_queue_capacity", "activity.queue_capacity"),
    ("activity_batch_size", "activity.batch_size"),
    ("activity_flush_interval_ms", "activity.flush_interval_ms"),
    ("activity_sync", "activity.sync"),
    ("activity_retention_days", "activity.retention_days"),
    ("usage_cache_ttl_ms", "activity.usage_cache_ttl_ms"),
    ("log_format", "log_format"),
    ("sample_data", "sample_data"),
];

impl Settings {
    /// Loads the settings. `file` must exist when given; otherwise `ordo.toml` in the
    /// working directory is read if present.
    ///
    /// # Errors
    /// When the file is missing or a value has the wrong type.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let toml = match file {
            Some(path) => {
                anyhow::ensure!(
                    path.is_file(),
                    "configuration file {} does not exist",
                    path.display()
                );
                Toml::file_exact(path)
            }
            None => Toml::file("ordo.toml"),
        };
        // `ORDO_CONFIG` names the file (a CLI flag); it is not a setting.
        let env = Env::prefixed("ORDO_").ignore(&["config"]).map(|key| {
            let key = key.as_str().to_ascii_lowercase();
            FLAT_ENV_NAMES
                .iter()
                .find(|(flat, _)| *flat == key)
                .map_or_else(
                    || key.replace("__", "."),
                    |(_, nested)| (*nested).to_owned(),
                )
                .into()
        });
        // Each limit's defaults differ, so they are laid down first: a file or a
        // variable that sets only a burst keeps the default rate.
        Figment::new()
            .merge(Serialized::default(
                "rate_limits",
                RateLimitSettings::default(),
            ))
            .merge(toml)
            .merge(env)
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            )
            .extract()
            .context("reading the configuration")
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn flat_and_nested_environment_names_reach_the_nested_settings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ORDO_DATABASE_POOL_SIZE", "7");
            jail.set_env("ORDO_LISTEN", "0.0.0.0:9000");
            jail.set_env("ORDO_HTTP__MAX_CONNECTIONS", "12");
            jail.set_env("ORDO_SPACING_WINDOW_MINUTES", "60");
            jail.set_env("DATABASE_URL", "postgres://u:secret@db/ordo");
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(settings.database.pool_size, 7);
            assert_eq!(settings.http.listen.port(), 9000);
            assert_eq!(settings.http.max_connections, 12);
            assert_eq!(settings.orders.spacing_window_minutes, 60);
            assert!(settings.database.url.is_some());
            Ok(())
        });
    }

    #[test]
    fn the_activity_settings_have_flat_environment_names() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ORDO_ACTIVITY_SYNC", "true");
            jail.set_env("ORDO_ACTIVITY_RETENTION_DAYS", "7");
            jail.set_env("ORDO_USAGE_CACHE_TTL_MS", "0");
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            assert!(settings.activity.sync);
            assert_eq!(settings.activity.retention_days, 7);
            assert_eq!(settings.activity.usage_cache_ttl_ms, 0);
            assert_eq!(settings.activity.batch_size, 5_000);
            Ok(())
        });
    }

    #[test]
    fn a_toml_file_uses_the_same_sections() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "ordo.toml",
                "sample_data = false\n[http]\nrequest_timeout_secs = 3\n[orders]\ndefault_currency = \"DKK\"\n",
            )?;
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            assert!(!settings.sample_data);
            assert_eq!(settings.http.request_timeout_secs, 3);
            assert_eq!(settings.orders.default_currency, "DKK");
            Ok(())
        });
    }

    #[test]
    fn auth_secrets_come_from_flat_names_and_never_print() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ORDO_JWT_SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret");
            jail.set_env("ORDO_DATA_KEY", "data-key-data-key");
            jail.set_env("ORDO_ADMIN_EMAIL", "boss@example.com");
            jail.set_env("ORDO_ADMIN_PASSWORD", "hunter2hunter2");
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            assert!(settings.auth.jwt_secret.is_some());
            assert!(settings.auth.data_key.is_some());
            assert_eq!(
                settings.auth.admin_email.as_deref(),
                Some("boss@example.com")
            );
            assert_eq!(settings.auth.access_ttl_secs, 900);
            let printed = format!("{settings:?}");
            assert!(!printed.contains("s3cret") && !printed.contains("hunter2"));
            Ok(())
        });
    }

    #[test]
    fn upstream_settings_come_from_flat_and_nested_names_and_make_a_valid_adapter_config() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ORDO_UPSTREAM_URL", "https://upstream.example.com");
            jail.set_env("ORDO_UPSTREAM_USER", "kanpla-user");
            jail.set_env("ORDO_UPSTREAM_DEADLINE_MS", "4000");
            jail.set_env("ORDO_UPSTREAM__BREAKER_FAILURE_RATIO", "0.25");
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            let upstream = &settings.upstream;
            assert_eq!(
                upstream.url.as_deref(),
                Some("https://upstream.example.com")
            );
            assert_eq!(upstream.user, "kanpla-user");
            let config = upstream
                .adapter_config("https://upstream.example.com".into())
                .map_err(|e| e.to_string())?;
            assert_eq!(config.deadline, Duration::from_secs(4));
            assert_eq!(config.auth_user, "kanpla-user");
            assert!((config.breaker.failure_ratio - 0.25).abs() < 1e-9);
            Ok(())
        });
    }

    #[test]
    fn rate_limits_come_from_flat_names_nested_names_and_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "ordo.toml",
                "[rate_limits.login_per_email]\nrequests_per_minute = 2\nburst = 3\n",
            )?;
            jail.set_env("ORDO_RATE_LIMIT_USER_BURST", "50");
            jail.set_env("ORDO_RATE_LIMITS__ANONYMOUS__REQUESTS_PER_MINUTE", "90");
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            let limits = settings.rate_limits;
            assert_eq!(
                (limits.user.requests_per_minute, limits.user.burst),
                (6_000, 50)
            );
            assert_eq!(limits.anonymous.requests_per_minute, 90);
            assert_eq!(
                limits.login_per_email,
                LimitSettings {
                    requests_per_minute: 2,
                    burst: 3
                }
            );
            assert_eq!(limits.login_per_ip.burst, 20);
            Ok(())
        });
    }

    #[test]
    fn the_redis_url_comes_from_ordo_redis_url_and_is_unset_by_default() {
        figment::Jail::expect_with(|jail| {
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            assert!(settings.redis.url.is_none());
            jail.set_env("ORDO_REDIS_URL", "redis://:secret@cache:6379/0");
            jail.set_env("ORDO_REDIS_TIMEOUT_MS", "100");
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            let url = settings.redis.url.as_ref().map(ExposeSecret::expose_secret);
            assert_eq!(url, Some("redis://:secret@cache:6379/0"));
            assert_eq!(settings.redis.timeout_ms, 100);
            assert!(!format!("{settings:?}").contains("secret@"));
            Ok(())
        });
    }

    #[test]
    fn trusted_proxies_come_as_a_comma_separated_variable_or_a_toml_list() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ORDO_TRUSTED_PROXIES", "10.0.0.0/8, ::1");
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(settings.http.trusted_proxies, ["10.0.0.0/8", "::1"]);
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "ordo.toml",
                "[http]\ntrusted_proxies = [\"192.0.2.1\", \"fd00::/8\"]\n",
            )?;
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(settings.http.trusted_proxies, ["192.0.2.1", "fd00::/8"]);
            Ok(())
        });
    }

    #[test]
    fn upstream_settings_that_make_no_sense_are_refused() {
        let deadline_below_one_attempt = UpstreamSettings {
            deadline_ms: 10,
            ..UpstreamSettings::default()
        };
        assert!(
            deadline_below_one_attempt
                .adapter_config("http://127.0.0.1:9".into())
                .is_err()
        );
        assert!(
            UpstreamSettings::default()
                .adapter_config("ftp://example.com".into())
                .is_err()
        );
    }

    #[test]
    fn the_database_url_never_prints() {
        let settings = Settings {
            database: DatabaseSettings {
                url: Some("postgres://u:hunter2@db/ordo".into()),
                ..DatabaseSettings::default()
            },
            ..Settings::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}

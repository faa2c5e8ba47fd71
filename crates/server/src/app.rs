//! The composition root: the one place where adapters (repositories, clock, and
//! later gateways, stores and sinks) are chosen and assembled into the domain's
//! services, and where the application with its HTTP server and background tasks
//! is built. `ordo serve`, the tests and the benchmark all build through it; a test
//! swaps an adapter (a fixed clock, a scripted upstream) without copying wiring.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use anyhow::Context;
use ordo_crypto::{Argon2Hasher, DataKeyring, JwtConfig, JwtTokens, RandomApiKeys, RandomTokens};
use ordo_domain::activity::{
    ActivityPolicy, ActivityService, ActivitySink, HitStore, RetentionDays, UsageCache,
    UsageService, UsageStore,
};
use ordo_domain::auth::{
    AccessTokens, AuthPolicy, AuthService, PasswordHasher, RefreshTokenStore, TokenSecrets,
    UserRepository,
};
use ordo_domain::baskets::{BasketPolicy, BasketRepository, BasketService, BasketTtl};
use ordo_domain::catalog::{CatalogMirror, CatalogService, CatalogSync, ProductRepository};
use ordo_domain::checkout::{
    CheckoutPolicy, CheckoutPorts, CheckoutService, CheckoutStore, Outbox,
};
use ordo_domain::clients::{ApiKeys, ClientDirectory, ClientRepository, ClientService};
use ordo_domain::customers::{CustomerRepository, CustomerService};
use ordo_domain::idempotency::{IdempotencyService, IdempotencyStore};
use ordo_domain::orders::{OrderPolicy, OrderRepository, OrderService, SpacingWindow};
use ordo_domain::ratelimit::{RateLimitStore, RateLimiter, RatePolicies};
use ordo_domain::reports::{ReportQueries, ReportService, SalesRollup};
use ordo_domain::scheduling::{
    ClaimPolicy, Job, JobStore, Lease, SchedulingPolicy, SchedulingService,
};
use ordo_domain::sealing::FieldCipher;
use ordo_domain::upstream::{CatalogSource, PaymentGateway, UpstreamMonitor, UpstreamOrders};
use ordo_domain::{Clock, Currency, IdSource, SystemClock, UuidV7Ids};
use ordo_postgres::sealing::Pass;
use ordo_postgres::{
    PgActivityStore, PgBasketRepository, PgCatalogMirror, PgCheckoutStore, PgClientRepository,
    PgCustomerRepository, PgIdempotencyStore, PgJobStore, PgOrderRepository, PgPool,
    PgProductRepository, PgRefreshTokenStore, PgReportQueries, PgSalesRollup, PgUserRepository,
    connect_pool,
};
use ordo_redis::{Redis, RedisConfig, RedisRateLimits, RedisUsageCache};
use ordo_upstream::{UpstreamClient, UpstreamConfig};
use ordo_upstream_sim::{RunningSim, SimConfig, UpstreamSim};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::activity_writer::{self, DirectActivitySink, WriterConfig};
use crate::client_directory::CachedClientDirectory;
use crate::config::{AuthSettings, RateLimitSettings, SchedulerSettings, Settings};
use crate::database::{Database, prepare_database};
use crate::draining::Draining;
use crate::middleware::metrics;
use crate::rate_limits::InMemoryRateLimits;
use crate::recent_users::RecentUsers;
use crate::scheduler::{JobRegistry, Scheduler};
use crate::seed::{self, SeedOutcome};
use crate::state::AppState;
use crate::tasks::BackgroundTasks;
use crate::usage_cache::InMemoryUsageCache;

/// The outside world as the domain sees it: one implementation of each port.
#[derive(Clone)]
pub struct Adapters {
    /// Products and stock.
    pub products: Arc<dyn ProductRepository>,
    /// The products mirrored from the upstream catalog.
    pub catalog_mirror: Arc<dyn CatalogMirror>,
    /// Customers.
    pub customers: Arc<dyn CustomerRepository>,
    /// Orders, with their numbers and stock moves.
    pub orders: Arc<dyn OrderRepository>,
    /// Baskets.
    pub baskets: Arc<dyn BasketRepository>,
    /// Checkout's unit of work.
    pub checkout_store: Arc<dyn CheckoutStore>,
    /// Deliveries to the upstream.
    pub outbox: Arc<dyn Outbox>,
    /// Idempotency keys.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// New ids.
    pub ids: Arc<dyn IdSource>,
    /// Users.
    pub users: Arc<dyn UserRepository>,
    /// Refresh tokens, by digest.
    pub refresh_tokens: Arc<dyn RefreshTokenStore>,
    /// Password hashing.
    pub password_hasher: Arc<dyn PasswordHasher>,
    /// Signed access tokens.
    pub access_tokens: Arc<dyn AccessTokens>,
    /// New refresh tokens and their digests.
    pub token_secrets: Arc<dyn TokenSecrets>,
    /// API clients, for their administration.
    pub clients: Arc<dyn ClientRepository>,
    /// API clients by key or id, for admitting requests (the services put a
    /// short-lived cache in front of it).
    pub client_directory: Arc<dyn ClientDirectory>,
    /// New API keys and their digests.
    pub api_keys: Arc<dyn ApiKeys>,
    /// The state of every rate limit.
    pub rate_limits: Arc<dyn RateLimitStore>,
    /// Scheduled jobs and their runs.
    pub jobs: Arc<dyn JobStore>,
    /// Raw hits and their hourly counts.
    pub hit_store: Arc<dyn HitStore>,
    /// Where hits go: straight to `hit_store` here; the application puts its
    /// batched writer in.
    pub activity_sink: Arc<dyn ActivitySink>,
    /// The hourly counts, for the usage figures.
    pub usage_store: Arc<dyn UsageStore>,
    /// Usage answers shared by several instances; `None`: each instance
    /// remembers its own in memory (for `ORDO_USAGE_CACHE_TTL_MS` either way).
    pub usage_cache: Option<Arc<dyn UsageCache>>,
    /// The reports' queries.
    pub reports: Arc<dyn ReportQueries>,
    /// The daily sales rollup the reports read.
    pub sales_rollup: Arc<dyn SalesRollup>,
    /// The external order, payment and catalog API.
    pub upstream: UpstreamPorts,
}

/// The ports to the external API, all served by one adapter (one connection
/// pool, one circuit breaker).
#[derive(Clone)]
pub struct UpstreamPorts {
    /// Upstream orders.
    pub orders: Arc<dyn UpstreamOrders>,
    /// Payments.
    pub payments: Arc<dyn PaymentGateway>,
    /// The upstream catalog.
    pub catalog: Arc<dyn CatalogSource>,
    /// The circuit's state, recent error rate and latencies.
    pub monitor: Arc<dyn UpstreamMonitor>,
}

impl UpstreamPorts {
    /// Every port served by `client`.
    pub fn served_by(client: UpstreamClient) -> Self {
        let client = Arc::new(client);
        Self {
            orders: client.clone(),
            payments: client.clone(),
            catalog: client.clone(),
            monitor: client,
        }
    }
}

impl std::fmt::Debug for UpstreamPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamPorts").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Adapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapters").finish_non_exhaustive()
    }
}

impl Adapters {
    /// The production adapters: PostgreSQL repositories over `pool` sealing
    /// personal data with `data_keys` (see [`data_keyring`]), the system clock,
    /// Argon2id, rate limits in this process's memory. Access tokens are signed with a key made up for this
    /// process alone, so tokens it issues are accepted nowhere else; the
    /// application replaces it with the configured or sandbox key. No upstream
    /// is configured (its calls are unavailable) until the application sets one.
    ///
    /// # Panics
    /// When the operating system has no random source.
    pub fn postgres(pool: &PgPool, data_keys: Arc<dyn FieldCipher>) -> Self {
        #[allow(clippy::expect_used)] // 32 random bytes and the default names are valid
        let access_tokens = JwtTokens::new(jwt_config(&random_secret(), &AuthSettings::default()))
            .expect("a 43-character key is long enough");
        #[allow(clippy::expect_used)] // the default configuration is valid
        let no_upstream = UpstreamClient::new(UpstreamConfig::default())
            .expect("the default upstream configuration is valid");
        let activity = Arc::new(PgActivityStore::new(pool.clone()));
        Self {
            products: Arc::new(PgProductRepository::new(pool.clone())),
            catalog_mirror: Arc::new(PgCatalogMirror::new(pool.clone())),
            customers: Arc::new(PgCustomerRepository::new(pool.clone(), data_keys.clone())),
            orders: Arc::new(PgOrderRepository::new(pool.clone())),
            baskets: Arc::new(PgBasketRepository::new(pool.clone())),
            checkout_store: Arc::new(PgCheckoutStore::new(pool.clone())),
            outbox: Arc::new(PgCheckoutStore::new(pool.clone())),
            idempotency: Arc::new(PgIdempotencyStore::new(pool.clone())),
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7Ids),
            users: Arc::new(RecentUsers::new(
                Arc::new(PgUserRepository::new(pool.clone())),
                RECENT_USERS_TTL,
            )),
            refresh_tokens: Arc::new(PgRefreshTokenStore::new(pool.clone())),
            password_hasher: Arc::new(Argon2Hasher::owasp()),
            access_tokens: Arc::new(access_tokens),
            token_secrets: Arc::new(RandomTokens),
            upstream: UpstreamPorts::served_by(no_upstream),
            rate_limits: Arc::new(InMemoryRateLimits::new(
                RateLimitSettings::default().max_keys,
            )),
            clients: Arc::new(PgClientRepository::new(pool.clone(), data_keys.clone())),
            client_directory: Arc::new(PgClientRepository::new(pool.clone(), data_keys)),
            api_keys: Arc::new(RandomApiKeys),
            jobs: Arc::new(PgJobStore::new(pool.clone())),
            hit_store: activity.clone(),
            activity_sink: Arc::new(DirectActivitySink::new(activity.clone())),
            usage_store: activity,
            usage_cache: None,
            reports: Arc::new(PgReportQueries::new(pool.clone())),
            sales_rollup: Arc::new(PgSalesRollup::new(pool.clone())),
        }
    }
}

/// 32 bytes from the operating system's random source, base64url (43 characters).
///
/// # Panics
/// When the operating system has no random source: no secret can be made then.
pub fn random_secret() -> String {
    use base64::Engine;
    let mut bytes = [0_u8; 32];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn jwt_config(secret: &str, auth: &AuthSettings) -> JwtConfig {
    JwtConfig {
        secret: secret.as_bytes().to_vec(),
        issuer: auth.issuer.clone(),
        audience: auth.audience.clone(),
        leeway: chrono::TimeDelta::seconds(i64::try_from(auth.leeway_secs).unwrap_or(i64::MAX)),
    }
}

/// The secrets an installation runs with.
struct InstallationSecrets {
    jwt_secret: SecretString,
    data_key: SecretString,
}

impl InstallationSecrets {
    fn keyring(&self, settings: &Settings) -> anyhow::Result<Arc<DataKeyring>> {
        Ok(Arc::new(DataKeyring::new(
            &self.data_key,
            settings.auth.data_key_previous.as_ref(),
        )?))
    }
}

/// The data keys personal data is sealed under: `ORDO_DATA_KEY` (or, in sandbox
/// mode, the one generated on the first start) and `ORDO_DATA_KEY_PREVIOUS`.
///
/// # Errors
/// When a key is missing outside sandbox mode, or too short.
pub async fn data_keyring(settings: &Settings, pool: &PgPool) -> anyhow::Result<Arc<DataKeyring>> {
    check_configured_secrets(settings)?;
    installation_secrets(settings, pool)
        .await?
        .keyring(settings)
}

/// Sandbox mode: an embedded database and no `ORDO_JWT_SECRET`.
fn sandbox_mode(settings: &Settings) -> bool {
    settings.database.url.is_none() && settings.auth.jwt_secret.is_none()
}

/// Outside sandbox mode the secrets must be configured, and strong enough.
fn check_configured_secrets(settings: &Settings) -> anyhow::Result<()> {
    if sandbox_mode(settings) {
        return Ok(());
    }
    let Some(secret) = &settings.auth.jwt_secret else {
        anyhow::bail!(
            "ORDO_JWT_SECRET is not set: with DATABASE_URL, Ordo needs a JWT signing secret of at least 32 bytes (e.g. `openssl rand -base64 48`)"
        );
    };
    anyhow::ensure!(
        secret.expose_secret().len() >= 32,
        "ORDO_JWT_SECRET is too short: it must be at least 32 bytes"
    );
    anyhow::ensure!(
        settings
            .auth
            .data_key
            .as_ref()
            .is_some_and(|k| !k.expose_secret().trim().is_empty()),
        "ORDO_DATA_KEY is not set: with DATABASE_URL, Ordo needs a data encryption key (e.g. `openssl rand -base64 32`)"
    );
    Ok(())
}

/// The configured secrets, or in sandbox mode the ones generated on the first
/// start and kept in the database.
async fn installation_secrets(
    settings: &Settings,
    pool: &PgPool,
) -> anyhow::Result<InstallationSecrets> {
    if !sandbox_mode(settings) {
        // Checked by `check_configured_secrets`.
        let jwt_secret = settings
            .auth
            .jwt_secret
            .clone()
            .context("ORDO_JWT_SECRET is not set")?;
        let data_key = settings
            .auth
            .data_key
            .clone()
            .context("ORDO_DATA_KEY is not set")?;
        return Ok(InstallationSecrets {
            jwt_secret,
            data_key,
        });
    }
    Ok(InstallationSecrets {
        jwt_secret: sandbox_secret(pool, "jwt-secret").await?,
        data_key: match &settings.auth.data_key {
            Some(key) => key.clone(),
            None => sandbox_secret(pool, "data-key").await?,
        },
    })
}

async fn sandbox_secret(pool: &PgPool, name: &str) -> anyhow::Result<SecretString> {
    let value = ordo_postgres::installation::sandbox_secret(pool, name, &random_secret())
        .await
        .with_context(|| format!("reading the sandbox's {name}"))?;
    Ok(value.into())
}

/// How old a user record read for `GET /v1/auth/me` may be: the bound within which
/// a change made through another instance shows.
const RECENT_USERS_TTL: Duration = Duration::from_secs(5);

/// The address of the administrator sandbox mode creates on its first start.
pub const SANDBOX_ADMIN_EMAIL: &str = "admin@ordo.local";

/// Creates the configured administrator when there is no user; in sandbox mode
/// without one configured, creates `admin@ordo.local` with a generated password on
/// the first start and prints the credentials, that once.
async fn bootstrap_admin(settings: &Settings, auth: &AuthService) -> anyhow::Result<()> {
    match (&settings.auth.admin_email, &settings.auth.admin_password) {
        (Some(email), Some(password)) => {
            let created = auth
                .bootstrap_admin(email, password.expose_secret())
                .await
                .context("creating the administrator of ORDO_ADMIN_EMAIL")?;
            if created {
                tracing::info!(email = %email, "created the administrator from ORDO_ADMIN_EMAIL");
            }
        }
        (Some(_), None) | (None, Some(_)) => {
            anyhow::bail!("set both ORDO_ADMIN_EMAIL and ORDO_ADMIN_PASSWORD, or neither");
        }
        (None, None) if sandbox_mode(settings) => {
            let password = random_secret();
            if auth
                .bootstrap_admin(SANDBOX_ADMIN_EMAIL, &password)
                .await
                .context("creating the sandbox administrator")?
            {
                tracing::info!(
                    email = SANDBOX_ADMIN_EMAIL,
                    password = %password,
                    "sandbox: created an administrator; this password is shown once only"
                );
                eprintln!(
                    "\nSandbox administrator (shown once, on this first start):\n  email:    {SANDBOX_ADMIN_EMAIL}\n  password: {password}\n"
                );
            }
        }
        (None, None) => {}
    }
    Ok(())
}

/// The domain services, assembled from `adapters` under the rules of `settings`.
#[derive(Clone, Debug)]
pub struct Services {
    /// Products and stock.
    pub catalog: CatalogService,
    /// Customers.
    pub customers: CustomerService,
    /// Orders.
    pub orders: OrderService,
    /// Baskets.
    pub baskets: BasketService,
    /// Checkout, its reconciliation and its outbox.
    pub checkout: CheckoutService,
    /// Idempotency keys.
    pub idempotency: IdempotencyService,
    /// Users, logins and tokens.
    pub auth: AuthService,
    /// Rate limits.
    pub rate_limits: RateLimiter,
    /// API clients and their keys.
    pub clients: ClientService,
    /// Scheduled jobs.
    pub scheduling: SchedulingService,
    /// Sales and stock reports.
    pub reports: ReportService,
    /// The daily sales rollup (the `rollup-sales` job's work).
    pub sales_rollup: Arc<dyn SalesRollup>,
    /// The local catalog kept in step with the upstream's (the `sync-catalog`
    /// job's work).
    pub catalog_sync: CatalogSync,
    /// The external API's ports (its monitor tells its recent health).
    pub upstream: UpstreamPorts,
    /// The currency of products created without one.
    pub default_currency: Currency,
    /// Recording hits.
    pub activity: ActivityService,
    /// Usage figures.
    pub usage: UsageService,
    /// How long clients may reuse a usage answer.
    pub usage_max_age: std::time::Duration,
}

impl Services {
    /// Assembles the services.
    ///
    /// # Errors
    /// When a setting is out of range.
    pub fn assemble(adapters: &Adapters, settings: &Settings) -> anyhow::Result<Self> {
        let spacing = SpacingWindow::from_minutes(settings.orders.spacing_window_minutes)
            .map_err(|e| anyhow::anyhow!("orders.spacing_window_minutes: {e}"))?;
        let default_currency = Currency::parse(&settings.orders.default_currency)
            .map_err(|e| anyhow::anyhow!("orders.default_currency: {e}"))?;
        let basket_ttl = BasketTtl::from_secs(settings.baskets.ttl_secs)
            .map_err(|e| anyhow::anyhow!("baskets.ttl_secs: {e}"))?;
        let Adapters {
            products,
            catalog_mirror,
            customers,
            orders,
            baskets,
            checkout_store,
            outbox,
            idempotency,
            clock,
            ids,
            users,
            refresh_tokens,
            password_hasher,
            access_tokens,
            token_secrets,
            upstream,
            rate_limits,
            clients,
            client_directory,
            api_keys,
            jobs,
            hit_store,
            activity_sink,
            usage_store,
            usage_cache,
            reports,
            sales_rollup,
        } = adapters.clone();
        let activity_policy = ActivityPolicy {
            retention: RetentionDays::new(settings.activity.retention_days)
                .map_err(|e| anyhow::anyhow!("activity.retention_days: {e}"))?,
            prepare_days_ahead: settings.activity.prepare_days_ahead,
        };
        let usage_max_age = std::time::Duration::from_millis(settings.activity.usage_cache_ttl_ms);
        let policy = AuthPolicy {
            access_ttl: std::time::Duration::from_secs(settings.auth.access_ttl_secs),
            refresh_ttl: std::time::Duration::from_secs(settings.auth.refresh_ttl_secs),
        };
        anyhow::ensure!(
            settings.auth.access_ttl_secs > 0 && settings.auth.refresh_ttl_secs > 0,
            "auth.access_ttl_secs and auth.refresh_ttl_secs must be positive"
        );
        let rate_limits = RateLimiter::new(
            rate_limits,
            clock.clone(),
            rate_policies(&settings.rate_limits)?,
        );
        let client_directory = CachedClientDirectory::new(
            client_directory,
            std::time::Duration::from_millis(settings.auth.api_key_cache_ttl_ms),
            settings.auth.api_key_cache_capacity,
        )
        .context("auth.api_key_cache_ttl_ms")?;
        let checkout_policy = CheckoutPolicy {
            spacing,
            basket_ttl,
            // A request calls the upstream twice, each call within its deadline.
            lease: chrono::TimeDelta::milliseconds(
                i64::try_from(settings.upstream.deadline_ms.saturating_mul(3)).unwrap_or(i64::MAX),
            ),
            circuit_retry_after: std::time::Duration::from_millis(
                settings.upstream.breaker_open_ms,
            ),
            ..CheckoutPolicy::default()
        };
        Ok(Self {
            activity: ActivityService::new(
                activity_sink,
                hit_store,
                clock.clone(),
                activity_policy,
            ),
            usage: UsageService::new(
                usage_store,
                usage_cache.unwrap_or_else(|| Arc::new(InMemoryUsageCache::new(usage_max_age))),
                clock.clone(),
            ),
            usage_max_age,
            checkout: CheckoutService::new(
                CheckoutPorts {
                    store: checkout_store,
                    outbox,
                    upstream_orders: upstream.orders.clone(),
                    payments: upstream.payments.clone(),
                    monitor: upstream.monitor.clone(),
                    clock: clock.clone(),
                    ids: ids.clone(),
                },
                checkout_policy,
            ),
            idempotency: IdempotencyService::new(idempotency, clock.clone()),
            rate_limits,
            catalog_sync: CatalogSync::new(
                upstream.catalog.clone(),
                catalog_mirror,
                clock.clone(),
                ids.clone(),
            ),
            upstream,
            clients: ClientService::new(
                clients,
                Arc::new(client_directory),
                api_keys,
                access_tokens.clone(),
                clock.clone(),
                ids.clone(),
                policy.access_ttl,
            ),
            auth: AuthService::new(
                users,
                refresh_tokens,
                password_hasher,
                access_tokens,
                token_secrets,
                clock.clone(),
                ids.clone(),
                policy,
            ),
            reports: ReportService::new(reports, clock.clone(), default_currency),
            sales_rollup,
            catalog: CatalogService::new(products.clone(), clock.clone(), ids.clone()),
            customers: CustomerService::new(customers.clone(), clock.clone(), ids.clone()),
            baskets: BasketService::new(
                baskets,
                products.clone(),
                customers.clone(),
                clock.clone(),
                ids.clone(),
                BasketPolicy {
                    ttl: basket_ttl,
                    currency: default_currency,
                },
            ),
            scheduling: SchedulingService::new(
                jobs,
                clock.clone(),
                ids.clone(),
                scheduling_policy(&settings.scheduler)?,
            ),
            orders: OrderService::new(
                orders,
                products,
                customers,
                clock,
                ids,
                OrderPolicy { spacing },
            ),
            default_currency,
        })
    }
}

fn scheduling_policy(settings: &SchedulerSettings) -> anyhow::Result<SchedulingPolicy> {
    anyhow::ensure!(
        settings.max_attempts >= 1,
        "scheduler.max_attempts must be at least 1"
    );
    Ok(SchedulingPolicy {
        claims: ClaimPolicy {
            lease: Lease::from_secs(settings.lease_secs)
                .map_err(|e| anyhow::anyhow!("scheduler.lease_secs: {e}"))?,
            max_attempts: settings.max_attempts,
        },
        history: chrono::TimeDelta::days(i64::from(settings.history_days)),
    })
}

/// The jobs this build runs, each with its default schedule (UTC; a leading
/// sixth field is seconds).
///
/// # Errors
/// When a name or schedule is invalid, or a name is taken.
pub fn job_registry(services: &Services) -> anyhow::Result<JobRegistry> {
    let mut jobs = JobRegistry::default();
    jobs.register(
        "expire-baskets",
        "* * * * *",
        Arc::new(crate::jobs::ExpireBaskets(services.baskets.clone())),
    )?;
    // Beside the `outbox-dispatcher` task (every second): per-row claims let
    // both run at once, and the job is what an operator sees and triggers.
    jobs.register(
        "dispatch-outbox",
        "* * * * *",
        Arc::new(crate::jobs::DispatchOutbox(services.checkout.clone())),
    )?;
    jobs.register(
        "reconcile-payments",
        "* * * * *",
        Arc::new(crate::jobs::ReconcilePayments(services.checkout.clone())),
    )?;
    jobs.register(
        "sync-catalog",
        "0 * * * *",
        Arc::new(crate::jobs::SyncCatalog(services.catalog_sync.clone())),
    )?;
    jobs.register(
        "rollup-sales",
        "* * * * *",
        Arc::new(crate::jobs::RollUpSales(services.sales_rollup.clone())),
    )?;
    jobs.register(
        "prune-activity",
        "0 3 * * *",
        Arc::new(crate::jobs::PruneActivity(services.activity.clone())),
    )?;
    Ok(jobs)
}

fn writer_config(settings: &Settings) -> WriterConfig {
    let activity = &settings.activity;
    WriterConfig {
        capacity: activity.queue_capacity,
        batch_size: activity.batch_size,
        flush_interval: Duration::from_millis(activity.flush_interval_ms),
        durable: activity.sync,
        max_backoff: Duration::from_millis(activity.max_retry_backoff_ms.max(1)),
    }
}

fn rate_policies(settings: &RateLimitSettings) -> anyhow::Result<RatePolicies> {
    let policy = |name: &str, limit: crate::config::LimitSettings| {
        limit
            .policy()
            .map_err(|e| anyhow::anyhow!("rate_limits.{name}: {e}"))
    };
    Ok(RatePolicies {
        user: policy("user", settings.user)?,
        anonymous: policy("anonymous", settings.anonymous)?,
        login_per_address: policy("login_per_ip", settings.login_per_ip)?,
        login_per_email: policy("login_per_email", settings.login_per_email)?,
    })
}

/// A background task to start with the application (see [`BackgroundTasks::spawn`]).
type TaskStarter = Box<dyn FnOnce(&mut BackgroundTasks) + Send>;

/// Builds an [`Application`]: the settings, and any adapter a caller replaces.
pub struct ApplicationBuilder {
    settings: Settings,
    clock: Option<Arc<dyn Clock>>,
    password_hasher: Option<Arc<dyn PasswordHasher>>,
    rate_limits: Option<Arc<dyn RateLimitStore>>,
    tasks: Vec<TaskStarter>,
    extra_jobs: Vec<ExtraJob>,
}

/// A job a caller adds to the application's own: name, default schedule, work.
type ExtraJob = (String, String, Arc<dyn Job>);

impl std::fmt::Debug for ApplicationBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplicationBuilder")
            .field("settings", &self.settings)
            .field("custom_clock", &self.clock.is_some())
            .field("extra_tasks", &self.tasks.len())
            .finish()
    }
}

impl ApplicationBuilder {
    /// Uses `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Uses `hasher` instead of production Argon2id (tests: the real one is
    /// deliberately slow).
    pub fn with_password_hasher(mut self, hasher: Arc<dyn PasswordHasher>) -> Self {
        self.password_hasher = Some(hasher);
        self
    }

    /// Keeps rate limits in `store` instead of this process's memory.
    pub fn with_rate_limit_store(mut self, store: Arc<dyn RateLimitStore>) -> Self {
        self.rate_limits = Some(store);
        self
    }

    /// Registers one more job besides the application's own (tests: a job whose
    /// runs they count or hold up).
    pub fn with_job(
        mut self,
        name: impl Into<String>,
        default_schedule: impl Into<String>,
        job: Arc<dyn Job>,
    ) -> Self {
        self.extra_jobs
            .push((name.into(), default_schedule.into(), job));
        self
    }

    /// Starts one more background task with the application, owned like its own.
    pub fn with_task<F, Fut>(mut self, name: &'static str, task: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.tasks
            .push(Box::new(move |tasks: &mut BackgroundTasks| {
                tasks.spawn(name, task)
            }));
        self
    }

    /// Prepares the database, the services, the background tasks and the HTTP
    /// server. Port 0 binds a free port (tests). Sample data is loaded into a new
    /// embedded database.
    ///
    /// # Errors
    /// When the database or the listener cannot be set up, or a setting is invalid.
    pub async fn build(self) -> anyhow::Result<Application> {
        let Self {
            settings,
            clock,
            password_hasher,
            rate_limits,
            tasks: extra_tasks,
            extra_jobs,
        } = self;
        crate::http::raise_fd_limit();
        check_configured_secrets(&settings)?;
        let database = prepare_database(&settings).await?;
        let pool = connect_pool(
            database.url.expose_secret(),
            &settings.database.pool_config(),
        )?;
        let secrets = installation_secrets(&settings, &pool).await?;
        let data_keys = secrets.keyring(&settings)?;
        seal_plaintext_rows(&pool, &*data_keys).await?;
        let mut adapters = Adapters::postgres(&pool, data_keys);
        if let Some(clock) = clock {
            adapters.clock = clock;
        }
        if let Some(hasher) = password_hasher {
            adapters.password_hasher = hasher;
        }
        // With a Redis, the state several instances must agree on lives there:
        // the rate limits and the usage answers; in this process's memory without.
        let redis = connect_redis(&settings).await?;
        adapters.rate_limits = match (rate_limits, &redis) {
            (Some(store), _) => store,
            (None, Some(redis)) => Arc::new(RedisRateLimits::new(redis.clone())),
            (None, None) => Arc::new(InMemoryRateLimits::new(settings.rate_limits.max_keys)),
        };
        if let Some(redis) = &redis {
            adapters.usage_cache = Some(Arc::new(RedisUsageCache::new(
                redis.clone(),
                Duration::from_millis(settings.activity.usage_cache_ttl_ms),
            )));
        }
        adapters.access_tokens = Arc::new(
            JwtTokens::new(jwt_config(
                secrets.jwt_secret.expose_secret(),
                &settings.auth,
            ))
            .context("ORDO_JWT_SECRET")?,
        );
        let (upstream_url, sandbox_upstream) = match &settings.upstream.url {
            Some(url) => (url.clone(), None),
            None => {
                if settings.database.url.is_some() {
                    tracing::warn!(
                        "ORDO_UPSTREAM_URL is not set: payments go to the in-process simulator, not to a real upstream"
                    );
                }
                let sim = start_sandbox_upstream()?;
                (sim.url(), Some(sim))
            }
        };
        adapters.upstream = UpstreamPorts::served_by(UpstreamClient::new(
            settings.upstream.adapter_config(upstream_url.clone())?,
        )?);
        // The activity writer copies its batches over a connection of its own.
        adapters.hit_store = Arc::new(PgActivityStore::new(pool.clone()).copying_over(
            database.url.expose_secret(),
            &settings.database.pool_config(),
        ));
        let (activity_sink, activity_writer) =
            activity_writer::batched(adapters.hit_store.clone(), writer_config(&settings))?;
        adapters.activity_sink = Arc::new(activity_sink);
        let services = Services::assemble(&adapters, &settings)?;
        bootstrap_admin(&settings, &services.auth).await?;
        if let Err(e) = services.activity.prepare_storage().await {
            // Writing a batch makes its days' room itself; this only saves it the wait.
            tracing::warn!(
                error = format!("{e:#}"),
                "could not prepare the storage of hits ahead"
            );
        }
        let mut tasks = BackgroundTasks::new();
        tasks.spawn("activity-writer", move |cancel| activity_writer.run(cancel));
        let sandbox_started = sandbox_upstream.is_some();
        if let Some(sim) = sandbox_upstream {
            tasks.spawn("sandbox-upstream", move |cancel| async move {
                cancel.cancelled().await;
                sim.stop().await;
                Ok(())
            });
        }
        let metrics = metrics::handle();
        let upkeep_handle = metrics.clone();
        tasks.spawn("metrics-upkeep", move |cancel| {
            metrics::upkeep(upkeep_handle, cancel)
        });
        let database_health = database.cluster.as_ref().map(|cluster| {
            // Restarts the embedded PostgreSQL when it dies; /readyz reads its health.
            let supervisor = cluster.supervisor();
            tasks.spawn("postgres-supervisor", move |cancel| async move {
                supervisor.run(cancel.cancelled_owned()).await;
                Ok(())
            });
            cluster.health()
        });
        let dispatcher = services.checkout.clone();
        tasks.spawn("outbox-dispatcher", move |cancel| {
            crate::dispatcher::run(dispatcher, cancel)
        });
        for start in extra_tasks {
            start(&mut tasks);
        }
        let mut jobs = job_registry(&services)?;
        for (name, schedule, job) in extra_jobs {
            jobs.register(&name, &schedule, job)?;
        }
        services
            .scheduling
            .register(&jobs.definitions())
            .await
            .context("registering the scheduled jobs")?;
        let scheduler = Scheduler::new(
            services.scheduling.clone(),
            &jobs,
            crate::scheduler::instance_id(),
        );
        let run_now = scheduler.run_now();
        let mut state = AppState::new(services, pool, metrics, tasks.health());
        state.run_now = run_now;
        state.database_health = database_health;
        state.redis = redis;
        if database.cluster.is_some() && settings.sample_data {
            load_sample_data_once(&state).await?;
            if sandbox_started {
                sync_sandbox_catalog(&state).await;
            }
        }
        // After the sample data: a `sync-catalog` run before it would leave the
        // catalog non-empty and the sample data never loaded.
        if settings.scheduler.enabled {
            let poll = settings.scheduler.poll_interval();
            tasks.spawn("scheduler", move |cancel| scheduler.run(poll, cancel));
        }
        let listener = TcpListener::bind(settings.http.listen)
            .with_context(|| format!("binding {}", settings.http.listen))?;
        let port = listener.local_addr()?.port();
        let server = crate::http::serve(listener, state.clone(), &settings.http)?;
        Ok(Application {
            port,
            server,
            database,
            state,
            tasks,
            settings,
            upstream: adapters.upstream,
            upstream_url,
        })
    }
}

/// The Redis of `settings`, when one is configured (`ORDO_REDIS_URL`).
async fn connect_redis(settings: &Settings) -> anyhow::Result<Option<Redis>> {
    let Some(url) = &settings.redis.url else {
        return Ok(None);
    };
    let redis = Redis::connect(&RedisConfig {
        url: url.expose_secret().to_owned(),
        timeout: Duration::from_millis(settings.redis.timeout_ms.max(1)),
    })
    .await?;
    tracing::info!(
        "rate limits and usage answers are kept in Redis, shared with every instance using it"
    );
    Ok(Some(redis))
}

/// Sandbox mode's upstream: the simulator with its sandbox preset (sometimes
/// slow, a bit flaky, within what the adapter's retries absorb), on a free
/// loopback port of this process. It gets a thread and an actix system of its
/// own: served from the application's runtime, Ordo's own server dropped
/// connections under a burst of 200 concurrent requests (the gapless-numbers
/// test; the cause inside actix-server was not pinned down).
fn start_sandbox_upstream() -> anyhow::Result<RunningSim> {
    let sim = UpstreamSim::start_on_own_thread(SimConfig::sandbox())
        .context("starting the sandbox upstream simulator")?;
    tracing::info!(
        url = %sim.url(),
        "sandbox: no ORDO_UPSTREAM_URL, so the upstream simulator serves in-process"
    );
    Ok(sim)
}

/// Seals the personal data of rows written before it was sealed at rest (SQL has no
/// key, so the migration could not). Safe to run from several starting instances
/// at once; nothing to do after the first time.
async fn seal_plaintext_rows(pool: &PgPool, data_keys: &dyn FieldCipher) -> anyhow::Result<()> {
    let reports = ordo_postgres::sealing::seal_rows(pool, data_keys, Pass::Plaintext)
        .await
        .context("sealing personal data stored in plaintext by an earlier version")?;
    for report in reports.iter().filter(|r| r.sealed > 0) {
        tracing::info!(
            table = report.table,
            rows = report.sealed,
            key_id = %data_keys.current_key(),
            "sealed personal data stored in plaintext by an earlier version"
        );
    }
    Ok(())
}

/// Gives the sandbox catalog the simulator's products, after the sample data (whose
/// loading looks for an empty catalog). The sandbox upstream is sometimes slow or
/// failing, so a sync that fails is logged and the start goes on: the catalog keeps
/// what it had, and the next sync catches up.
async fn sync_sandbox_catalog(state: &AppState) {
    match state.catalog_sync.sync_once().await {
        Ok(report) => tracing::info!(
            created = report.created,
            updated = report.updated,
            deactivated = report.deactivated,
            unchanged = report.unchanged,
            skipped = report.skipped,
            "sandbox: synced the catalog from the upstream simulator"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "sandbox: the catalog could not be synced from the upstream simulator; it keeps what it had"
        ),
    }
}

async fn load_sample_data_once(state: &AppState) -> anyhow::Result<()> {
    if let Some(SeedOutcome::Loaded {
        products,
        customers,
        orders,
    }) = seed::load_once(state).await?
    {
        tracing::info!(
            products,
            customers,
            orders,
            "loaded sample data into the new database"
        );
    }
    Ok(())
}

/// A built application, bound to its port but not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    database: Database,
    state: AppState,
    tasks: BackgroundTasks,
    settings: Settings,
    upstream: UpstreamPorts,
    upstream_url: String,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// Stops a running application from elsewhere.
#[derive(Clone)]
pub struct StopHandle {
    server: ServerHandle,
    draining: Draining,
    drain: Duration,
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopHandle")
    }
}

impl StopHandle {
    /// Stops accepting connections. `/readyz` answers 503 from the start. Graceful:
    /// everything is still served for the drain period (`ORDO_SHUTDOWN_DRAIN_MS`),
    /// so that a load balancer takes the instance out before it refuses anyone;
    /// then in-flight requests finish (within the shutdown timeout), then background
    /// tasks finish their work. Not graceful: connections are dropped at once;
    /// background tasks still get their grace.
    ///
    /// Like actix's own handle, a stop without a drain period is sent at once,
    /// even when the returned future is dropped unawaited.
    pub fn stop(&self, graceful: bool) -> impl Future<Output = ()> + use<> {
        self.draining.begin();
        let drain = if graceful { self.drain } else { Duration::ZERO };
        let server = self.server.clone();
        let stopping_now = drain.is_zero().then(|| server.stop(graceful));
        async move {
            if let Some(stopping) = stopping_now {
                return stopping.await;
            }
            tracing::info!(
                ?drain,
                "shutting down: not ready any more, still serving until the drain period is over"
            );
            tokio::time::sleep(drain).await;
            server.stop(graceful).await;
        }
    }
}

impl Application {
    /// Starts building an application with `settings`.
    pub fn builder(settings: Settings) -> ApplicationBuilder {
        ApplicationBuilder {
            settings,
            clock: None,
            password_hasher: None,
            rate_limits: None,
            tasks: Vec::new(),
            extra_jobs: Vec::new(),
        }
    }

    /// Builds an application with `settings` and the production adapters.
    ///
    /// # Errors
    /// As [`ApplicationBuilder::build`].
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::builder(settings).build().await
    }

    /// The port the server is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the handlers reach: the services and the pool.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The ports to the upstream, as the services get them.
    pub fn upstream(&self) -> &UpstreamPorts {
        &self.upstream
    }

    /// The upstream's base URL: the configured one, or the sandbox simulator's.
    pub fn upstream_url(&self) -> &str {
        &self.upstream_url
    }

    /// A handle to stop the application from elsewhere.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            server: self.server.handle(),
            draining: self.state.draining.clone(),
            drain: self.settings.http.shutdown_drain(),
        }
    }

    /// Serves until stopped, then shuts down in order: stop accepting, let in-flight
    /// requests finish, tell each background task to finish its work and await it
    /// (bounded by the shutdown timeout), close the pool, stop the embedded cluster.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            server,
            database,
            state,
            tasks,
            settings,
            ..
        } = self;
        let served = server.await;
        tracing::info!("HTTP server stopped; finishing background tasks");
        tasks.shutdown(settings.http.shutdown_timeout()).await;
        drop(state);
        if let Some(cluster) = database.cluster {
            tokio::task::spawn_blocking(move || cluster.stop()).await?;
            tracing::info!("stopped the embedded PostgreSQL cluster");
        }
        served.context("serving HTTP")
    }
}

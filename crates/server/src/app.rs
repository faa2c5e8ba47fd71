//! The composition root: the one place where adapters (repositories, clock, and
//! later gateways, stores and sinks) are chosen and assembled into the domain's
//! services, and where the application with its HTTP server and background tasks
//! is built. `ordo serve`, the tests and the benchmark all build through it; a test
//! swaps an adapter (a fixed clock, a scripted upstream) without copying wiring.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use anyhow::Context;
use ordo_domain::catalog::{CatalogService, ProductRepository};
use ordo_domain::customers::{CustomerRepository, CustomerService};
use ordo_domain::orders::{OrderPolicy, OrderRepository, OrderService, SpacingWindow};
use ordo_domain::{Clock, Currency, SystemClock};
use ordo_postgres::{
    PgCustomerRepository, PgOrderRepository, PgPool, PgProductRepository, connect_pool,
};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::database::{Database, prepare_database};
use crate::middleware::metrics;
use crate::seed::{self, SeedOutcome};
use crate::state::AppState;
use crate::tasks::BackgroundTasks;

/// The outside world as the domain sees it: one implementation of each port.
#[derive(Clone)]
pub struct Adapters {
    /// Products and stock.
    pub products: Arc<dyn ProductRepository>,
    /// Customers.
    pub customers: Arc<dyn CustomerRepository>,
    /// Orders, with their numbers and stock moves.
    pub orders: Arc<dyn OrderRepository>,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Adapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapters").finish_non_exhaustive()
    }
}

impl Adapters {
    /// The production adapters: PostgreSQL repositories over `pool`, the system clock.
    pub fn postgres(pool: &PgPool) -> Self {
        Self {
            products: Arc::new(PgProductRepository::new(pool.clone())),
            customers: Arc::new(PgCustomerRepository::new(pool.clone())),
            orders: Arc::new(PgOrderRepository::new(pool.clone())),
            clock: Arc::new(SystemClock),
        }
    }
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
    /// The currency of products created without one.
    pub default_currency: Currency,
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
        let Adapters {
            products,
            customers,
            orders,
            clock,
        } = adapters.clone();
        Ok(Self {
            catalog: CatalogService::new(products.clone(), clock.clone()),
            customers: CustomerService::new(customers.clone(), clock.clone()),
            orders: OrderService::new(orders, products, customers, clock, OrderPolicy { spacing }),
            default_currency,
        })
    }
}

/// A background task to start with the application (see [`BackgroundTasks::spawn`]).
type TaskStarter = Box<dyn FnOnce(&mut BackgroundTasks) + Send>;

/// Builds an [`Application`]: the settings, and any adapter a caller replaces.
pub struct ApplicationBuilder {
    settings: Settings,
    clock: Option<Arc<dyn Clock>>,
    tasks: Vec<TaskStarter>,
}

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
            tasks: extra_tasks,
        } = self;
        crate::http::raise_fd_limit();
        let database = prepare_database(&settings).await?;
        let pool = connect_pool(
            database.url.expose_secret(),
            &settings.database.pool_config(),
        )?;
        let mut adapters = Adapters::postgres(&pool);
        if let Some(clock) = clock {
            adapters.clock = clock;
        }
        let services = Services::assemble(&adapters, &settings)?;
        let mut tasks = BackgroundTasks::new();
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
        for start in extra_tasks {
            start(&mut tasks);
        }
        let mut state = AppState::new(services, pool, metrics, tasks.health());
        state.database_health = database_health;
        if database.cluster.is_some() && settings.sample_data {
            load_sample_data_once(&state).await?;
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
        })
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
pub struct StopHandle(ServerHandle);

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopHandle")
    }
}

impl StopHandle {
    /// Stops accepting connections. Graceful: in-flight requests finish (within the
    /// shutdown timeout), then background tasks finish their work. Not graceful:
    /// connections are dropped at once; background tasks still get their grace.
    pub async fn stop(&self, graceful: bool) {
        self.0.stop(graceful).await;
    }
}

impl Application {
    /// Starts building an application with `settings`.
    pub fn builder(settings: Settings) -> ApplicationBuilder {
        ApplicationBuilder {
            settings,
            clock: None,
            tasks: Vec::new(),
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

    /// A handle to stop the application from elsewhere.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.server.handle())
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

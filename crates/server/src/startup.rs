//! Building and running the application.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{Server, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, from_fn};
use actix_web::{App, HttpResponse, HttpServer, ResponseError, web};
use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use ordo_domain::catalog::CatalogService;
use ordo_domain::customers::CustomerService;
use ordo_domain::orders::{OrderPolicy, OrderService, SpacingWindow};
use ordo_domain::{Currency, SystemClock};
use ordo_postgres::{
    ClusterError, Durability, LocalCluster, LocalClusterConfig, PgCustomerRepository,
    PgOrderRepository, PgPool, PgProductRepository, connect_pool, run_migrations,
};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Settings;
use crate::extract::MAX_BODY_BYTES;
pub use crate::openapi::openapi;
use crate::problem::{ApiError, FieldError};
use crate::request_context;
use crate::routes;
use crate::seed::{self, SeedOutcome};
use crate::state::AppState;

/// The database of the embedded cluster.
const EMBEDDED_DATABASE: &str = "ordo";

/// Where the data lives: a database URL, and the local cluster if Ordo started one.
#[derive(Debug)]
pub struct Database {
    /// The connection URL.
    pub url: String,
    /// The embedded cluster, stopped when dropped.
    pub cluster: Option<LocalCluster>,
}

/// Connects to `DATABASE_URL`, or starts the embedded cluster in the data directory,
/// and applies pending migrations.
///
/// # Errors
/// When the cluster cannot be started or migrations fail.
pub async fn prepare_database(settings: &Settings) -> anyhow::Result<Database> {
    let database = match &settings.database_url {
        Some(url) => Database {
            url: url.clone(),
            cluster: None,
        },
        None => {
            let cluster = start_embedded(&settings.data_dir.join("pg")).await?;
            cluster
                .ensure_database(EMBEDDED_DATABASE)
                .await
                .context("creating the embedded database")?;
            Database {
                url: cluster.database_url(EMBEDDED_DATABASE),
                cluster: Some(cluster),
            }
        }
    };
    run_migrations(&database.url).await?;
    Ok(database)
}

async fn start_embedded(data_dir: &Path) -> anyhow::Result<LocalCluster> {
    let config = |data_dir: PathBuf| LocalClusterConfig {
        data_dir,
        durability: Durability::Durable,
    };
    match LocalCluster::start(config(data_dir.to_path_buf())).await {
        Err(ClusterError::DataDirUnreachable {
            data_dir: wanted,
            blocking,
        }) => {
            // Running as root in a 0700 home directory: PostgreSQL's own user cannot
            // reach the data directory there, so keep it where it can, and say so.
            let fallback = fallback_data_dir(&wanted);
            tracing::warn!(
                wanted = %wanted.display(),
                blocking = %blocking.display(),
                using = %fallback.display(),
                "the postgres user cannot reach the data directory; using a fallback location (set ORDO_DATA_DIR to choose one)"
            );
            Ok(LocalCluster::start(config(fallback)).await?)
        }
        other => Ok(other?),
    }
}

/// `/var/lib/ordo/<name>-<hash>/pg`: stable for one requested directory, distinct
/// for different ones.
fn fallback_data_dir(wanted: &Path) -> PathBuf {
    let text = wanted.to_string_lossy();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let name = wanted
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ordo".into());
    PathBuf::from("/var/lib/ordo")
        .join(format!("{name}-{hash:016x}"))
        .join("pg")
}

/// The services over a pool.
///
/// # Errors
/// When a setting is out of range.
pub fn build_state(settings: &Settings, pool: PgPool) -> anyhow::Result<AppState> {
    let spacing = SpacingWindow::from_minutes(settings.spacing_window_minutes)
        .map_err(|e| anyhow::anyhow!("spacing_window_minutes: {e}"))?;
    let default_currency = Currency::parse(&settings.default_currency)
        .map_err(|e| anyhow::anyhow!("default_currency: {e}"))?;
    let products = Arc::new(PgProductRepository::new(pool.clone()));
    let customers = Arc::new(PgCustomerRepository::new(pool.clone()));
    let orders = Arc::new(PgOrderRepository::new(pool.clone()));
    let clock = Arc::new(SystemClock);
    Ok(AppState {
        catalog: CatalogService::new(products.clone(), clock.clone()),
        customers: CustomerService::new(customers.clone(), clock.clone()),
        orders: OrderService::new(orders, products, customers, clock, OrderPolicy { spacing }),
        pool,
        default_currency,
        metrics: metrics_handle(),
    })
}

/// The process-wide Prometheus recorder; installed once, shared by every app in
/// the process (tests start many).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    let handle = HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will stay empty");
        }
        handle
    });
    handle.clone()
}

/// A built application, bound to its port but not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    database: Database,
    state: AppState,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Prepares the database, the services and the HTTP server. Port 0 binds a free
    /// port (tests). Sample data is loaded into an empty embedded database.
    ///
    /// # Errors
    /// When the database or the listener cannot be set up.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let database = prepare_database(&settings).await?;
        let pool = connect_pool(
            &database.url,
            settings.database_pool_size,
            Duration::from_secs(10),
        )?;
        let state = build_state(&settings, pool)?;
        if database.cluster.is_some()
            && settings.sample_data
            && let SeedOutcome::Loaded {
                products,
                customers,
                orders,
            } = seed::load(&state, state.default_currency).await?
        {
            tracing::info!(
                products,
                customers,
                orders,
                "loaded sample data into the new database"
            );
        }
        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("binding {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let server = serve(listener, state.clone(), &settings)?;
        Ok(Self {
            port,
            server,
            database,
            state,
        })
    }

    /// The port the server is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server from elsewhere.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM, lets in-flight requests finish, then stops the
    /// embedded cluster.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let served = self.server.await;
        drop(self.state);
        if let Some(cluster) = self.database.cluster {
            tokio::task::spawn_blocking(move || cluster.stop()).await?;
            tracing::info!("stopped the embedded PostgreSQL cluster");
        }
        served.context("serving HTTP")
    }
}

/// The methods each documented path template takes, so that a request for a known
/// path with another method is answered 405 with `Allow` rather than 404.
#[derive(Debug, Clone, Default)]
pub struct AllowedMethods(Vec<(Vec<String>, Vec<&'static str>)>);

impl AllowedMethods {
    fn from_spec(spec: &utoipa::openapi::OpenApi) -> Self {
        let entries = spec
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ]
                .into_iter()
                .filter_map(|(method, present)| present.then_some(method))
                .collect();
                (template.split('/').map(str::to_owned).collect(), methods)
            })
            .collect();
        Self(entries)
    }

    /// The `Allow` header value for `path`: the methods of every template it
    /// matches, or `None` when no route has this path.
    pub fn for_path(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        let mut methods: Vec<&str> = self
            .0
            .iter()
            .filter(|(template, _)| {
                template.len() == segments.len()
                    && template.iter().zip(&segments).all(|(t, s)| {
                        t == s || (t.starts_with('{') && t.ends_with('}') && !s.is_empty())
                    })
            })
            .flat_map(|(_, methods)| methods.iter().copied())
            .collect();
        methods.sort_unstable();
        methods.dedup();
        (!methods.is_empty()).then(|| methods.join(", "))
    }
}

/// Requests no route took: 405 with `Allow` when the path exists, 404 otherwise.
async fn unrouted(
    req: actix_web::HttpRequest,
    allowed: web::Data<AllowedMethods>,
) -> Result<HttpResponse, ApiError> {
    let Some(allow) = allowed.for_path(req.path()) else {
        return Err(ApiError::for_status(StatusCode::NOT_FOUND));
    };
    let allow = actix_web::http::header::HeaderValue::from_str(&allow)
        .map_err(|e| ApiError::internal(e.into()))?;
    Err(ApiError::for_status(StatusCode::METHOD_NOT_ALLOWED)
        .with_header(actix_web::http::header::ALLOW, allow))
}

fn serve(listener: TcpListener, state: AppState, settings: &Settings) -> anyhow::Result<Server> {
    let state = web::Data::new(state);
    let spec = openapi();
    let allowed = web::Data::new(AllowedMethods::from_spec(&spec));
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(ErrorHandlers::new().default_handler(problem_for_bare_errors))
            .wrap(from_fn(request_context::middleware))
            .app_data(state.clone())
            .app_data(allowed.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .app_data(
                web::PathConfig::default()
                    .error_handler(|_, _| ApiError::for_status(StatusCode::NOT_FOUND).into()),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                ApiError::validation(vec![FieldError::new("query", e.to_string())]).into()
            }))
            .into_utoipa_app()
            .configure(routes::register)
            .into_app()
            .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", spec.clone()))
            .service(web::redirect("/docs", "/docs/"))
            .default_service(web::to(unrouted))
    })
    .shutdown_timeout(settings.shutdown_timeout_secs)
    .listen(listener)?;
    if let Some(workers) = settings.workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}

/// Gives error responses that did not come from an [`ApiError`] (unmatched routes,
/// methods, oversized bodies) a problem document too, keeping their headers.
fn problem_for_bare_errors<B>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (req, old) = res.into_parts();
    let mut problem: HttpResponse<BoxBody> = ApiError::for_status(status).error_response();
    for (name, value) in old.headers() {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let res: ServiceResponse<EitherBody<B, BoxBody>> =
        ServiceResponse::new(req, problem).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}

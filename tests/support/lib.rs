//! `spawn_app()`: the real Ordo application on a free port over a fresh database,
//! with a small typed client for the tests in `api/`.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use ordo_crypto::Argon2Hasher;
use ordo_domain::Clock;
use ordo_domain::auth::{CreateUserError, Role};
use ordo_domain::catalog::CatalogSync;
use ordo_domain::checkout::CheckoutService;
use ordo_domain::ratelimit::RateLimitStore;
use ordo_postgres::PgPool;
use ordo_postgres::testing::{TestDatabase, fresh_database};
pub use ordo_redis::testing::RedisServer;
use ordo_server::{Application, ApplicationBuilder, Settings, StopHandle, UpstreamPorts};
use ordo_upstream_sim::{RunningSim, SimConfig, UpstreamSim};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A running application and what a test needs to talk to it. Dropping it stops
/// the server at once; [`TestApp::stop`] stops it gracefully and waits until
/// every background task has finished.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The port the server listens on.
    pub port: u16,
    /// A client with keep-alive connections, sending the harness user's
    /// `Authorization: Bearer …` on every request (none when built `.anonymous()`).
    pub client: reqwest::Client,
    /// A client that sends no credentials.
    pub anonymous: reqwest::Client,
    /// The login of the harness user (`None` when built `.anonymous()` or
    /// `.as_client()`).
    pub session: Option<Value>,
    /// The key of the harness's API client (`Some` when built `.as_client()`).
    pub api_key: Option<String>,
    /// The database behind the app, for assertions on stored rows.
    pub database: TestDatabase,
    /// A pool to that database.
    pub pool: PgPool,
    /// The application's ports to the upstream, as its services get them.
    pub upstream: UpstreamPorts,
    /// The upstream's base URL: the sandbox simulator the application started,
    /// or the one given to the builder.
    pub upstream_url: String,
    /// The simulator started by [`TestAppBuilder::with_upstream_sim`], for its
    /// audit and its configuration.
    pub upstream_sim: Option<RunningSim>,
    /// The application's checkout service, to run reconciliation and the outbox
    /// dispatcher when a test says so.
    pub checkout: CheckoutService,
    /// The application's catalog sync, to run as the `sync-catalog` job would.
    pub catalog_sync: CatalogSync,
    stop: StopHandle,
    finished: Option<tokio::sync::oneshot::Receiver<anyhow::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if self.finished.is_some() {
            // The command is sent at once; the server's own thread carries it out.
            drop(self.stop.stop(false));
        }
    }
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("address", &self.address)
            .field("database", &self.database.name)
            .finish_non_exhaustive()
    }
}

impl TestApp {
    /// Stops the application gracefully, as SIGTERM does, and waits until it has
    /// shut down completely: in-flight requests answered, background tasks
    /// finished. Its database stays, for assertions.
    ///
    /// # Panics
    /// When the application failed while serving or shutting down.
    pub async fn stop(mut self) {
        self.shut_down().await;
    }

    /// Stops the application gracefully like [`stop`](Self::stop), keeping this
    /// handle for assertions on the database afterwards.
    ///
    /// # Panics
    /// When the application failed while serving or shutting down.
    pub async fn shut_down(&mut self) {
        self.stop.stop(true).await;
        if let Some(finished) = self.finished.take() {
            finished
                .await
                .expect("the server thread reports back")
                .expect("the application shuts down cleanly");
        }
    }
}

type SettingsChange = Box<dyn FnOnce(&mut Settings) + Send>;
type BuilderChange = Box<dyn FnOnce(ApplicationBuilder) -> ApplicationBuilder + Send>;

/// Builds a [`TestApp`]: `spawn_app().await` for the defaults, or
/// `spawn_app().with_settings(..).with_clock(..).await`.
#[must_use = "await it to start the application"]
pub struct TestAppBuilder {
    settings: Vec<SettingsChange>,
    application: Vec<BuilderChange>,
    login: Login,
    upstream_sim: Option<SimConfig>,
    database: Option<TestDatabase>,
}

/// Who the harness's client is logged in as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Login {
    Staff,
    Admin,
    Client,
    Anonymous,
}

/// The staff user every test app has.
pub const STAFF_EMAIL: &str = "staff@ordo.test";
/// The administrator every test app has.
pub const ADMIN_EMAIL: &str = "admin@ordo.test";
/// The password of both.
pub const TEST_PASSWORD: &str = "correct horse battery staple";
/// The JWT secret of test apps.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// Starts building a test application: the real application on a free port over
/// a fresh database, with sample data off.
pub fn spawn_app() -> TestAppBuilder {
    TestAppBuilder {
        settings: Vec::new(),
        application: Vec::new(),
        login: Login::Staff,
        upstream_sim: None,
        database: None,
    }
}

impl std::fmt::Debug for TestAppBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestAppBuilder")
            .field("settings_changes", &self.settings.len())
            .field("application_changes", &self.application.len())
            .finish()
    }
}

impl TestAppBuilder {
    /// Logs the client in as an administrator instead of a staff user.
    pub fn as_admin(mut self) -> Self {
        self.login = Login::Admin;
        self
    }

    /// The client is an API client: the harness registers one (as an
    /// administrator, through the API) and sends its key as `X-API-Key`; the key is
    /// [`TestApp::api_key`].
    pub fn as_client(mut self) -> Self {
        self.login = Login::Client;
        self
    }

    /// Runs on the database of `other` instead of a fresh one: a second instance of
    /// the same installation (its harness users exist already).
    pub fn sharing_database_of(mut self, other: &TestApp) -> Self {
        self.database = Some(other.database.clone());
        self
    }

    /// The client sends no credentials.
    pub fn anonymous(mut self) -> Self {
        self.login = Login::Anonymous;
        self
    }

    /// Changes the settings before the application is built.
    pub fn with_settings(mut self, change: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        self.settings.push(Box::new(change));
        self
    }

    /// Calls the upstream at `url` instead of the sandbox simulator the
    /// application starts by itself.
    pub fn with_upstream(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.with_settings(move |settings| settings.upstream.url = Some(url))
    }

    /// Starts a simulator of the upstream configured as `config` (a preset such
    /// as `SimConfig::chaos(0.3)`) and points the application at it; the test
    /// reaches it as [`TestApp::upstream_sim`].
    pub fn with_upstream_sim(mut self, config: SimConfig) -> Self {
        self.upstream_sim = Some(config);
        self
    }

    /// Uses `clock` instead of the system clock (see [`ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.application
            .push(Box::new(move |builder| builder.with_clock(clock)));
        self
    }

    /// Shares rate limits with every other app using `redis`, as instances given
    /// the same `ORDO_REDIS_URL` do.
    ///
    /// A command may take two seconds instead of production's 250 ms: under the
    /// whole debug suite on a small machine a decision can miss 250 ms, and the
    /// request is then served unchecked, by design but unlike what the tests
    /// that count units expect. An unreachable Redis is refused at once either way.
    pub fn with_redis(self, redis: &RedisServer) -> Self {
        let url = redis.url().to_owned();
        self.with_settings(move |settings| {
            settings.redis.url = Some(url.into());
            settings.redis.timeout_ms = 2_000;
        })
    }

    /// Keeps rate limits in `store` instead of the application's memory.
    pub fn with_rate_limit_store(mut self, store: Arc<dyn RateLimitStore>) -> Self {
        self.application.push(Box::new(move |builder| {
            builder.with_rate_limit_store(store)
        }));
        self
    }

    /// Registers one more scheduled job with the application.
    pub fn with_job(
        mut self,
        name: &'static str,
        default_schedule: &'static str,
        job: Arc<dyn ordo_domain::scheduling::Job>,
    ) -> Self {
        self.application.push(Box::new(move |builder| {
            builder.with_job(name, default_schedule, job)
        }));
        self
    }

    /// Runs the scheduler, polling every `poll`, with leases of `lease_secs`.
    pub fn with_scheduler(self, poll: std::time::Duration, lease_secs: u64) -> Self {
        self.with_settings(move |settings| {
            settings.scheduler.enabled = true;
            settings.scheduler.poll_ms = u64::try_from(poll.as_millis()).unwrap_or(u64::MAX);
            settings.scheduler.lease_secs = lease_secs;
        })
    }

    /// Starts one more background task with the application.
    pub fn with_task<F, Fut>(mut self, name: &'static str, task: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.application
            .push(Box::new(move |builder| builder.with_task(name, task)));
        self
    }

    /// Builds and starts the application.
    ///
    /// # Panics
    /// When the application cannot be built.
    pub async fn spawn(self) -> TestApp {
        if std::env::var_os("TEST_LOG").is_some() {
            ordo_server::telemetry::init(ordo_server::LogFormat::Text);
        }
        let database = match self.database {
            Some(shared) => shared,
            None => fresh_database().await.expect("a fresh test database"),
        };
        let upstream_sim = self.upstream_sim.map(|config| {
            // Its own thread and actix system: it outlives the application's.
            UpstreamSim::start_on_own_thread(config).expect("an upstream simulator")
        });
        let mut settings = Settings {
            sample_data: false,
            ..Settings::default()
        };
        settings.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.http.workers = Some(2);
        settings.http.shutdown_timeout_secs = 1;
        settings.database.url = Some(database.url.clone().into());
        settings.database.pool_size = 20;
        settings.auth.jwt_secret = Some(TEST_JWT_SECRET.into());
        // Tests move their clocks by hours and days; one that tests expiry sets
        // the production lifetime (900 s) back.
        settings.auth.access_ttl_secs = 365 * 24 * 3600;
        settings.auth.data_key = Some("test-data-key-test-data-key".into());
        // Jobs run only in the tests that turn the scheduler on (or drive one
        // themselves), so no other test sees rows change under it.
        settings.scheduler.enabled = false;
        if let Some(sim) = &upstream_sim {
            settings.upstream.url = Some(sim.url());
        }
        for change in self.settings {
            change(&mut settings);
        }
        let host = match settings.http.listen.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        let mut builder = Application::builder(settings)
            .with_password_hasher(Arc::new(Argon2Hasher::insecure_fast_for_tests()));
        for change in self.application {
            builder = change(builder);
        }
        // The server gets a thread and an actix system of its own, so that it outlives
        // no test: it is stopped when the TestApp is stopped or dropped, whatever the
        // test's runtime does meanwhile.
        let (started, running) = tokio::sync::oneshot::channel();
        let (done, finished) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match builder.build().await {
                    Ok(app) => {
                        // The harness's users, made through the services as an
                        // administrator's request would make them.
                        let auth = app.state().auth.clone();
                        for (email, role) in
                            [(STAFF_EMAIL, Role::Staff), (ADMIN_EMAIL, Role::Admin)]
                        {
                            match auth.create_user(email, TEST_PASSWORD, role).await {
                                // A second instance on a shared database.
                                Ok(_) | Err(CreateUserError::EmailTaken) => {}
                                Err(e) => {
                                    let _ =
                                        started.send(Err(anyhow::anyhow!("creating {email}: {e}")));
                                    return;
                                }
                            }
                        }
                        let _ = started.send(Ok((
                            app.port(),
                            app.stop_handle(),
                            app.upstream().clone(),
                            app.upstream_url().to_owned(),
                            app.state().checkout.clone(),
                            app.state().catalog_sync.clone(),
                        )));
                        let _ = done.send(app.run_until_stopped().await);
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                    }
                }
            });
        });
        let (port, stop, upstream, upstream_url, checkout, catalog_sync) = running
            .await
            .expect("the server thread reports back")
            .expect("the application builds");
        let address = format!("http://{host}:{port}");
        let anonymous = client(reqwest::header::HeaderMap::new());
        let (client, session, api_key) = match self.login {
            Login::Anonymous => (anonymous.clone(), None, None),
            Login::Client => {
                let registered = register_client_at(
                    &anonymous,
                    &address,
                    &json!({"name": "Harness client", "email": "client@ordo.test"}),
                )
                .await;
                assert_eq!(registered.status, StatusCode::CREATED, "{registered:?}");
                let key = registered.body["api_key"]
                    .as_str()
                    .expect("an API key")
                    .to_owned();
                (api_key_client(&key), None, Some(key))
            }
            Login::Staff | Login::Admin => {
                let email = if self.login == Login::Admin {
                    ADMIN_EMAIL
                } else {
                    STAFF_EMAIL
                };
                let reply = anonymous
                    .post(format!("{address}/v1/auth/login"))
                    .json(&json!({"email": email, "password": TEST_PASSWORD}))
                    .send()
                    .await
                    .expect("the login is sent");
                assert_eq!(reply.status(), StatusCode::OK, "the harness logs in");
                let session: Value = reply.json().await.expect("a session");
                let token = session["access_token"].as_str().expect("an access token");
                let mut headers = reqwest::header::HeaderMap::new();
                let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                    .expect("a header value");
                value.set_sensitive(true);
                headers.insert(reqwest::header::AUTHORIZATION, value);
                (client(headers), Some(session), None)
            }
        };
        TestApp {
            address,
            port,
            client,
            anonymous,
            session,
            api_key,
            pool: database.pool(4).expect("a pool"),
            database,
            upstream,
            upstream_url,
            upstream_sim,
            checkout,
            catalog_sync,
            stop,
            finished: Some(finished),
        }
    }
}

/// A client sending `key` as `X-API-Key` on every request.
///
/// # Panics
/// When `key` cannot be a header value.
pub fn api_key_client(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(key).expect("a header value");
    value.set_sensitive(true);
    headers.insert("x-api-key", value);
    client(headers)
}

/// An administrator's access token for the app at `address`.
async fn admin_token(anonymous: &reqwest::Client, address: &str) -> String {
    let reply = anonymous
        .post(format!("{address}/v1/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": TEST_PASSWORD}))
        .send()
        .await
        .expect("the login is sent");
    assert_eq!(reply.status(), StatusCode::OK, "the administrator logs in");
    let session: Value = reply.json().await.expect("a session");
    session["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

async fn register_client_at(anonymous: &reqwest::Client, address: &str, body: &Value) -> Reply {
    let token = admin_token(anonymous, address).await;
    let response = anonymous
        .post(format!("{address}/v1/clients"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("the registration is sent");
    Reply::read(response).await
}

fn client(headers: reqwest::header::HeaderMap) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        // Shorter than the server's keep-alive (actix's 5 s): a connection the
        // server is closing for idleness is never picked for the next request,
        // which would then fail with "connection closed before message completed"
        // when a slow machine stretches a test's setup past the keep-alive.
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .default_headers(headers)
        .build()
        .expect("an HTTP client")
}

impl IntoFuture for TestAppBuilder {
    type Output = TestApp;
    type IntoFuture = Pin<Box<dyn Future<Output = TestApp> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.spawn())
    }
}

/// A clock a test sets and moves by hand, shared with the application it runs.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock standing at `at`.
    pub fn at(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(ordo_domain::to_micros(at))))
    }

    /// Moves the clock forward by `by`.
    ///
    /// # Panics
    /// When the clock's lock was poisoned by a panicking test thread.
    pub fn advance(&self, by: TimeDelta) {
        let mut now = self.0.lock().expect("the clock's lock");
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("the clock's lock")
    }
}

/// A response read whole: status, headers and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON.
    pub body: Value,
}

impl Reply {
    /// Reads a response whole.
    pub async fn read(response: Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("a readable body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            body,
        }
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The problem `code`, asserting the body is a problem document.
    pub fn problem_code(&self) -> &str {
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "not a problem document: {self:?}"
        );
        self.body["code"].as_str().expect("a problem code")
    }
}

impl TestApp {
    /// The harness user's access token (`None` when built `.anonymous()`).
    pub fn access_token(&self) -> Option<&str> {
        self.session.as_ref()?["access_token"].as_str()
    }

    /// Sends a request with an optional JSON body.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(body) = body {
            request = request.json(body);
        }
        Reply::read(request.send().await.expect("the request is sent")).await
    }

    /// Sends raw bytes with a content type.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let response = self
            .client
            .request(method, format!("{}{path}", self.address))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the request is sent");
        Reply::read(response).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, Some(body)).await
    }

    /// Creates a product and returns its JSON.
    pub async fn create_product(&self, sku: &str, price_minor: i64, stock: Option<i64>) -> Value {
        let kind = if stock.is_some() { "good" } else { "service" };
        let reply = self
            .post(
                "/v1/products",
                &json!({"sku": sku, "name": sku, "kind": kind, "price_minor": price_minor, "stock": stock}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        reply.body
    }

    /// Registers an API client through the API, as an administrator, and returns
    /// the reply (201 with `api_key` when `body` is valid).
    pub async fn register_client(&self, body: &Value) -> Reply {
        register_client_at(&self.anonymous, &self.address, body).await
    }

    /// Sends a request as an administrator, whatever the harness client is.
    pub async fn send_as_admin(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let token = admin_token(&self.anonymous, &self.address).await;
        let mut request = self
            .anonymous
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        Reply::read(request.send().await.expect("the request is sent")).await
    }

    /// Creates a customer and returns its JSON.
    pub async fn create_customer(&self, email: &str, city: &str) -> Value {
        let reply = self
            .post(
                "/v1/customers",
                &json!({"name": "Test Customer", "email": email, "city": city}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        reply.body
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.anonymous
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("text")
    }

    /// One number from SQL (`SELECT … AS n`) against the app's database.
    pub async fn count(&self, sql: &str) -> i64 {
        ordo_postgres::testing::count(&self.pool, sql)
            .await
            .expect("the count query runs")
    }
}

/// The id field of a JSON resource.
pub fn id_of(resource: &Value) -> &str {
    resource["id"].as_str().expect("an id")
}

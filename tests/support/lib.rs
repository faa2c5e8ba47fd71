//! `spawn_app()`: the real Ordo application on a free port over a fresh database,
//! with a small typed client for the tests in `api/`.

use std::net::SocketAddr;

use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ordo_postgres::PgPool;
use ordo_postgres::testing::{TestDatabase, fresh_database};
use ordo_server::{Application, Settings};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

/// A running application and what a test needs to talk to it. Dropping it stops
/// the server, which closes its database connections.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// A client with keep-alive connections.
    pub client: reqwest::Client,
    /// The database behind the app, for assertions on stored rows.
    pub database: TestDatabase,
    /// A pool to that database.
    pub pool: PgPool,
    server: actix_web::dev::ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The command is sent at once; the server's own thread carries it out.
        drop(self.server.stop(false));
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

/// Starts the application with default settings on a new database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the application after `adjust` has changed the settings.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        ordo_server::telemetry::init(ordo_server::LogFormat::Text);
    }
    let database = fresh_database().await.expect("a fresh test database");
    let mut settings = Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: Some(database.url.clone()),
        database_pool_size: 20,
        sample_data: false,
        workers: Some(2),
        shutdown_timeout_secs: 1,
        ..Settings::default()
    };
    adjust(&mut settings);
    // The server gets a thread and an actix system of its own, so that it outlives
    // no test: it is stopped when the TestApp is dropped, whatever the test's
    // runtime does meanwhile.
    let (started, running) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            match Application::build(settings).await {
                Ok(app) => {
                    let _ = started.send(Ok((app.port(), app.handle())));
                    let _ = app.run_until_stopped().await;
                }
                Err(e) => {
                    let _ = started.send(Err(e));
                }
            }
        });
    });
    let (port, server) = running
        .await
        .expect("the server thread reports back")
        .expect("the application builds");
    let address = format!("http://127.0.0.1:{port}");
    TestApp {
        address,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .expect("an HTTP client"),
        pool: database.pool(4).expect("a pool"),
        database,
        server,
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
    async fn read(response: Response) -> Self {
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

    /// One number from SQL (`SELECT … AS n`) against the app's database.
    pub async fn count(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.pool.get().await.expect("a connection");
        let conn: &mut AsyncPgConnection = &mut conn;
        diesel::sql_query(sql)
            .get_result::<Count>(conn)
            .await
            .expect("the count query runs")
            .n
    }
}

/// The id field of a JSON resource.
pub fn id_of(resource: &Value) -> &str {
    resource["id"].as_str().expect("an id")
}

//! Three real `ordo` processes on one PostgreSQL and one Redis, with the requests
//! spread round-robin over them the way a load balancer spreads them: every
//! guarantee Ordo gives in one process holds across processes.
//!
//! - 50 concurrent creates for one customer → exactly one order (spacing rule);
//! - 200 concurrent creates → order numbers without gaps or duplicates;
//! - a client's burst + 1 requests → exactly one 429 (limits shared in Redis);
//! - a key rotated on one instance is refused by the others within
//!   `ORDO_API_KEY_CACHE_TTL_MS`;
//! - a job due every second runs once per due instant, however many instances poll;
//! - hits reported through all three during a rolling restart (SIGTERM, start
//!   again, one instance after the other) are counted exactly once.
//!
//! Where `haproxy` is installed (`.ci/run` installs it), the repository's own
//! `docker/haproxy.cfg` runs in front of the three, only its listening address and
//! its servers rendered for this machine, and part of the load goes through it:
//! - 50 concurrent creates for one customer through the balancer → one order;
//! - an instance stopped under load is taken out by the balancer's `/readyz`
//!   check while it drains, and no request through the balancer fails.
//!
//! The scenarios share one fleet, since starting three debug binaries is the
//! costly part; each is its own function with its own assertions. Skipped, with
//! the reason printed, only where `redis-server` is missing (`.ci/run` installs
//! it); the balancer's scenarios alone where `haproxy` is.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::join_all;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use ordo_postgres::testing::{TestDatabase, count, fresh_database};
use ordo_redis::testing::RedisServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const INSTANCES: usize = 3;
const ADMIN_EMAIL: &str = "admin@multi-instance.test";
const ADMIN_PASSWORD: &str = "multi-instance admin password";
/// The revocation bound across instances under test: short, so the test is.
const API_KEY_CACHE_TTL: Duration = Duration::from_millis(1_000);
/// The bound is checked on the instant a request was *sent* (a request accepted
/// was processed later still), so a slow answer on a busy machine cannot fail the
/// test; this only absorbs the timer's granularity.
const MEASURING_SLACK: Duration = Duration::from_millis(50);
/// How long a stopping instance stays ready to serve but not ready for more
/// (`ORDO_SHUTDOWN_DRAIN_MS`): longer than the two failed checks one second apart
/// that take it out of `docker/haproxy.cfg`'s backend.
const SHUTDOWN_DRAIN: Duration = Duration::from_millis(3_000);

/// One `ordo serve` process, its port kept across restarts.
struct Instance {
    index: usize,
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

/// The three instances and what they share.
struct Fleet {
    instances: Vec<Instance>,
    database: TestDatabase,
    redis: RedisServer,
    http: reqwest::Client,
    token: String,
    logs: PathBuf,
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    body: Value,
}

impl Reply {
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Self { status, body }
    }

    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

impl Instance {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again, on the same port) and waits until `/readyz`
    /// answers 200.
    async fn start(
        &mut self,
        database: &TestDatabase,
        redis: &RedisServer,
        http: &reqwest::Client,
    ) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ordo"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .env("DATABASE_URL", &database.url)
            .env("ORDO_REDIS_URL", redis.url())
            // Production's 250 ms can pass for a decision of a debug build while the
            // whole workspace's tests share the cores; the request would then be
            // served unchecked (by design), and the burst test would count one too
            // many.
            .env("ORDO_REDIS_TIMEOUT_MS", "2000")
            .env(
                "ORDO_JWT_SECRET",
                "multi-instance-test-secret-of-32-bytes-or-more",
            )
            .env("ORDO_DATA_KEY", "multi-instance-test-data-key")
            .env("ORDO_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("ORDO_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env(
                "ORDO_API_KEY_CACHE_TTL_MS",
                API_KEY_CACHE_TTL.as_millis().to_string(),
            )
            .env("ORDO_SCHEDULER_POLL_MS", "100")
            .env("ORDO_DATABASE_POOL_SIZE", "8")
            .env("ORDO_WORKERS", "2")
            .env("ORDO_SHUTDOWN_TIMEOUT_SECS", "20")
            .env(
                "ORDO_SHUTDOWN_DRAIN_MS",
                SHUTDOWN_DRAIN.as_millis().to_string(),
            )
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("ordo starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = http.get(format!("{}/readyz", self.base())).send().await;
            if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "instance {} did not become ready ({exited:?}); its log:\n{}",
                self.index,
                log_tail(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, and the graceful shutdown's exit status.
    async fn terminate(&mut self) {
        let mut child = self.child.take().expect("a running instance");
        let pid = i32::try_from(child.id().expect("running")).expect("a pid");
        kill(Pid::from_raw(pid), Signal::SIGTERM).expect("SIGTERM is sent");
        let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
            .await
            .expect("the instance exits after its graceful shutdown")
            .expect("an exit status");
        assert!(
            status.success(),
            "instance {} exited with {status:?}; its log:\n{}",
            self.index,
            log_tail(&self.log)
        );
    }
}

impl Fleet {
    /// One PostgreSQL database and one Redis, three instances on them, and an
    /// administrator's token (valid on every instance: they share the secret).
    async fn start(redis: RedisServer) -> Self {
        let database = fresh_database().await.expect("a database");
        let logs = std::env::temp_dir().join(format!("ordo-multi-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&logs).expect("a log directory");
        // No connection reuse: a request after a restart never meets a connection
        // the old process closed, and a refused connection is plainly "not served".
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        let mut instances: Vec<Instance> = (0..INSTANCES)
            .map(|index| Instance {
                index,
                port: free_port(),
                child: None,
                log: logs.join(format!("instance-{index}.log")),
            })
            .collect();
        // The first one alone creates the administrator; the others find it.
        let (first, others) = instances.split_first_mut().expect("instances");
        first.start(&database, &redis, &http).await;
        join_all(others.iter_mut().map(|i| i.start(&database, &redis, &http))).await;
        let login = Reply::read(
            http.post(format!("{}/v1/auth/login", instances[0].base()))
                .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
                .send()
                .await
                .expect("the login is sent"),
        )
        .await;
        assert_eq!(login.status, StatusCode::OK, "{login:?}");
        let token = login.body["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned();
        Self {
            instances,
            database,
            redis,
            http,
            token,
            logs,
        }
    }

    /// Starts instance `index` (again) on the fleet's database and Redis.
    async fn start_instance(&mut self, index: usize) {
        self.instances[index]
            .start(&self.database, &self.redis, &self.http)
            .await;
    }

    /// The base URL of the instance whose turn the `n`-th request is.
    fn base(&self, n: usize) -> String {
        self.instances[n % INSTANCES].base()
    }

    /// Where the `n`-th request of a scenario goes.
    fn route(&self, route: Route<'_>, n: usize) -> String {
        match route {
            Route::RoundRobin => self.base(n),
            Route::Through(balancer) => balancer.base(),
        }
    }

    /// An administrator's request, sent to instance `n mod 3`.
    async fn admin(&self, n: usize, method: Method, path: &str, body: Option<&Value>) -> Reply {
        self.admin_via(Route::RoundRobin, n, method, path, body)
            .await
    }

    /// An administrator's request, the `n`-th of a scenario sent by `route`.
    async fn admin_via(
        &self,
        route: Route<'_>,
        n: usize,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.route(route, n)))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        Reply::read(request.send().await.expect("the request is sent")).await
    }

    /// `GET /v1/auth/me` with an API key, sent to instance `n mod 3`.
    async fn me_with_key(&self, n: usize, key: &str) -> Reply {
        let request = self
            .http
            .get(format!("{}/v1/auth/me", self.base(n)))
            .header("x-api-key", key);
        Reply::read(request.send().await.expect("the request is sent")).await
    }

    async fn created(&self, n: usize, path: &str, body: &Value) -> Value {
        let reply = self.admin(n, Method::POST, path, Some(body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "POST {path}: {reply:?}");
        reply.body
    }

    /// A registered client's id and key.
    async fn register_client(
        &self,
        n: usize,
        name: &str,
        per_minute: u32,
        burst: u32,
    ) -> (String, String) {
        let client = self
            .created(
                n,
                "/v1/clients",
                &json!({
                    "name": name,
                    "email": format!("{}@multi-instance.test", name.to_lowercase()),
                    "rate_limit": {"requests_per_minute": per_minute, "burst": burst},
                }),
            )
            .await;
        (
            client["id"].as_str().expect("an id").to_owned(),
            client["api_key"].as_str().expect("a key").to_owned(),
        )
    }

    async fn count(&self, sql: &str) -> i64 {
        let pool = self.database.pool(1).expect("a pool");
        count(&pool, sql).await.expect("the count query runs")
    }
}

/// How a scenario spreads its requests: round-robin over the instances itself, or
/// through the load balancer.
#[derive(Clone, Copy)]
enum Route<'a> {
    RoundRobin,
    Through(&'a Balancer),
}

/// `haproxy` with the repository's `docker/haproxy.cfg`, in front of the fleet.
struct Balancer {
    port: u16,
    log: PathBuf,
    _process: Child,
}

impl Balancer {
    /// Starts `haproxy` in front of `instances`, or says why it cannot and
    /// returns `None` where it is not installed.
    async fn start_or_skip(instances: &[Instance], logs: &Path) -> Option<Self> {
        let Some(haproxy) = find_haproxy() else {
            eprintln!(
                "skipping the load-balancer scenarios: haproxy is not installed (apt-get install haproxy)"
            );
            return None;
        };
        let port = free_port();
        let ports: Vec<u16> = instances.iter().map(|i| i.port).collect();
        let source = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docker/haproxy.cfg"),
        )
        .expect("docker/haproxy.cfg is readable");
        let config = logs.join("haproxy.cfg");
        std::fs::write(&config, render_haproxy_config(&source, port, &ports))
            .expect("the rendered configuration is written");
        let log = logs.join("haproxy.log");
        let output = std::fs::File::create(&log).expect("a log file");
        let process = Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::from(output.try_clone().expect("a second handle")))
            .stderr(Stdio::from(output))
            .kill_on_drop(true)
            .spawn()
            .expect("haproxy starts");
        let balancer = Self {
            port,
            log,
            _process: process,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let alive = http
                .get(format!("{}/healthz", balancer.base()))
                .send()
                .await;
            if alive.is_ok_and(|r| r.status() == StatusCode::OK) {
                return Some(balancer);
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not serve; its log:\n{}",
                balancer.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first line of the log saying that `server` went `state` (UP, DOWN),
    /// waiting for it at most `timeout`.
    async fn await_state(&self, server: &str, state: &str, timeout: Duration) -> Option<String> {
        let said = format!("Server ordo/{server} is {state}");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(&said)) {
                return Some(line.to_owned());
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn find_haproxy() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("haproxy"))
        .find(|candidate| candidate.is_file())
}

/// `docker/haproxy.cfg` for this machine: it listens on `port` of the loopback
/// interface, and its servers are the instances on `servers` instead of the
/// replicas Docker's DNS names. Everything else — the `/readyz` check, its
/// interval, the timeouts, the retries, the balance algorithm — is the file's.
fn render_haproxy_config(config: &str, port: u16, servers: &[u16]) -> String {
    let mut rendered = String::new();
    let (mut bound, mut served) = (false, false);
    for line in config.lines() {
        let setting = line.trim_start();
        if setting.starts_with("bind :8080") {
            rendered.push_str(&format!("    bind 127.0.0.1:{port}\n"));
            bound = true;
        } else if setting.starts_with("server-template ordo ") {
            for (i, server) in servers.iter().enumerate() {
                rendered.push_str(&format!(
                    "    server ordo{} 127.0.0.1:{server} check\n",
                    i + 1
                ));
            }
            served = true;
        } else {
            rendered.push_str(line);
            rendered.push('\n');
        }
    }
    assert!(
        bound && served,
        "docker/haproxy.cfg has changed shape (no `bind :8080` or no `server-template ordo` line): update render_haproxy_config"
    );
    rendered
}

fn id(resource: &Value) -> &str {
    resource["id"].as_str().expect("an id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_on_one_database_and_one_redis_keep_every_guarantee() {
    let Some(redis) = RedisServer::start_or_skip("the multi-instance suite") else {
        return;
    };
    let started = Instant::now();
    let mut fleet = Fleet::start(redis).await;
    eprintln!("three instances ready after {:?}", started.elapsed());

    // The job runs every second while the other scenarios load the fleet.
    let jobs_since = start_a_job_every_second(&fleet).await;

    let product = fleet
        .created(
            0,
            "/v1/products",
            &json!({"sku": "SVC-MULTI", "name": "Inspection", "kind": "service", "price_minor": 1000}),
        )
        .await;
    let product = id(&product).to_owned();

    let balancer = Balancer::start_or_skip(&fleet.instances, &fleet.logs).await;

    fifty_creates_for_one_customer_make_one_order(&fleet, &product, Route::RoundRobin).await;
    two_hundred_creates_get_gapless_numbers(&fleet, &product).await;
    a_burst_plus_one_is_refused_once(&fleet).await;
    a_rotated_key_is_refused_everywhere_within_the_bound(&fleet).await;
    if let Some(balancer) = &balancer {
        fifty_creates_for_one_customer_make_one_order(&fleet, &product, Route::Through(balancer))
            .await;
        a_stopped_instance_is_taken_out_while_requests_keep_succeeding(&mut fleet, balancer).await;
    }
    each_due_job_run_happens_once(&fleet, jobs_since).await;
    hits_are_counted_once_through_a_rolling_restart(&mut fleet).await;

    eprintln!("the multi-instance suite took {:?}", started.elapsed());
    let _ = std::fs::remove_dir_all(&fleet.logs);
    drop(fleet.redis);
}

async fn fifty_creates_for_one_customer_make_one_order(
    fleet: &Fleet,
    product: &str,
    route: Route<'_>,
) {
    let email = match route {
        Route::RoundRobin => "spacing@multi-instance.test",
        Route::Through(_) => "spacing-balanced@multi-instance.test",
    };
    let customer = fleet
        .created(
            1,
            "/v1/customers",
            &json!({"name": "Spacing", "email": email, "city": "Oslo"}),
        )
        .await;
    let customer = id(&customer);
    let base: DateTime<Utc> = "2031-03-01T09:00:00Z".parse().expect("an instant");

    // Each asks for another minute of one morning: any two lie within 3 hours.
    let replies = join_all((0..50).map(|i| {
        let body = json!({
            "customer_id": customer,
            "scheduled_at": base + chrono::TimeDelta::minutes(i),
            "items": [{"product_id": product, "quantity": 1}],
        });
        async move {
            fleet
                .admin_via(
                    route,
                    usize::try_from(i).expect("small"),
                    Method::POST,
                    "/v1/orders",
                    Some(&body),
                )
                .await
        }
    }))
    .await;

    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let too_close = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT && r.code() == "order_too_close")
        .count();
    assert_eq!(
        (created, too_close),
        (1, 49),
        "{:?}",
        replies
            .iter()
            .map(|r| (r.status, r.code()))
            .collect::<Vec<_>>()
    );
    let listed = fleet
        .admin(
            2,
            Method::GET,
            &format!("/v1/orders?customer_id={customer}"),
            None,
        )
        .await;
    assert_eq!(
        listed.body["items"].as_array().map(Vec::len),
        Some(1),
        "{listed:?}"
    );
}

async fn two_hundred_creates_get_gapless_numbers(fleet: &Fleet, product: &str) {
    const ORDERS: usize = 200;
    let customers = join_all((0..ORDERS).map(|i| async move {
        let body = json!({
            "name": format!("Numbering {i}"),
            "email": format!("numbering-{i}@multi-instance.test"),
            "city": "Jakarta",
        });
        id(&fleet.created(i, "/v1/customers", &body).await).to_owned()
    }))
    .await;

    let replies = join_all(customers.iter().enumerate().map(|(i, customer)| {
        let body = json!({
            "customer_id": customer,
            "scheduled_at": "2031-04-01T09:00:00Z",
            "items": [{"product_id": product, "quantity": 1}],
        });
        async move {
            fleet
                .admin(i, Method::POST, "/v1/orders", Some(&body))
                .await
        }
    }))
    .await;
    let statuses: Vec<StatusCode> = replies.iter().map(|r| r.status).collect();
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );

    // Every order of the database (these and the one before), by day: each
    // day's running numbers are 1..=n, so none is missing or given twice.
    let mut numbers: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/v1/orders?limit=200&cursor={cursor}"),
            None => "/v1/orders?limit=200".to_owned(),
        };
        let page = fleet.admin(0, Method::GET, &path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        for order in page.body["items"].as_array().expect("items") {
            let number = order["number"].as_str().expect("a number");
            let (day, running) = number.rsplit_once('-').expect("ORD-YYYYMMDD-NNNNNN");
            numbers
                .entry(day.to_owned())
                .or_default()
                .push(running.parse().expect("a running number"));
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let total: usize = numbers.values().map(Vec::len).sum();
    assert_eq!(total, ORDERS + 1);
    for (day, mut running) in numbers {
        running.sort_unstable();
        let expected: Vec<u32> = (1..=u32::try_from(running.len()).expect("few")).collect();
        assert_eq!(running, expected, "the numbers of {day}");
    }
}

async fn a_burst_plus_one_is_refused_once(fleet: &Fleet) {
    const BURST: usize = 30;
    // One a minute: nothing refills while the test runs.
    let (_, key) = fleet
        .register_client(0, "Bursting", 1, u32::try_from(BURST).expect("small"))
        .await;
    let replies = join_all((0..=BURST).map(|i| fleet.me_with_key(i, &key))).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let limited: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(
        (ok, limited.len()),
        (BURST, 1),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(limited[0].code(), "rate_limited");
}

async fn a_rotated_key_is_refused_everywhere_within_the_bound(fleet: &Fleet) {
    let (client, old_key) = fleet.register_client(1, "Rotating", 600, 100).await;
    // Every instance has resolved (and remembers) the old key.
    for n in 0..INSTANCES {
        let me = fleet.me_with_key(n, &old_key).await;
        assert_eq!(me.status, StatusCode::OK, "instance {n}: {me:?}");
    }

    let rotated = fleet
        .admin(
            0,
            Method::POST,
            &format!("/v1/clients/{client}/rotate-key"),
            None,
        )
        .await;
    let rotated_at = Instant::now();
    assert_eq!(rotated.status, StatusCode::OK, "{rotated:?}");
    let new_key = rotated.body["api_key"].as_str().expect("a new key");

    // At once on the instance that rotated it …
    let here = fleet.me_with_key(0, &old_key).await;
    assert_eq!(here.status, StatusCode::UNAUTHORIZED, "{here:?}");
    // … and within the cache's TTL on the others.
    for n in 1..INSTANCES {
        let refused_after = loop {
            let sent_after = rotated_at.elapsed();
            let me = fleet.me_with_key(n, &old_key).await;
            if me.status == StatusCode::UNAUTHORIZED {
                break sent_after;
            }
            assert_eq!(me.status, StatusCode::OK, "instance {n}: {me:?}");
            // Every instance read the key before the rotation, so its entry is
            // older than `rotated_at`: accepting a request sent a TTL later would
            // break the bound.
            assert!(
                sent_after < API_KEY_CACHE_TTL + MEASURING_SLACK,
                "instance {n} still took the rotated key in a request sent {sent_after:?} after the rotation"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        eprintln!(
            "instance {n} refused the rotated key in a request sent {refused_after:?} after the rotation"
        );
    }
    for n in 0..INSTANCES {
        let me = fleet.me_with_key(n, new_key).await;
        assert_eq!(
            me.status,
            StatusCode::OK,
            "the new key on instance {n}: {me:?}"
        );
    }
}

/// Makes `expire-baskets` due every second; the moment from which its runs count.
async fn a_stopped_instance_is_taken_out_while_requests_keep_succeeding(
    fleet: &mut Fleet,
    balancer: &Balancer,
) {
    const LOADERS: usize = 4;
    let stopping = INSTANCES - 1;
    let server = format!("ordo{}", stopping + 1);
    let (_, key) = fleet.register_client(0, "Balanced", 600_000, 100_000).await;
    let stop = Arc::new(AtomicBool::new(false));
    // Requests through the balancer the whole time: each must be answered 200.
    let loaders: Vec<_> = (0..LOADERS)
        .map(|_| {
            let (http, key, stop) = (fleet.http.clone(), key.clone(), stop.clone());
            let url = format!("{}/v1/auth/me", balancer.base());
            tokio::spawn(async move {
                let (mut served, mut failed) = (0_u64, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let sent = http.get(&url).header("x-api-key", &key).send().await;
                    match sent {
                        Ok(response) if response.status() == StatusCode::OK => served += 1,
                        Ok(response) => failed.push(format!("{:?}", Reply::read(response).await)),
                        Err(e) => failed.push(format!("{e:#}")),
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                (served, failed)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let instance = &mut fleet.instances[stopping];
    let stopping_since = Instant::now();
    instance.terminate().await;
    let exited_after = stopping_since.elapsed();
    // Taken out by its answers to the check while it still served (503 while
    // draining), not by refusing connections after it stopped.
    let down = balancer
        .await_state(&server, "DOWN", Duration::ZERO)
        .await
        .unwrap_or_else(|| {
            panic!(
                "the balancer had not taken {server} out when it exited {exited_after:?} after SIGTERM; its log:\n{}",
                balancer.log()
            )
        });
    assert!(down.contains("503"), "{down}");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::Relaxed);
    let mut served = 0;
    for loader in loaders {
        let (ok, failed) = loader.await.expect("a loader ran to its end");
        assert!(
            failed.is_empty(),
            "requests through the balancer failed: {failed:?}"
        );
        served += ok;
    }
    assert!(served > 0, "no request went through the balancer");
    eprintln!(
        "{served} requests through the balancer while {server} stopped (exited {exited_after:?} after SIGTERM); haproxy: {down}"
    );

    fleet.start_instance(stopping).await;
    let up = balancer
        .await_state(&server, "UP", Duration::from_secs(10))
        .await;
    assert!(
        up.is_some(),
        "the balancer did not take {server} back; its log:\n{}",
        balancer.log()
    );
}

async fn start_a_job_every_second(fleet: &Fleet) -> DateTime<Utc> {
    let since = Utc::now();
    let changed = fleet
        .admin(
            0,
            Method::PATCH,
            "/v1/jobs/expire-baskets",
            Some(&json!({"schedule": "* * * * * *", "enabled": true})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    since
}

async fn each_due_job_run_happens_once(fleet: &Fleet, since: DateTime<Utc>) {
    // At least a few seconds of due instants, whatever the scenarios before took.
    let enabled_for = (Utc::now() - since).to_std().unwrap_or_default();
    if let Some(rest) = Duration::from_secs(5).checked_sub(enabled_for) {
        tokio::time::sleep(rest).await;
    }
    let disabled = fleet
        .admin(
            1,
            Method::PATCH,
            "/v1/jobs/expire-baskets",
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{disabled:?}");
    let until = Utc::now();

    // The last run may still be finishing.
    let deadline = Instant::now() + Duration::from_secs(10);
    let runs = loop {
        let page = fleet
            .admin(
                2,
                Method::GET,
                "/v1/jobs/expire-baskets/runs?limit=200",
                None,
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        let runs: Vec<Value> = page.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|run| run["trigger"] == "schedule")
            .cloned()
            .collect();
        let finished = runs
            .iter()
            .all(|run| run["status"] == "succeeded" || run["status"] == "failed");
        if finished || Instant::now() > deadline {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let due: Vec<DateTime<Utc>> = runs
        .iter()
        .map(|run| {
            run["requested_at"]
                .as_str()
                .and_then(|at| at.parse().ok())
                .expect("requested_at")
        })
        .filter(|at| *at > since && *at <= until)
        .collect();
    let distinct: HashSet<&DateTime<Utc>> = due.iter().collect();
    assert_eq!(
        distinct.len(),
        due.len(),
        "a due instant ran twice: {runs:#?}"
    );
    let seconds = (until - since).num_seconds();
    // Instants that fall due while a run still runs are covered by its next run
    // (never two at once), so a slow machine sees fewer runs; never one twice.
    assert!(
        due.len() >= 3,
        "{} runs in {seconds} s of a job due every second: {runs:#?}",
        due.len()
    );
    for run in &runs {
        assert_eq!(run["status"], "succeeded", "{run:#}");
        assert_eq!(run["attempts"], 1, "{run:#}");
    }
    let mut by_instance: BTreeMap<&str, usize> = BTreeMap::new();
    for run in &runs {
        *by_instance
            .entry(run["instance"].as_str().unwrap_or("?"))
            .or_default() += 1;
    }
    eprintln!(
        "{} scheduled runs in {seconds} s, by instance: {by_instance:?}",
        due.len()
    );
}

async fn hits_are_counted_once_through_a_rolling_restart(fleet: &mut Fleet) {
    const HITS_PER_REPORT: u64 = 10;
    const REPORTERS: usize = 4;
    let (client, key) = fleet
        .register_client(2, "Reporting", 600_000, 100_000)
        .await;
    let accepted = Arc::new(AtomicU64::new(0));
    let unserved = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let bases: Vec<String> = fleet.instances.iter().map(Instance::base).collect();
    let report: Value = (0..HITS_PER_REPORT)
        .map(|i| json!({"endpoint": format!("/rolling/{i}"), "method": "POST", "status": 201}))
        .collect();

    // Reporters go round the instances, as a load balancer would; a request to an
    // instance that is down (refused connection) or going down (503) was not
    // accepted, and the reporter goes on with the next instance.
    let reporters: Vec<_> = (0..REPORTERS)
        .map(|offset| {
            let (http, key, bases, report) = (
                fleet.http.clone(),
                key.clone(),
                bases.clone(),
                report.clone(),
            );
            let (accepted, unserved, stop) = (accepted.clone(), unserved.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = offset;
                while !stop.load(Ordering::Relaxed) {
                    let sent = http
                        .post(format!("{}/v1/logs", bases[n % bases.len()]))
                        .header("x-api-key", &key)
                        .json(&report)
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == StatusCode::ACCEPTED => {
                            let reply = Reply::read(response).await;
                            let count = reply.body["accepted"].as_u64().expect("accepted");
                            assert_eq!(count, HITS_PER_REPORT);
                            accepted.fetch_add(count, Ordering::Relaxed);
                        }
                        Ok(response) => {
                            let reply = Reply::read(response).await;
                            assert_eq!(
                                reply.status,
                                StatusCode::SERVICE_UNAVAILABLE,
                                "only a draining instance may refuse a report: {reply:?}"
                            );
                            unserved.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            unserved.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                    n += 1;
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    for index in 0..INSTANCES {
        let before = accepted.load(Ordering::Relaxed);
        fleet.instances[index].terminate().await;
        fleet.start_instance(index).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let during = accepted.load(Ordering::Relaxed) - before;
        assert!(
            during > 0,
            "no report was accepted while instance {index} restarted"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for reporter in reporters {
        reporter.await.expect("a reporter ran to its end");
    }
    // A graceful stop writes everything accepted: after it, the database holds
    // the final figures.
    for instance in &mut fleet.instances {
        instance.terminate().await;
    }

    let accepted = accepted.load(Ordering::Relaxed);
    eprintln!(
        "{accepted} hits accepted through a rolling restart ({} reports not served)",
        unserved.load(Ordering::Relaxed)
    );
    let reported = fleet
        .count(&format!(
            "SELECT count(*) AS n FROM activity_hits WHERE source = 'reported' AND principal_id = '{client}'"
        ))
        .await;
    assert_eq!(
        u64::try_from(reported).expect("a count"),
        accepted,
        "every accepted hit is stored once"
    );
    let raw = fleet
        .count(&format!(
            "SELECT count(*) AS n FROM activity_hits WHERE principal_id = '{client}'"
        ))
        .await;
    let hourly = fleet
        .count(&format!(
            "SELECT coalesce(sum(requests), 0)::bigint AS n FROM activity_hourly WHERE principal_id = '{client}'"
        ))
        .await;
    assert_eq!(hourly, raw, "the hourly counts count each stored hit once");
}

//! `ordo-bench`: how fast Ordo is, and how close to what the database allows.
//!
//! Each scenario runs twice at the same concurrency for the same time: once
//! against Ordo over HTTP, once as a reference that sends the same SQL straight to
//! PostgreSQL over a pool of the same size. The ratio Ordo ÷ reference is the
//! figure to compare across machines and commits; absolute numbers depend on the
//! machine (load generator, server and database share its cores).

mod checkout;
mod hits;
mod http1;
mod load;
mod reference;
mod reports;
mod scale_out;
mod scenarios;
mod seed;
mod store_round_trip;
mod usage;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use ordo_crypto::DataKeyring;
use ordo_domain::auth::{CreateUserError, Role};
use ordo_domain::clients::{ClientName, ClientRateLimit, IpAllowList, NewClient};
use ordo_domain::customers::Email;
use ordo_postgres::{
    Durability, LocalCluster, LocalClusterConfig, PoolConfig, connect_pool, run_migrations,
};
use ordo_server::{Adapters, Services, Settings};
use serde::Serialize;

use crate::load::{LoadShape, Measurement};
use crate::reference::ReferencePool;
use crate::scenarios::{Scenario, Target};

// The allocator `ordo` runs with (see its main.rs): this binary is also the
// server it measures.
#[cfg(unix)]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Load scenarios against Ordo, each with a reference measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "ordo-bench", version)]
struct Cli {
    /// Benchmark a running Ordo at this base URL instead of starting one (needs
    /// --database-url, the database it uses, for seeding and the reference).
    #[arg(long, requires = "database_url")]
    url: Option<String>,
    /// The database to seed and to run the reference against; a throw-away local
    /// cluster when omitted.
    #[arg(long)]
    database_url: Option<String>,
    /// The process id of the server given with --url, to report its peak RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Discarded warm-up seconds per run.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Connections in Ordo's pool, and the reference's connections.
    #[arg(long, default_value_t = 16)]
    pool_size: usize,
    /// Drive `health`, `me-*`, `get-order` and `list-orders` with a lean HTTP/1.1
    /// client (one hyper connection per worker) instead of reqwest, the client the
    /// goals were set with: the generator then takes less of the shared cores,
    /// which shows more of what each request costs Ordo.
    #[arg(long)]
    lean_client: bool,
    /// Customers to seed.
    #[arg(long, default_value_t = 2000)]
    customers: usize,
    /// Orders to seed.
    #[arg(long, default_value_t = 10000)]
    orders: usize,
    /// Raw hits to seed before the run, for `usage-top` and `usage-daily`
    /// (`ordo-bench usage` compares 100 000 with 10 000 000 in one run).
    #[arg(long, default_value_t = 100_000)]
    seed_hits: u64,
    /// Scenarios to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// A smoke run that finishes in well under a minute: 1 s warm-up, 2 s per
    /// run, a small data set.
    #[arg(long)]
    quick: bool,
    /// The Redis to measure the shared rate-limit store's round trip against; a
    /// throw-away `redis-server` when omitted (skipped where there is none).
    #[arg(long)]
    redis_url: Option<String>,
    /// Instead of the scenarios: the authenticated get-order load on 1 server,
    /// then on this many servers sharing the database, with the rate limits in
    /// Redis (--redis-url, or a throw-away redis-server) and the requests spread
    /// over them (--spread); prints both side by side (goal: within 10 %), then
    /// the same pair with each server's limits in its own memory (no
    /// coordination).
    #[arg(long, value_parser = clap::value_parser!(u16).range(2..=16))]
    instances: Option<u16>,
    /// With --instances: how the requests are spread over the servers.
    #[arg(long, value_enum, default_value_t = scale_out::Spread::LeastBusy)]
    spread: scale_out::Spread,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<BenchCommand>,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// The reports scenario: generates synthetic sales in the database (1 000 000
    /// orders unless told otherwise), then times each report over HTTP beside a
    /// plain `SELECT count(*) FROM orders` on the same data.
    Reports(reports::ReportsArgs),
    /// Generates synthetic sales into the database at --database-url (which must
    /// be migrated, as `ordo migrate` does), to try the reports on, and exits.
    SeedSales(reports::SeedArgs),
    /// The usage figures' p99 with few and with many raw hits loaded (100 000 and
    /// 10 000 000 unless told otherwise), with the server's cache off and on, and
    /// the server's peak memory with the many.
    Usage(usage::UsageArgs),
    /// Generates raw hits with their hourly counts into the database at
    /// --database-url (which must be migrated, as `ordo migrate` does), to try the
    /// usage figures on, and exits.
    SeedHits(usage::SeedHitsArgs),
    /// Runs Ordo itself (the bench starts its server as a child process so that the
    /// server's memory can be measured apart from the load generator's).
    #[command(name = "__serve", hide = true)]
    Serve {
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        pool_size: usize,
        #[arg(long)]
        upstream_url: Option<String>,
        /// How long the server caches usage answers (0: not at all).
        #[arg(long, default_value_t = 0)]
        usage_cache_ttl_ms: u64,
    },
}

#[derive(Debug, Serialize)]
struct ScenarioResult {
    scenario: &'static str,
    ordo: Measurement,
    reference: Option<Measurement>,
    ratio: Option<f64>,
    goal: Option<f64>,
    server_peak_rss_mib: Option<f64>,
    /// `log-batch`: hits stored per second, from the first request until the last
    /// hit was stored.
    persisted_hits_per_second: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    date: String,
    cores: usize,
    concurrency: usize,
    duration_seconds: f64,
    warmup_seconds: f64,
    pool_size: usize,
    /// The load client of the read scenarios: `reqwest` or `lean`.
    read_client: &'static str,
    customers: usize,
    orders: usize,
    seed_hits: u64,
    results: Vec<ScenarioResult>,
    /// One rate-limit decision in each store.
    rate_limit_round_trip: Vec<store_round_trip::RoundTrip>,
}

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match cli.command.take() {
        Some(BenchCommand::Serve {
            database_url,
            pool_size,
            upstream_url,
            usage_cache_ttl_ms,
        }) => return serve_child(database_url, pool_size, upstream_url, usage_cache_ttl_ms),
        Some(BenchCommand::Reports(args)) => {
            return runtime()?.block_on(reports::run(args, cli.database_url));
        }
        Some(BenchCommand::SeedSales(args)) => return runtime()?.block_on(reports::seed(args)),
        Some(BenchCommand::Usage(args)) => {
            let shape = LoadShape {
                concurrency: cli.concurrency,
                warmup: Duration::from_secs_f64(cli.warmup),
                duration: Duration::from_secs_f64(cli.duration),
            };
            anyhow::ensure!(
                cli.database_url.is_none() && cli.url.is_none(),
                "the usage scenario loads two databases of its own, in a throw-away cluster"
            );
            return runtime()?.block_on(usage::run(args, shape));
        }
        Some(BenchCommand::SeedHits(args)) => return runtime()?.block_on(usage::seed(args)),
        None => {}
    }
    if cli.quick {
        cli.duration = 2.0;
        cli.warmup = 1.0;
        cli.customers = cli.customers.min(200);
        cli.orders = cli.orders.min(1000);
    }
    runtime()?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let started = Instant::now();
    let shape = LoadShape {
        concurrency: cli.concurrency,
        warmup: Duration::from_secs_f64(cli.warmup),
        duration: Duration::from_secs_f64(cli.duration),
    };
    let scenarios = if cli.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        cli.scenarios.clone()
    };

    let (cluster, database_url) = bench_database(cli.database_url.as_deref()).await?;
    let pool = connect_pool(
        &database_url,
        &PoolConfig {
            wait: Duration::from_secs(30),
            ..PoolConfig::with_max_size(cli.pool_size)
        },
    )?;
    let data_key = bench_data_key();
    let services = bench_services(&pool, &data_key)?;
    eprintln!(
        "seeding {} customers and {} orders …",
        cli.customers, cli.orders
    );
    let data = seed::create(
        &services,
        seed::Scale {
            customers: cli.customers,
            orders: cli.orders,
        },
    )
    .await?;

    create_bench_user(&services).await?;
    // The API clients of `me-key`, each at the highest limit a client may have
    // (10 000 requests a second): the load is spread over enough of them that the
    // scenario measures resolving a key and checking its limit, not being refused.
    let mut bench_keys = Vec::with_capacity(BENCH_CLIENTS);
    for n in 0..BENCH_CLIENTS {
        let issued = services
            .clients
            .register(NewClient {
                name: ClientName::parse(&format!("ordo-bench-{n}"))?,
                email: Email::parse(&format!("bench-{n}@ordo.bench"))?,
                ip_allowlist: IpAllowList::parse(&["127.0.0.1", "::1"])?,
                rate_limit: ClientRateLimit::new(600_000, 100_000)?,
            })
            .await
            .map_err(|e| anyhow::anyhow!("registering a bench client: {e}"))?;
        bench_keys.push(issued.api_key);
    }
    create_bench_admin(&services).await?;
    if let Some(instances) = cli.instances {
        let outcome = scale_out_mode(&cli, instances, &database_url, &data_key, data, shape).await;
        drop(services);
        if let Some(cluster) = cluster {
            tokio::task::spawn_blocking(move || cluster.stop()).await?;
        }
        eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
        return outcome;
    }
    if scenarios
        .iter()
        .any(|s| matches!(s, Scenario::UsageTop | Scenario::UsageDaily))
    {
        usage::seed_hits(&pool, cli.seed_hits).await?;
    }

    // The checkout scenarios need the server to call a simulator this process
    // configures: only with the server the bench starts.
    let checkout_bench = if cli.url.is_none()
        && scenarios
            .iter()
            .any(|s| matches!(s, Scenario::Checkout | Scenario::CheckoutFlaky))
    {
        Some(checkout::CheckoutBench::start(services.clone(), data.customers.clone()).await?)
    } else {
        None
    };
    let mut child = None;
    let base_url = match &cli.url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let upstream_url = checkout_bench
                .as_ref()
                .map(checkout::CheckoutBench::upstream_url);
            let extras = ServerExtras {
                upstream_url: upstream_url.as_deref(),
                ..ServerExtras::default()
            };
            let (process, port) = spawn_server(&database_url, cli.pool_size, &data_key, extras)?;
            child = Some(process);
            format!("http://127.0.0.1:{port}")
        }
    };
    let server_pid = child.as_ref().map(Child::id).or(cli.server_pid);
    let bearer = |token: String| {
        http1::credential(reqwest::header::AUTHORIZATION, &format!("Bearer {token}"))
    };
    let user = bearer(login(&base_url, BENCH_EMAIL).await?)?;
    let admin = bearer(login(&base_url, BENCH_ADMIN_EMAIL).await?)?;
    let keys = bench_keys
        .iter()
        .map(|key| {
            http1::credential(
                reqwest::header::HeaderName::from_static("x-api-key"),
                &key.expose(),
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let lean = |credential: &http1::FixedHeader| -> anyhow::Result<Arc<http1::LeanClient>> {
        Ok(Arc::new(http1::LeanClient::new(
            &base_url,
            Some(credential.clone()),
            cli.concurrency,
        )?))
    };
    let lean_bearer = cli.lean_client.then(|| lean(&user)).transpose()?;
    let lean_keys = keys
        .iter()
        .filter(|_| cli.lean_client)
        .map(lean)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let keep_alive = |credential: Option<http1::FixedHeader>| {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some((name, value)) = credential {
            headers.insert(name, value);
        }
        reqwest::Client::builder()
            .pool_max_idle_per_host(cli.concurrency * 2)
            .timeout(Duration::from_secs(30))
            .default_headers(headers)
            .build()
    };
    let target = Target {
        lean: lean_bearer,
        lean_keys,
        base_url,
        client: keep_alive(Some(user))?,
        admin: keep_alive(Some(admin))?,
        key_clients: keys
            .into_iter()
            .map(|key| keep_alive(Some(key)))
            .collect::<Result<Vec<_>, _>>()?,
        anonymous: keep_alive(None)?,
        login: serde_json::json!({"email": BENCH_EMAIL, "password": BENCH_PASSWORD}),
        reference: Arc::new(ReferencePool::connect(&database_url, cli.pool_size).await?),
        data: Arc::new(data),
    };

    let mut results = Vec::new();
    for scenario in scenarios {
        eprintln!("running {} …", scenario.name());
        hits::settle(&database_url).await?;
        let batch_start = if scenario == Scenario::LogBatch {
            Some((hits::persisted(&database_url).await?, Instant::now()))
        } else {
            None
        };
        let ordo = match (scenario, &checkout_bench) {
            (Scenario::Checkout | Scenario::CheckoutFlaky, None) => {
                eprintln!(
                    "skipped {}: it needs the server the bench starts (no --url)",
                    scenario.name()
                );
                continue;
            }
            (Scenario::Checkout, Some(bench)) => bench.run(0.0, &target, shape).await?,
            (Scenario::CheckoutFlaky, Some(bench)) => bench.run(0.3, &target, shape).await?,
            _ => scenarios::run_ordo(scenario, &target, shape).await,
        };
        let persisted_hits_per_second = match batch_start {
            Some((before, started)) => {
                let (after, settled) = hits::settled(&database_url).await?;
                let seconds = settled.duration_since(started).as_secs_f64();
                #[allow(clippy::cast_precision_loss)] // hit counts are far below 2^52
                Some((after - before) as f64 / seconds.max(f64::EPSILON))
            }
            None => None,
        };
        let server_peak_rss_mib = server_pid.and_then(peak_rss_mib);
        hits::settle(&database_url).await?;
        let reference = scenarios::run_reference(scenario, &target, shape).await;
        let ratio = if matches!(
            scenario,
            Scenario::MeJwt | Scenario::MeKey | Scenario::LogOne
        ) {
            // ÷ health: what resolving the caller (and, for a user, reading it) costs.
            results
                .iter()
                .find(|r: &&ScenarioResult| r.scenario == Scenario::Health.name())
                .map(|h| h.ordo.requests_per_second)
                .filter(|rps| *rps > 0.0)
                .map(|rps| ordo.requests_per_second / rps)
        } else {
            reference
                .as_ref()
                .filter(|r| r.requests_per_second > 0.0)
                .map(|r| ordo.requests_per_second / r.requests_per_second)
        };
        results.push(ScenarioResult {
            scenario: scenario.name(),
            ordo,
            reference,
            ratio,
            goal: scenario.goal(),
            server_peak_rss_mib,
            persisted_hits_per_second,
        });
    }

    eprintln!("timing rate-limit decisions in memory and in Redis …");
    let decisions = if cli.quick { 2_000 } else { 20_000 };
    let rate_limit_round_trip =
        store_round_trip::measure(cli.redis_url.as_deref(), decisions).await?;

    let report = Report {
        date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        cores: std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1),
        concurrency: cli.concurrency,
        duration_seconds: cli.duration,
        warmup_seconds: cli.warmup,
        pool_size: cli.pool_size,
        read_client: if cli.lean_client { "lean" } else { "reqwest" },
        customers: cli.customers,
        orders: cli.orders,
        seed_hits: cli.seed_hits,
        results,
        rate_limit_round_trip,
    };
    print_table(&report);
    print_login_note(&report);
    let measured = |name: Scenario| {
        report
            .results
            .iter()
            .find(|r| r.scenario == name.name())
            .map(|r| &r.ordo)
    };
    checkout::print_note(
        measured(Scenario::Checkout),
        measured(Scenario::CheckoutFlaky),
        checkout::deadline(),
    );
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(mut process) = child {
        let _ = process.kill();
        let _ = process.wait();
    }
    drop(services);
    drop(checkout_bench);
    if let Some(cluster) = cluster {
        tokio::task::spawn_blocking(move || cluster.stop()).await?;
    }
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `--instances N`: 1 and N servers side by side, with the rate limits shared
/// and each server's own, then the rate-limit decision in each store.
async fn scale_out_mode(
    cli: &Cli,
    instances: u16,
    database_url: &str,
    data_key: &str,
    data: seed::Dataset,
    shape: LoadShape,
) -> anyhow::Result<()> {
    let setup = scale_out::Setup {
        database_url,
        pool_size: cli.pool_size,
        data_key,
        redis_url: cli.redis_url.as_deref(),
        spread: cli.spread,
        shape,
        data: Arc::new(data),
    };
    let runs = scale_out::compare(&setup, usize::from(instances)).await?;
    let decisions = if cli.quick { 2_000 } else { 20_000 };
    let round_trips = store_round_trip::measure(cli.redis_url.as_deref(), decisions).await?;
    println!(
        "ordo-bench {} · {} cores · concurrency {} · {} s measured after {} s warm-up · pool {} and a worker per core, split over the instances",
        chrono::Utc::now().format("%Y-%m-%d"),
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1),
        cli.concurrency,
        cli.duration,
        cli.warmup,
        cli.pool_size,
    );
    scale_out::print(&runs, cli.spread);
    print_round_trips(&round_trips);
    if let Some(path) = &cli.json {
        let report = serde_json::json!({"scale_out": runs, "spread": cli.spread, "rate_limit_round_trip": round_trips});
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn print_round_trips(round_trips: &[store_round_trip::RoundTrip]) {
    let round_trips: Vec<String> = round_trips
        .iter()
        .map(|r| format!("{} p50 {} µs (p99 {} µs)", r.store, r.p50_us, r.p99_us))
        .collect();
    println!(
        "rate-limit decision, one at a time: {}",
        round_trips.join(" · ")
    );
}

fn print_table(report: &Report) {
    println!(
        "ordo-bench {} · {} cores · concurrency {} · {} s measured after {} s warm-up · pool {} · {} read client · {} customers, {} orders",
        report.date,
        report.cores,
        report.concurrency,
        report.duration_seconds,
        report.warmup_seconds,
        report.pool_size,
        report.read_client,
        report.customers,
        report.orders
    );
    println!(
        "{:<14} {:<9} {:>9} {:>8} {:>8} {:>9} {:>7} {:>9} {:>14}",
        "scenario",
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        "RSS MiB",
        "ratio (goal)"
    );
    let row = |scenario: &str, target: &str, m: &Measurement, rss: String, ratio: String| {
        println!(
            "{:<14} {:<9} {:>9.0} {:>8.2} {:>8.2} {:>9.2} {:>7} {:>9} {:>14}",
            scenario,
            target,
            m.requests_per_second,
            m.p50_ms,
            m.p99_ms,
            m.p999_ms,
            m.errors,
            rss,
            ratio
        );
    };
    for result in &report.results {
        let rss = result
            .server_peak_rss_mib
            .map(|r| format!("{r:.1}"))
            .unwrap_or_else(|| "-".into());
        let ratio = match (result.ratio, result.goal) {
            (Some(ratio), Some(goal)) => format!("{ratio:.2} (≥{goal})"),
            (Some(ratio), None) => format!("{ratio:.2}"),
            _ => "-".into(),
        };
        row(result.scenario, "ordo", &result.ordo, rss, ratio);
        if let Some(persisted) = result.persisted_hits_per_second {
            println!("{:<14} persisted {persisted:.0} hits/s (goal ≥ 200000)", "");
        }
        if let Some(reference) = &result.reference {
            row("", "reference", reference, "-".into(), String::new());
        }
    }
    print_round_trips(&report.rate_limit_round_trip);
}

/// The database to run against: `url`, or a new database in a throw-away local
/// cluster (returned, to be stopped at the end); migrated either way.
async fn bench_database(url: Option<&str>) -> anyhow::Result<(Option<LocalCluster>, String)> {
    let (cluster, database_url) = match url {
        Some(url) => (None, url.to_owned()),
        None => {
            let cluster = throwaway_cluster().await?;
            let url = migrated_database(&cluster, "bench").await?;
            return Ok((Some(cluster), url));
        }
    };
    run_migrations(&database_url).await?;
    Ok((cluster, database_url))
}

/// A local cluster in a temporary directory, without durability.
async fn throwaway_cluster() -> anyhow::Result<LocalCluster> {
    let data_dir =
        std::env::temp_dir().join(format!("ordo-bench-{}", uuid::Uuid::new_v4().simple()));
    Ok(LocalCluster::start(LocalClusterConfig {
        data_dir,
        durability: Durability::Ephemeral,
    })
    .await?)
}

/// The URL of database `name` in `cluster`, created and migrated.
async fn migrated_database(cluster: &LocalCluster, name: &str) -> anyhow::Result<String> {
    cluster.ensure_database(name).await?;
    let url = cluster.database_url(name);
    run_migrations(&url).await?;
    Ok(url)
}

/// Ordo's services over `pool`, sealing with `data_key` as the server will.
fn bench_services(pool: &ordo_postgres::PgPool, data_key: &str) -> anyhow::Result<Services> {
    let data_keys = DataKeyring::new(&data_key.to_owned().into(), None).context("ORDO_DATA_KEY")?;
    Services::assemble(
        &Adapters::postgres(pool, Arc::new(data_keys)),
        &Settings::default(),
    )
}

/// The user every scenario's requests are made as (kept when it exists).
async fn create_bench_user(services: &Services) -> anyhow::Result<()> {
    ensure_bench_user(services, BENCH_EMAIL, Role::Staff).await
}

/// The administrator the usage figures are read as (kept when it exists).
async fn create_bench_admin(services: &Services) -> anyhow::Result<()> {
    ensure_bench_user(services, BENCH_ADMIN_EMAIL, Role::Admin).await
}

/// A user with the bench's password, created unless it exists.
async fn ensure_bench_user(services: &Services, email: &str, role: Role) -> anyhow::Result<()> {
    match services.auth.create_user(email, BENCH_PASSWORD, role).await {
        Ok(_) | Err(CreateUserError::EmailTaken) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("creating the bench user {email}: {e}")),
    }
}

/// What limits the login figure, when the run measured it.
fn print_login_note(report: &Report) {
    let Some(login) = report
        .results
        .iter()
        .find(|r| r.scenario == Scenario::Login.name())
    else {
        return;
    };
    println!(
        "login: p50 {:.1} ms with {} logins in flight ({} cores). Each login is one Argon2id \
         verification (OWASP: 19 MiB, 2 passes, 1 lane) on a blocking thread, so one core \
         serves a login in about p50 and the machine about cores ÷ p50 logins a second; the \
         bench server lifts the login rate limits (30/min per IP, 1/min per e-mail) and the \
         anonymous per-address limit that would refuse this loop.",
        login.ordo.p50_ms,
        scenarios::login_concurrency(),
        report.cores,
    );
}

/// API clients the `me-key` load is spread over.
const BENCH_CLIENTS: usize = 8;
const BENCH_EMAIL: &str = "bench@ordo.bench";
const BENCH_ADMIN_EMAIL: &str = "bench-admin@ordo.bench";
const BENCH_PASSWORD: &str = "ordo-bench staff password";

/// Logs a bench user in; the access token.
async fn login(base_url: &str, email: &str) -> anyhow::Result<String> {
    let response = reqwest::Client::new()
        .post(format!("{base_url}/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": BENCH_PASSWORD}))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "logging in as {email}: {}",
        response.status()
    );
    let session: serde_json::Value = response.json().await?;
    session["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("the login answered no access token")
}

/// The data key the seeded customers are sealed under, which the server needs to
/// read them: `ORDO_DATA_KEY` when set (a server given by `--url` must use the same),
/// otherwise one made up for this run.
fn bench_data_key() -> String {
    std::env::var("ORDO_DATA_KEY").unwrap_or_else(|_| ordo_server::app::random_secret())
}

/// What a bench server gets beyond its database, pool and data key.
#[derive(Debug, Default, Clone, Copy)]
struct ServerExtras<'a> {
    /// The upstream it calls (its own sandbox simulator without).
    upstream_url: Option<&'a str>,
    /// How long it caches usage answers (0: not at all).
    usage_cache_ttl_ms: u64,
    /// Environment besides what it always gets.
    env: &'a [(&'a str, &'a str)],
}

/// Starts this executable as the Ordo server, with `extras`, and waits for the
/// port it reports.
fn spawn_server(
    database_url: &str,
    pool_size: usize,
    data_key: &str,
    extras: ServerExtras<'_>,
) -> anyhow::Result<(Child, u16)> {
    let pool_size = pool_size.to_string();
    let mut args = vec![
        "__serve",
        "--database-url",
        database_url,
        "--pool-size",
        &pool_size,
    ];
    let usage_cache_ttl_ms = extras.usage_cache_ttl_ms.to_string();
    args.extend(["--usage-cache-ttl-ms", &usage_cache_ttl_ms]);
    if let Some(url) = extras.upstream_url {
        args.extend(["--upstream-url", url]);
    }
    let mut child = Command::new(std::env::current_exe()?)
        .envs(extras.env.iter().copied())
        .args(args)
        .env("RUST_LOG", "warn")
        .env("ORDO_DATA_KEY", data_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the Ordo server")?;
    let stdout = child.stdout.take().context("the server's stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let port = line
        .trim()
        .strip_prefix("ORDO_BENCH_PORT=")
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("the server did not report its port (said {line:?})"))?;
    Ok((child, port))
}

/// The child's side: serve until the parent closes our stdin (or dies).
fn serve_child(
    database_url: String,
    pool_size: usize,
    upstream_url: Option<String>,
    usage_cache_ttl_ms: u64,
) -> anyhow::Result<()> {
    ordo_server::telemetry::init(ordo_server::LogFormat::Text);
    std::thread::spawn(|| {
        let mut sink = [0_u8; 64];
        while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    actix_web::rt::System::new().block_on(async move {
        let mut settings = Settings {
            sample_data: false,
            ..Settings::default()
        };
        settings.http.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        settings.database.url = Some(database_url.into());
        settings.database.pool_size = pool_size;
        settings.http.workers = std::env::var("ORDO_WORKERS")
            .ok()
            .and_then(|w| w.parse().ok());
        settings.upstream.url = upstream_url;
        // Made up for this run (the bench logs in to the server it started), or
        // given, so that several servers take one another's tokens.
        settings.auth.jwt_secret = Some(
            std::env::var("ORDO_JWT_SECRET")
                .unwrap_or_else(|_| ordo_server::app::random_secret())
                .into(),
        );
        // Several servers share their rate limits through it.
        settings.redis.url = std::env::var("ORDO_REDIS_URL").ok().map(Into::into);
        settings.auth.data_key = Some(
            std::env::var("ORDO_DATA_KEY")
                .context("the parent passes ORDO_DATA_KEY")?
                .into(),
        );
        settings.auth.access_ttl_secs = 24 * 3600;
        // Every request of the run is the bench user's: its limits are checked on
        // each (that cost is measured) but set far beyond what the run sends.
        settings.rate_limits.user = ordo_server::config::LimitSettings {
            requests_per_minute: 60_000_000,
            burst: 1_000_000,
        };
        // The usage scenarios measure the queries behind the figures, not the cache
        // in front of them, unless told to measure the cache.
        settings.activity.usage_cache_ttl_ms = usage_cache_ttl_ms;
        // The `login` scenario logs one user in from one address in a loop, which
        // the login limits exist to refuse; lifted so that the hash is measured.
        // A login is an anonymous caller too, limited per address.
        settings.rate_limits.login_per_ip = settings.rate_limits.user;
        settings.rate_limits.login_per_email = settings.rate_limits.user;
        settings.rate_limits.anonymous = settings.rate_limits.user;
        // No scheduled job runs beside the measured requests.
        settings.scheduler.enabled = false;
        let app = ordo_server::Application::build(settings).await?;
        println!("ORDO_BENCH_PORT={}", app.port());
        app.run_until_stopped().await
    })
}

/// The peak resident set size of a process, from `/proc/<pid>/status` (`VmHWM`).
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

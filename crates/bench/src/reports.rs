//! The reports scenario: a million synthetic orders and two years of hourly
//! request counts generated in the database, then each report requested over
//! HTTP one at a time, its median latency printed
//! beside that of a plain `SELECT count(*) FROM orders` measured in the same run
//! (the cheapest question one can ask of every order: what reading them costs on
//! this machine now), and beside the median of the report's statement run
//! straight on the database with the same parameters (the rest is Ordo's work:
//! decoding rows and writing JSON, dear in a debug build for thousands of rows).

use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Datelike, Months, TimeDelta, Utc};
use ordo_postgres::synthetic::{self, SyntheticActivity, SyntheticSales};
use ordo_postgres::{PoolConfig, connect_pool};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use crate::{
    BENCH_EMAIL, ServerExtras, bench_data_key, bench_database, bench_services, create_bench_user,
    login, spawn_server,
};

/// The scale of the synthetic sales.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Scale {
    /// Orders to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub orders: u32,
    /// Customers they are spread over.
    #[arg(long, default_value_t = 50_000)]
    pub customers: u32,
    /// Products they buy.
    #[arg(long, default_value_t = 500)]
    pub products: u32,
    /// Months up to now they are scheduled in (and the hourly request counts
    /// cover).
    #[arg(long, default_value_t = 24)]
    pub months: u32,
    /// Users with hourly request counts.
    #[arg(long, default_value_t = 50)]
    pub users: u32,
    /// API clients with hourly request counts.
    #[arg(long, default_value_t = 150)]
    pub clients: u32,
}

impl From<Scale> for SyntheticActivity {
    fn from(s: Scale) -> Self {
        Self {
            users: s.users,
            clients: s.clients,
            months: s.months,
        }
    }
}

impl From<Scale> for SyntheticSales {
    fn from(s: Scale) -> Self {
        Self {
            customers: s.customers,
            products: s.products,
            orders: s.orders,
            months: s.months,
        }
    }
}

/// `ordo-bench reports`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportsArgs {
    #[command(flatten)]
    scale: Scale,
    /// Timed requests of each report (after two untimed ones).
    #[arg(long, default_value_t = 20)]
    samples: usize,
}

/// `ordo-bench seed-sales`.
#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    /// The (migrated) database to add the sales to.
    #[arg(long)]
    database_url: String,
    #[command(flatten)]
    scale: Scale,
}

/// What each report is asked for: its default period (the last 30 days; monthly
/// sales: twelve months), as a dashboard asks.
const REPORTS: [(&str, &str); 5] = [
    ("top-customers", "/v1/reports/top-customers?limit=10"),
    ("sales-by-city", "/v1/reports/sales-by-city"),
    ("stock", "/v1/reports/stock"),
    ("monthly-sales", "/v1/reports/monthly-sales"),
    (
        "requests-per-hour",
        "/v1/reports/requests-per-hour?limit=10",
    ),
];

/// The statement behind each report of [`REPORTS`], with the parameters the
/// server binds for that request at `now`: what the database alone takes.
fn statement(report: &str, now: DateTime<Utc>) -> (&'static str, Vec<Box<dyn ToSql + Sync>>) {
    let month_ago = now - TimeDelta::days(30);
    let eur = || Box::new("EUR".to_owned());
    match report {
        "top-customers" => (
            ordo_postgres::TOP_CUSTOMERS,
            vec![
                Box::new(month_ago),
                Box::new(now),
                eur(),
                Box::new(10_i64),
                Box::new(false),
            ],
        ),
        "sales-by-city" => (
            ordo_postgres::SALES_BY_CITY,
            vec![Box::new(month_ago), Box::new(now), eur()],
        ),
        "stock" => (
            ordo_postgres::STOCK,
            vec![Box::new(month_ago), Box::new(now)],
        ),
        "monthly-sales" => {
            let first_of_month = now
                .date_naive()
                .with_day(1)
                .and_then(|day| day.checked_sub_months(Months::new(11)))
                .and_then(|day| day.and_hms_opt(0, 0, 0))
                .map_or(now, |midnight| midnight.and_utc());
            (
                ordo_postgres::MONTHLY_SALES,
                vec![Box::new(first_of_month), Box::new(now), eur()],
            )
        }
        _ => (
            ordo_postgres::REQUESTS_PER_HOUR,
            vec![Box::new(month_ago), Box::new(now), Box::new(10_i64)],
        ),
    }
}

/// Generates the sales into `args.database_url`.
///
/// # Errors
/// When the database cannot be reached or a statement fails.
pub async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let pool = connect_pool(&args.database_url, &PoolConfig::with_max_size(1))?;
    generate(&pool, args.scale).await
}

async fn generate(pool: &ordo_postgres::PgPool, scale: Scale) -> anyhow::Result<()> {
    eprintln!(
        "generating {} orders of {} customers and {} products over {} months …",
        scale.orders, scale.customers, scale.products, scale.months
    );
    let started = Instant::now();
    synthetic::generate(pool, scale.into()).await?;
    eprintln!(
        "generated in {:.1} s (vacuumed and analysed); now the hourly request counts of {} users and {} clients …",
        started.elapsed().as_secs_f64(),
        scale.users,
        scale.clients
    );
    let started = Instant::now();
    synthetic::generate_activity(pool, scale.into()).await?;
    eprintln!(
        "generated in {:.1} s (vacuumed and analysed)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs the scenario against `database_url`, or a throw-away cluster.
///
/// # Errors
/// When seeding, the server or a request fails.
pub async fn run(args: ReportsArgs, database_url: Option<String>) -> anyhow::Result<()> {
    let (cluster, database_url) = bench_database(database_url.as_deref()).await?;
    let pool = connect_pool(&database_url, &PoolConfig::with_max_size(2))?;
    generate(&pool, args.scale).await?;
    let data_key = bench_data_key();
    let services = bench_services(&pool, &data_key)?;
    create_bench_user(&services).await?;
    // The server seals the synthetic customers' contacts on its start.
    eprintln!("starting Ordo (it seals the new customers' contacts first) …");
    let (mut server, port) = spawn_server(&database_url, 4, &data_key, ServerExtras::default())?;
    let measured = measure(&args, &database_url, &format!("http://127.0.0.1:{port}")).await;
    stop(&mut server);
    drop(services);
    if let Some(cluster) = cluster {
        tokio::task::spawn_blocking(move || cluster.stop()).await?;
    }
    print(&args, &measured?);
    Ok(())
}

fn stop(server: &mut Child) {
    let _ = server.kill();
    let _ = server.wait();
}

struct Timing {
    name: &'static str,
    p50: Duration,
    max: Duration,
    rows: usize,
    /// The p50 of the report's statement run straight on the database.
    sql_p50: Option<Duration>,
}

async fn measure(
    args: &ReportsArgs,
    database_url: &str,
    base_url: &str,
) -> anyhow::Result<Vec<Timing>> {
    let token = login(base_url, BENCH_EMAIL).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let (db, driver) = tokio_postgres::connect(database_url, NoTls).await?;
    tokio::spawn(driver);
    // As Ordo's pool has it.
    db.batch_execute("SET jit = off").await?;
    let count = db.prepare("SELECT count(*) FROM orders").await?;
    let mut timings = Vec::new();
    let mut samples = Vec::with_capacity(args.samples);
    for round in 0..args.samples + 2 {
        let started = Instant::now();
        let row = db.query_one(&count, &[]).await?;
        let orders: i64 = row.get(0);
        if round >= 2 {
            samples.push(started.elapsed());
        }
        anyhow::ensure!(orders >= i64::from(args.scale.orders), "orders are missing");
    }
    timings.push(timing("select count(*)", samples, 1));
    for (name, path) in REPORTS {
        let mut samples = Vec::with_capacity(args.samples);
        let mut rows = 0;
        for round in 0..args.samples + 2 {
            let started = Instant::now();
            let response = http
                .get(format!("{base_url}{path}"))
                .bearer_auth(&token)
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            // Timed until the whole answer arrived; reading its JSON is the
            // client's work, not the server's.
            let bytes = response.bytes().await.context(path)?;
            if round >= 2 {
                samples.push(started.elapsed());
            }
            let body: serde_json::Value = serde_json::from_slice(&bytes).context(path)?;
            rows = ["items", "months"]
                .iter()
                .find_map(|key| body[*key].as_array().map(Vec::len))
                .unwrap_or(0);
        }
        let (sql, params) = statement(name, Utc::now());
        let prepared = db.prepare(sql).await?;
        let params: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let mut sql_samples = Vec::with_capacity(args.samples);
        for round in 0..args.samples + 2 {
            let started = Instant::now();
            db.query(&prepared, &params).await?;
            if round >= 2 {
                sql_samples.push(started.elapsed());
            }
        }
        let mut timing = timing(name, samples, rows);
        timing.sql_p50 = Some(median_and_max(sql_samples).0);
        timings.push(timing);
    }
    Ok(timings)
}

fn timing(name: &'static str, samples: Vec<Duration>, rows: usize) -> Timing {
    let (p50, max) = median_and_max(samples);
    Timing {
        name,
        p50,
        max,
        rows,
        sql_p50: None,
    }
}

fn median_and_max(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    (
        samples.get(samples.len() / 2).copied().unwrap_or_default(),
        samples.last().copied().unwrap_or_default(),
    )
}

fn print(args: &ReportsArgs, timings: &[Timing]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "ordo-bench reports · {} orders, {} customers, {} products over {} months · hourly request counts of {} users and {} clients · {} samples each, one at a time",
        args.scale.orders,
        args.scale.customers,
        args.scale.products,
        args.scale.months,
        args.scale.users,
        args.scale.clients,
        args.samples
    );
    println!(
        "{:<18} {:>9} {:>9} {:>6} {:>14} {:>12}",
        "report", "p50 ms", "max ms", "rows", "÷ count(*)", "SQL p50 ms"
    );
    let reference = timings.first().map(|t| ms(t.p50)).filter(|p| *p > 0.0);
    for t in timings {
        let ratio = reference
            .map(|r| format!("{:.2}", ms(t.p50) / r))
            .unwrap_or_else(|| "-".into());
        let sql = t
            .sql_p50
            .map(|p| format!("{:.2}", ms(p)))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<18} {:>9.2} {:>9.2} {:>6} {:>14} {:>12}",
            t.name,
            ms(t.p50),
            ms(t.max),
            t.rows,
            ratio,
            sql
        );
    }
}

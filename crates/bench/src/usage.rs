//! The usage scenario: `GET /v1/usage/top` and `GET /v1/usage/daily` of every
//! client, as an administrator, under load against a database holding few raw
//! hits and one holding many, each with the server's usage cache off (the queries
//! are measured) and on (what a dashboard meets). The figures: p99 with many ÷
//! p99 with few (goal ≤ 1.5; the honest one is the uncached), and the server's
//! peak RSS while it serves the many (goal < 150 MiB).
//!
//! The two databases are measured in turns, several rounds, and each figure is
//! taken over all its rounds together: on a machine whose load drifts (other
//! work shares its cores), both sides of the ratio then meet the same drift.

use std::time::{Duration, Instant};

use ordo_postgres::synthetic_hits::{self, SyntheticClients, SyntheticHits};
use ordo_postgres::{LocalCluster, PgPool, PoolConfig, connect_pool};
use tokio_postgres::NoTls;

use crate::load::{LoadShape, Measurement, drive};
use crate::{
    BENCH_ADMIN_EMAIL, ServerExtras, bench_data_key, bench_services, create_bench_admin, login,
    migrated_database, peak_rss_mib, spawn_server, throwaway_cluster,
};

/// The hours the hits fall in: eight days up to now, so that each of the seven
/// days `usage-daily` shows has hits.
const HOURS: u32 = 192;

/// The server's connections, as in the other scenarios.
const POOL_SIZE: usize = 16;

/// What the scenario asks, as a dashboard does.
const ROUTES: [(&str, &str); 2] = [
    ("usage-top", "/v1/usage/top?hours=24&limit=3"),
    ("usage-daily", "/v1/usage/daily?days=7"),
];

/// `ordo-bench usage`.
#[derive(Debug, Clone, clap::Args)]
pub struct UsageArgs {
    /// Raw hits loaded for the first measurement.
    #[arg(long, default_value_t = 100_000)]
    few: u64,
    /// Raw hits loaded for the second.
    #[arg(long, default_value_t = 10_000_000)]
    many: u64,
    /// API clients the hits are spread over (a few of them make most).
    #[arg(long, default_value_t = 100)]
    clients: u32,
    /// How long the server caches usage answers in the cached runs.
    #[arg(long, default_value_t = 5_000)]
    cache_ttl_ms: u64,
    /// Turns: each measures every route against each database, cache off and on.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// `ordo-bench seed-hits`.
#[derive(Debug, Clone, clap::Args)]
pub struct SeedHitsArgs {
    /// The (migrated) database to add the hits to.
    #[arg(long)]
    database_url: String,
    /// Raw hits to add.
    #[arg(long, default_value_t = 10_000_000)]
    hits: u64,
    /// The hours up to now they fall in (the current one included).
    #[arg(long, default_value_t = HOURS)]
    hours: u32,
    /// API clients to add first; the hits are spread over every client there is.
    #[arg(long, default_value_t = 0)]
    clients: u32,
}

/// Adds hits (and clients, when asked) to `args.database_url`.
///
/// # Errors
/// When the database cannot be reached or a statement fails.
pub async fn seed(args: SeedHitsArgs) -> anyhow::Result<()> {
    let pool = connect_pool(&args.database_url, &PoolConfig::with_max_size(1))?;
    if args.clients > 0 {
        synthetic_hits::create_clients(
            &pool,
            SyntheticClients {
                count: args.clients,
            },
        )
        .await?;
    }
    generate(
        &pool,
        SyntheticHits {
            hits: args.hits,
            hours: args.hours,
        },
    )
    .await
    .map(drop)
}

/// Adds `hits` over the scenario's hours, spread over the clients there are.
///
/// # Errors
/// When a statement fails.
pub async fn seed_hits(pool: &PgPool, hits: u64) -> anyhow::Result<()> {
    generate(pool, SyntheticHits { hits, hours: HOURS })
        .await
        .map(drop)
}

/// Generates the hits and returns how long it took.
async fn generate(pool: &PgPool, scale: SyntheticHits) -> anyhow::Result<Duration> {
    eprintln!(
        "generating {} raw hits over {} hours …",
        scale.hits, scale.hours
    );
    let started = Instant::now();
    let generated = synthetic_hits::generate_hits(pool, scale).await?;
    let took = started.elapsed();
    eprintln!(
        "generated {} hits in {} (client, hour) counts in {:.1} s, vacuumed and analysed",
        generated.hits,
        generated.hourly_cells,
        took.as_secs_f64()
    );
    Ok(took)
}

/// One route measured with one load of hits and one cache setting.
struct Row {
    route: &'static str,
    hits: u64,
    cached: bool,
    measured: Measurement,
    server_peak_rss_mib: Option<f64>,
}

/// A database of the scenario and the hits it holds.
struct Loaded {
    url: String,
    hits: u64,
    seeded_in: Duration,
}

/// Runs the scenario in a throw-away cluster.
///
/// # Errors
/// When seeding, the server or a request fails.
pub async fn run(args: UsageArgs, shape: LoadShape) -> anyhow::Result<()> {
    let cluster = throwaway_cluster().await?;
    let data_key = bench_data_key();
    let measured = measure_in(&cluster, &args, &data_key, shape).await;
    tokio::task::spawn_blocking(move || cluster.stop()).await?;
    let (loads, rows) = measured?;
    print(&args, shape, &loads, &rows);
    Ok(())
}

async fn measure_in(
    cluster: &LocalCluster,
    args: &UsageArgs,
    data_key: &str,
    shape: LoadShape,
) -> anyhow::Result<(Vec<Loaded>, Vec<Row>)> {
    let mut loads = Vec::new();
    for (name, hits) in [("usage_few", args.few), ("usage_many", args.many)] {
        let url = migrated_database(cluster, name).await?;
        let pool = connect_pool(&url, &PoolConfig::with_max_size(2))?;
        create_bench_admin(&bench_services(&pool, data_key)?).await?;
        synthetic_hits::create_clients(
            &pool,
            SyntheticClients {
                count: args.clients,
            },
        )
        .await?;
        let seeded_in = generate(&pool, SyntheticHits { hits, hours: HOURS }).await?;
        loads.push(Loaded {
            url,
            hits,
            seeded_in,
        });
    }
    // The seeding's gigabyte of new pages is written out now, not by a checkpoint
    // in the middle of a measurement.
    let (db, driver) = tokio_postgres::connect(&cluster.database_url("postgres"), NoTls).await?;
    tokio::spawn(driver);
    db.batch_execute("CHECKPOINT").await?;
    let mut runs = Vec::new();
    for round in 1..=args.rounds {
        for load in &loads {
            for cache_ttl_ms in [0, args.cache_ttl_ms] {
                eprintln!(
                    "round {round}: {} hits, cache ttl {cache_ttl_ms} ms …",
                    load.hits
                );
                runs.extend(measure(&load.url, data_key, load.hits, cache_ttl_ms, shape).await?);
            }
        }
    }
    let mut rows: Vec<Row> = Vec::new();
    for run in &runs {
        if rows
            .iter()
            .any(|r| (r.route, r.hits, r.cached) == (run.route, run.hits, run.cached))
        {
            continue;
        }
        let same: Vec<&Row> = runs
            .iter()
            .filter(|r| (r.route, r.hits, r.cached) == (run.route, run.hits, run.cached))
            .collect();
        let measurements: Vec<Measurement> = same.iter().map(|r| r.measured.clone()).collect();
        rows.push(Row {
            route: run.route,
            hits: run.hits,
            cached: run.cached,
            measured: Measurement::merged(&measurements).unwrap_or_else(|| run.measured.clone()),
            server_peak_rss_mib: same
                .iter()
                .filter_map(|r| r.server_peak_rss_mib)
                .reduce(f64::max),
        });
    }
    Ok((loads, rows))
}

/// Starts a server, drives each route against it, reads its peak RSS and stops it.
async fn measure(
    database_url: &str,
    data_key: &str,
    hits: u64,
    cache_ttl_ms: u64,
    shape: LoadShape,
) -> anyhow::Result<Vec<Row>> {
    let (mut server, port) = spawn_server(
        database_url,
        POOL_SIZE,
        data_key,
        ServerExtras {
            usage_cache_ttl_ms: cache_ttl_ms,
            ..ServerExtras::default()
        },
    )?;
    let pid = server.id();
    let driven = async {
        let base_url = format!("http://127.0.0.1:{port}");
        let mut headers = reqwest::header::HeaderMap::new();
        let mut bearer = reqwest::header::HeaderValue::from_str(&format!(
            "Bearer {}",
            login(&base_url, BENCH_ADMIN_EMAIL).await?
        ))?;
        bearer.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, bearer);
        let admin = reqwest::Client::builder()
            .pool_max_idle_per_host(shape.concurrency * 2)
            .timeout(Duration::from_secs(30))
            .default_headers(headers)
            .build()?;
        check_answers(&admin, &base_url).await?;
        let mut rows = Vec::new();
        for (route, path) in ROUTES {
            let (admin, url) = (admin.clone(), format!("{base_url}{path}"));
            let measured = drive(shape, move |_, _| {
                let (admin, url) = (admin.clone(), url.clone());
                async move {
                    match admin.get(&url).send().await {
                        Ok(response) => {
                            let ok = response.status() == reqwest::StatusCode::OK;
                            response.bytes().await.is_ok() && ok
                        }
                        Err(_) => false,
                    }
                }
            })
            .await;
            rows.push(Row {
                route,
                hits,
                cached: cache_ttl_ms > 0,
                measured,
                server_peak_rss_mib: None,
            });
        }
        let rss = peak_rss_mib(pid);
        for row in &mut rows {
            row.server_peak_rss_mib = rss;
        }
        anyhow::Ok(rows)
    }
    .await;
    let _ = server.kill();
    let _ = server.wait();
    driven
}

/// The answers measured are the real ones: the three busiest clients of the last
/// day, and seven days of every client.
async fn check_answers(admin: &reqwest::Client, base_url: &str) -> anyhow::Result<()> {
    let get = |path: &str| {
        let request = admin.get(format!("{base_url}{path}"));
        async move {
            anyhow::Ok(
                request
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<serde_json::Value>()
                    .await?,
            )
        }
    };
    let top = get(ROUTES[0].1).await?;
    let daily = get(ROUTES[1].1).await?;
    let busiest = top["clients"].as_array().map_or(0, Vec::len);
    let clients = daily["clients"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(
        busiest == 3 && clients > 0,
        "usage answers without the seeded clients: top {top}, daily of {clients} clients"
    );
    Ok(())
}

fn print(args: &UsageArgs, shape: LoadShape, loads: &[Loaded], rows: &[Row]) {
    println!(
        "ordo-bench usage · {} build · {} clients, hits over the last {HOURS} hours · concurrency {} · {} rounds of {} s measured after {} s warm-up · pool {POOL_SIZE}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        args.clients,
        shape.concurrency,
        args.rounds,
        shape.duration.as_secs_f64(),
        shape.warmup.as_secs_f64(),
    );
    for load in loads {
        println!(
            "seeded {} hits with their hourly counts in {:.1} s (vacuumed and analysed)",
            load.hits,
            load.seeded_in.as_secs_f64()
        );
    }
    println!(
        "{:<12} {:<6} {:>10} {:>9} {:>8} {:>8} {:>9} {:>7} {:>9}",
        "route", "cache", "raw hits", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "RSS MiB"
    );
    for row in rows {
        let m = &row.measured;
        println!(
            "{:<12} {:<6} {:>10} {:>9.0} {:>8.2} {:>8.2} {:>9.2} {:>7} {:>9}",
            row.route,
            if row.cached { "on" } else { "off" },
            row.hits,
            m.requests_per_second,
            m.p50_ms,
            m.p99_ms,
            m.p999_ms,
            m.errors,
            row.server_peak_rss_mib
                .map_or_else(|| "-".into(), |r| format!("{r:.1}")),
        );
    }
    let p99 = |route: &str, cached: bool, hits: u64| {
        rows.iter()
            .find(|r| r.route == route && r.cached == cached && r.hits == hits)
            .map(|r| r.measured.p99_ms)
    };
    for (route, _) in ROUTES {
        for cached in [false, true] {
            if let (Some(few), Some(many)) =
                (p99(route, cached, args.few), p99(route, cached, args.many))
            {
                println!(
                    "{route:<12} cache {:<3}: p99 {many:.2} ms with {} hits ÷ {few:.2} ms with {} = {:.2} (goal ≤ 1.5)",
                    if cached { "on" } else { "off" },
                    args.many,
                    args.few,
                    many / few.max(f64::EPSILON),
                );
            }
        }
    }
    let peak = rows
        .iter()
        .filter(|r| r.hits == args.many)
        .filter_map(|r| r.server_peak_rss_mib)
        .fold(None, |peak: Option<f64>, r| {
            Some(peak.map_or(r, |p| p.max(r)))
        });
    if let Some(peak) = peak {
        println!(
            "server peak RSS while serving {} hits: {peak:.1} MiB (goal < 150 MiB)",
            args.many
        );
    }
}

//! `--instances N`: what scaling out costs. The authenticated get-order load runs
//! against one Ordo server, then against N servers on the same database, with the
//! rate limits of both runs in one Redis (so each request pays the shared
//! decision's round trip) and the requests spread over the servers as `--spread`
//! says: by default each to the server with the fewest in flight, as the
//! balancer of `docker/haproxy.cfg` (`balance leastconn`) sends them. On one
//! machine the N servers share the cores one had, so N cannot be faster; the goal
//! is that coordination (Redis, the database's locks) does not make it slower: N
//! within 10 % of 1.
//!
//! The same pair then runs again with each server's rate limits in its own memory
//! (no coordination, so the limits do not hold across servers: a control, not a
//! way to deploy): N ÷ 1 without coordination is what N processes instead of one
//! cost on these cores, and the difference between the two ratios is what the
//! coordination costs.
//!
//! Each pair runs as 1, N, N, 1 and is compared mean against mean: whatever drifts
//! during the runs (the database's caches warming, background work of the
//! machine) then weighs on both sides alike, where 1-then-N would give it all to
//! one side.
//!
//! So that the comparison is about coordination only, both sides get the same
//! machine budget: the one server has a worker per core and the whole pool; the
//! N servers split both between them (workers ÷ N, at least 1; pool ÷ N, at
//! least 2). N servers each with the one's workers and pool would run N times its
//! threads and connections on the same cores and measure the overcommitment.

use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ordo_redis::testing::RedisServer;
use serde::Serialize;

use crate::load::{LoadShape, Measurement, drive};
use crate::scenarios::{get_ok, pick};
use crate::seed::Dataset;

/// The goal: N instances ÷ 1 instance, at least.
pub const GOAL: f64 = 0.9;

/// One run: how many servers, what each was given, and what they served together.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleOutRun {
    /// Servers the load was spread over.
    pub instances: usize,
    /// HTTP workers of each server (`ORDO_WORKERS`).
    pub workers_each: usize,
    /// Database connections of each server's pool.
    pub pool_each: usize,
    /// Whether the rate limits were shared in Redis (else each server kept its own
    /// in memory).
    pub shared_limits: bool,
    /// What they served.
    pub get_order: Measurement,
}

/// How the load generator spreads its requests over the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Spread {
    /// Each request to the server with the fewest requests in flight, as a
    /// balancer's least-connections rule sends it (`docker/haproxy.cfg`).
    LeastBusy,
    /// Each request to the next server in turn, whatever their load.
    RoundRobin,
    /// Each load worker keeps to one server (the workers dealt round-robin), as
    /// when every client connection stays on the server it reached.
    Pinned,
}

impl Spread {
    /// How it reads in the table's title.
    fn describe(self) -> &'static str {
        match self {
            Self::LeastBusy => "each request to the server with the fewest in flight",
            Self::RoundRobin => "requests round-robin over the servers",
            Self::Pinned => "each load worker pinned to one server",
        }
    }
}

/// Requests in flight per server, for [`Spread::LeastBusy`].
#[derive(Debug)]
struct InFlight(Vec<AtomicUsize>);

impl InFlight {
    /// The least busy server, ties going to the first from `start` on, counted as
    /// busier by one until the returned guard is dropped.
    fn take(self: &Arc<Self>, start: usize) -> (usize, InFlightGuard) {
        let servers = self.0.len();
        let chosen = (0..servers)
            .map(|offset| (start + offset) % servers)
            .min_by_key(|server| self.0[*server].load(Ordering::Relaxed))
            .unwrap_or(0);
        self.0[chosen].fetch_add(1, Ordering::Relaxed);
        (
            chosen,
            InFlightGuard {
                in_flight: self.clone(),
                server: chosen,
            },
        )
    }
}

/// One request counted in flight on `server`; dropped when it ends (or is
/// abandoned at the end of a run).
struct InFlightGuard {
    in_flight: Arc<InFlight>,
    server: usize,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.in_flight.0[self.server].fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the comparison needs of the bench's setup.
#[derive(Debug, Clone)]
pub struct Setup<'a> {
    /// The seeded database.
    pub database_url: &'a str,
    /// The one server's pool, which the N servers share out.
    pub pool_size: usize,
    /// The key the seeded data is sealed under.
    pub data_key: &'a str,
    /// A Redis to share; a throw-away `redis-server` when `None`.
    pub redis_url: Option<&'a str>,
    /// How the requests are spread over the servers.
    pub spread: Spread,
    /// How hard and how long each run drives.
    pub shape: LoadShape,
    /// The seeded orders.
    pub data: Arc<Dataset>,
}

/// Runs get-order on 1 and on `instances` servers.
///
/// # Errors
/// When there is no Redis, or a server does not start or refuses the login.
pub async fn compare(setup: &Setup<'_>, instances: usize) -> anyhow::Result<Vec<ScaleOutRun>> {
    // Kept until the runs are over: dropping it stops the server.
    let throw_away;
    let redis_url = match setup.redis_url {
        Some(url) => url,
        None => {
            throw_away = RedisServer::start().map_err(|e| {
                e.context("--instances keeps the rate limits in Redis: give --redis-url or install redis-server")
            })?;
            throw_away.url()
        }
    };
    // One signing key for every server: a token issued by one is taken by all.
    let jwt_secret = ordo_server::app::random_secret();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut runs = Vec::new();
    for (count, shared_limits) in run_order(instances) {
        let budget = Budget::split(cores, setup.pool_size, count);
        crate::hits::settle(setup.database_url).await?;
        eprintln!(
            "running get-order on {count} instance(s), {} worker(s) and {} connections each, rate limits {} …",
            budget.workers_each,
            budget.pool_each,
            if shared_limits {
                "in Redis"
            } else {
                "in each one's memory"
            }
        );
        let workers = budget.workers_each.to_string();
        let mut env = vec![
            ("ORDO_JWT_SECRET", jwt_secret.as_str()),
            ("ORDO_WORKERS", workers.as_str()),
        ];
        if shared_limits {
            env.push(("ORDO_REDIS_URL", redis_url));
        }
        let mut servers: Vec<Child> = Vec::with_capacity(count);
        let mut bases = Vec::with_capacity(count);
        for _ in 0..count {
            let (child, port) = crate::spawn_server(
                setup.database_url,
                budget.pool_each,
                setup.data_key,
                crate::ServerExtras {
                    env: &env,
                    ..crate::ServerExtras::default()
                },
            )?;
            servers.push(child);
            bases.push(format!("http://127.0.0.1:{port}"));
        }
        let measured = measure(setup, bases).await;
        for mut server in servers {
            let _ = server.kill();
            let _ = server.wait();
        }
        runs.push(ScaleOutRun {
            instances: count,
            workers_each: budget.workers_each,
            pool_each: budget.pool_each,
            shared_limits,
            get_order: measured?,
        });
    }
    Ok(runs)
}

/// The runs in order: for limits in Redis, then in memory, 1, N, N, 1 servers
/// (balanced, so that a drift over time favours neither side).
fn run_order(instances: usize) -> Vec<(usize, bool)> {
    [true, false]
        .into_iter()
        .flat_map(|shared| [1, instances, instances, 1].map(|count| (count, shared)))
        .collect()
}

/// The mean req/s of the runs on `instances` servers with limits `shared` or not.
fn mean_rate(runs: &[ScaleOutRun], instances: usize, shared: bool) -> Option<f64> {
    let rates: Vec<f64> = runs
        .iter()
        .filter(|r| r.instances == instances && r.shared_limits == shared)
        .map(|r| r.get_order.requests_per_second)
        .collect();
    #[allow(clippy::cast_precision_loss)] // a handful of runs
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    (!rates.is_empty() && mean > 0.0).then_some(mean)
}

/// What each of `instances` servers gets of one server's machine budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Budget {
    workers_each: usize,
    pool_each: usize,
}

impl Budget {
    /// The one server's share — a worker per core, the whole pool — split over
    /// `instances`: at least one worker, and at least two connections (a request
    /// and a background task may each hold one).
    fn split(cores: usize, pool_size: usize, instances: usize) -> Self {
        let instances = instances.max(1);
        Self {
            workers_each: (cores / instances).max(1),
            pool_each: (pool_size / instances).max(2),
        }
    }
}

async fn measure(setup: &Setup<'_>, bases: Vec<String>) -> anyhow::Result<Measurement> {
    let token = crate::login(&bases[0], crate::BENCH_EMAIL).await?;
    let (name, value) =
        crate::http1::credential(reqwest::header::AUTHORIZATION, &format!("Bearer {token}"))?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(name, value);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(setup.shape.concurrency * 2)
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()?;
    let bases = Arc::new(bases);
    let data = setup.data.clone();
    let in_flight = Arc::new(InFlight(
        bases.iter().map(|_| AtomicUsize::new(0)).collect(),
    ));
    let spread = setup.spread;
    Ok(drive(setup.shape, move |worker, n| {
        let (client, bases, data) = (client.clone(), bases.clone(), data.clone());
        let turn = usize::try_from(n).unwrap_or(0).wrapping_add(worker);
        let (server, counted) = match spread {
            Spread::LeastBusy => {
                let (server, guard) = in_flight.take(turn);
                (server, Some(guard))
            }
            Spread::RoundRobin => (turn % bases.len(), None),
            Spread::Pinned => (worker % bases.len(), None),
        };
        async move {
            let _counted = counted;
            let id = pick(&data.orders, worker, n);
            get_ok(&client, &format!("{}/v1/orders/{id}", bases[server])).await
        }
    })
    .await)
}

/// Prints the runs side by side, each against the single server's.
pub fn print(runs: &[ScaleOutRun], spread: Spread) {
    println!("scale-out: get-order, {}", spread.describe());
    println!(
        "{:<10} {:>8} {:>6} {:>7} {:>9} {:>8} {:>8} {:>7} {:>16}",
        "instances",
        "workers",
        "pool",
        "limits",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "÷ 1 (goal)"
    );
    for run in runs {
        let m = &run.get_order;
        let single = mean_rate(runs, 1, run.shared_limits);
        let ratio = match single {
            Some(single) if run.instances > 1 && run.shared_limits => {
                format!("{:.2} (≥{GOAL})", m.requests_per_second / single)
            }
            Some(single) if run.instances > 1 => {
                format!("{:.2}", m.requests_per_second / single)
            }
            _ => "-".to_owned(),
        };
        println!(
            "{:<10} {:>8} {:>6} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>7} {:>16}",
            run.instances,
            format!("{}×{}", run.instances, run.workers_each),
            format!("{}×{}", run.instances, run.pool_each),
            if run.shared_limits { "redis" } else { "memory" },
            m.requests_per_second,
            m.p50_ms,
            m.p99_ms,
            m.errors,
            ratio
        );
    }
    let many = runs.iter().map(|r| r.instances).max().unwrap_or(1);
    let scaled = |shared: bool| match (mean_rate(runs, many, shared), mean_rate(runs, 1, shared)) {
        (Some(many), Some(one)) => format!("{:.2}", many / one),
        _ => "-".to_owned(),
    };
    if many > 1 {
        println!(
            "{many} ÷ 1 (mean of two runs each): {} with the limits shared in Redis, {} with each \
             server's own in memory (no coordination: what {many} processes instead of one cost \
             on these cores)",
            scaled(true),
            scaled(false),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::{Budget, InFlight, run_order};

    #[test]
    fn each_pair_runs_balanced_so_that_a_drift_favours_neither_side() {
        let order = run_order(3);
        for shared in [true, false] {
            let positions = |count: usize| -> Vec<usize> {
                order
                    .iter()
                    .enumerate()
                    .filter(|(_, run)| **run == (count, shared))
                    .map(|(position, _)| position)
                    .collect()
            };
            let (one, three) = (positions(1), positions(3));
            assert_eq!((one.len(), three.len()), (2, 2), "{order:?}");
            assert_eq!(
                one.iter().sum::<usize>(),
                three.iter().sum::<usize>(),
                "the same mean position: {order:?}"
            );
        }
        assert_eq!(order.len(), 8);
    }

    #[test]
    fn least_busy_takes_the_server_with_fewest_in_flight_and_gives_it_back() {
        let in_flight = Arc::new(InFlight((0..3).map(|_| AtomicUsize::new(0)).collect()));
        // All idle: the tie goes to the server the caller starts at.
        let (first, first_guard) = in_flight.take(1);
        assert_eq!(first, 1);
        let (second, _second_guard) = in_flight.take(1);
        assert_eq!(second, 2, "server 1 is busier now");
        let (third, _third_guard) = in_flight.take(1);
        assert_eq!(third, 0);
        drop(first_guard);
        let (fourth, _fourth_guard) = in_flight.take(0);
        assert_eq!(fourth, 1, "the request on server 1 has ended");
    }

    #[test]
    fn one_server_keeps_the_whole_budget() {
        assert_eq!(
            Budget::split(2, 16, 1),
            Budget {
                workers_each: 2,
                pool_each: 16
            }
        );
    }

    #[test]
    fn three_servers_split_the_pool_and_the_workers() {
        assert_eq!(
            Budget::split(6, 16, 3),
            Budget {
                workers_each: 2,
                pool_each: 5
            }
        );
    }

    #[test]
    fn a_split_never_goes_below_one_worker_and_two_connections() {
        assert_eq!(
            Budget::split(2, 4, 3),
            Budget {
                workers_each: 1,
                pool_each: 2
            }
        );
    }
}

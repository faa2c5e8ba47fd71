//! A closed-loop load driver: a fixed number of workers, each sending its next
//! request when the previous one answered, for a fixed time after a warm-up whose
//! results are discarded.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// How long and how hard to drive.
#[derive(Debug, Clone, Copy)]
pub struct LoadShape {
    /// Workers sending requests at the same time.
    pub concurrency: usize,
    /// Discarded run-in time.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// Completed operations per second in the measured window.
    pub requests_per_second: f64,
    /// Latency percentiles in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Operations that completed with an unexpected outcome.
    pub errors: u64,
    /// Operations measured.
    pub operations: u64,
    /// Every latency measured, in microseconds, to merge runs by.
    #[serde(skip)]
    pub histogram: Histogram<u64>,
    /// The measured time.
    #[serde(skip)]
    pub measured_for: Duration,
}

impl Measurement {
    /// The runs `runs` taken as one: their latencies together, their operations
    /// over their time together. `None` when there are none.
    pub fn merged(runs: &[Measurement]) -> Option<Measurement> {
        let mut histogram = new_histogram();
        for run in runs {
            let _ = histogram.add(&run.histogram);
        }
        let errors = runs.iter().map(|r| r.errors).sum();
        let measured_for = runs.iter().map(|r| r.measured_for).sum();
        (!runs.is_empty()).then(|| summarise(histogram, errors, measured_for))
    }
}

/// Runs `operation` from `shape.concurrency` workers. Each call gets the worker
/// index and a running number; it returns whether the outcome was the expected one.
pub async fn drive<F, Fut>(shape: LoadShape, operation: F) -> Measurement
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let operation = Arc::new(operation);
    let start = Instant::now();
    let measure_from = start + shape.warmup;
    let end = measure_from + shape.duration;
    let workers = (0..shape.concurrency).map(|worker| {
        let operation = operation.clone();
        tokio::spawn(async move {
            let mut histogram = new_histogram();
            let mut errors = 0_u64;
            let mut sequence = 0_u64;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let ok = operation(worker, sequence).await;
                sequence += 1;
                let done = Instant::now();
                if sent >= measure_from && done <= end {
                    let micros =
                        u64::try_from(done.duration_since(sent).as_micros()).unwrap_or(u64::MAX);
                    histogram.saturating_record(micros.max(1));
                    if !ok {
                        errors += 1;
                    }
                }
            }
            (histogram, errors)
        })
    });
    let mut histogram = new_histogram();
    let mut errors = 0;
    for result in futures::future::join_all(workers).await {
        let Ok((worker_histogram, worker_errors)) = result else {
            errors += 1;
            continue;
        };
        let _ = histogram.add(&worker_histogram);
        errors += worker_errors;
    }
    summarise(histogram, errors, shape.duration)
}

fn summarise(histogram: Histogram<u64>, errors: u64, measured_for: Duration) -> Measurement {
    let operations = histogram.len();
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Measurement {
        requests_per_second: operations as f64 / measured_for.as_secs_f64().max(f64::EPSILON),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        errors,
        operations,
        histogram,
        measured_for,
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .expect("1 µs to 60 s at 3 digits is a valid histogram")
}

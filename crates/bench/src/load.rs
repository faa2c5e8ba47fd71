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
    let operations = histogram.len();
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Measurement {
        requests_per_second: operations as f64 / shape.duration.as_secs_f64(),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        errors,
        operations,
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .expect("1 µs to 60 s at 3 digits is a valid histogram")
}

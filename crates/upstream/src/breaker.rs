//! The circuit breaker, and the recent attempts it decides on (which also give
//! the error rate and latency percentiles the operators see).
//!
//! Closed: every attempt goes through and its outcome is recorded. When at least
//! `min_calls` attempts of the last `window` failed in a share of at least
//! `failure_ratio`, the circuit opens: calls fail at once for `open_for`, sparing
//! a struggling upstream and our callers' time. Then it is half-open: up to
//! `half_open_probes` attempts go through; one failure opens it again, that many
//! successes close it (and forget the failures that opened it).
//!
//! Every method takes `now`, so the rules are tested without waiting.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ordo_domain::upstream::{CircuitState, UpstreamHealth};

use crate::config::BreakerConfig;

/// Samples kept at most, whatever the window: bounds memory under heavy load.
const MAX_SAMPLES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    failed: bool,
    latency: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    Closed,
    Open {
        until: Instant,
    },
    HalfOpen {
        in_flight: u32,
        successes: u32,
        /// Probes that have not reported by then are taken as lost (their caller
        /// was cancelled), so the circuit never stays half-open forever.
        probes_expire: Instant,
    },
}

/// The breaker's state. Not synchronised: the client keeps it behind a mutex and
/// never holds the lock across an await.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    probe_timeout: Duration,
    position: Position,
    samples: VecDeque<Sample>,
}

impl Breaker {
    /// A closed breaker. `probe_timeout` is how long a half-open probe may take.
    pub fn new(config: BreakerConfig, probe_timeout: Duration) -> Self {
        Self {
            config,
            probe_timeout,
            position: Position::Closed,
            samples: VecDeque::new(),
        }
    }

    /// Whether an attempt may go out now; when not, how long until it may.
    pub fn permit(&mut self, now: Instant) -> Result<(), Duration> {
        match self.position {
            Position::Closed => Ok(()),
            Position::Open { until } if now < until => Err(until - now),
            Position::Open { .. } => {
                self.position = Position::HalfOpen {
                    in_flight: 1,
                    successes: 0,
                    probes_expire: now + self.probe_timeout,
                };
                Ok(())
            }
            Position::HalfOpen {
                in_flight,
                successes,
                probes_expire,
            } => {
                if now >= probes_expire {
                    self.position = Position::HalfOpen {
                        in_flight: 1,
                        successes,
                        probes_expire: now + self.probe_timeout,
                    };
                    Ok(())
                } else if in_flight < self.config.half_open_probes {
                    self.position = Position::HalfOpen {
                        in_flight: in_flight + 1,
                        successes,
                        probes_expire,
                    };
                    Ok(())
                } else {
                    Err(probes_expire - now)
                }
            }
        }
    }

    /// Records the outcome of a permitted attempt that finished at `now`.
    pub fn record(&mut self, now: Instant, failed: bool, latency: Duration) {
        self.forget_before(now);
        if self.samples.len() == MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            at: now,
            failed,
            latency,
        });
        self.position = match self.position {
            Position::Closed if failed && self.should_open() => self.opened(now),
            Position::HalfOpen { .. } if failed => self.opened(now),
            Position::HalfOpen {
                in_flight,
                successes,
                probes_expire,
            } => {
                if successes + 1 >= self.config.half_open_probes {
                    // The failures that opened the circuit are history now.
                    self.samples.retain(|s| !s.failed);
                    Position::Closed
                } else {
                    Position::HalfOpen {
                        in_flight: in_flight.saturating_sub(1),
                        successes: successes + 1,
                        probes_expire,
                    }
                }
            }
            unchanged => unchanged,
        };
    }

    fn opened(&self, now: Instant) -> Position {
        tracing::warn!(open_for = ?self.config.open_for, "the upstream's circuit opens");
        Position::Open {
            until: now + self.config.open_for,
        }
    }

    fn should_open(&self) -> bool {
        let calls = self.samples.len();
        let failures = self.samples.iter().filter(|s| s.failed).count();
        calls >= self.config.min_calls as usize
            && failures as f64 >= self.config.failure_ratio * calls as f64
    }

    fn forget_before(&mut self, now: Instant) {
        while self
            .samples
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.at) > self.config.window)
        {
            self.samples.pop_front();
        }
    }

    /// The circuit's position as of `now`.
    pub fn state(&self, now: Instant) -> CircuitState {
        match self.position {
            Position::Closed => CircuitState::Closed,
            Position::Open { until } if now < until => CircuitState::Open,
            Position::Open { .. } | Position::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// The position, error rate and latencies of the recent window.
    pub fn health(&mut self, now: Instant) -> UpstreamHealth {
        self.forget_before(now);
        let calls = self.samples.len();
        let failures = self.samples.iter().filter(|s| s.failed).count();
        let mut latencies: Vec<Duration> = self.samples.iter().map(|s| s.latency).collect();
        latencies.sort_unstable();
        let percentile = |p: usize| {
            (!latencies.is_empty())
                .then(|| latencies[(latencies.len() * p).div_ceil(100).max(1) - 1])
        };
        UpstreamHealth {
            circuit: self.state(now),
            recent_calls: calls as u64,
            recent_error_rate: if calls == 0 {
                0.0
            } else {
                failures as f64 / calls as f64
            },
            latency_p50: percentile(50),
            latency_p99: percentile(99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(
            BreakerConfig {
                window: Duration::from_secs(10),
                min_calls: 4,
                failure_ratio: 0.5,
                open_for: Duration::from_secs(5),
                half_open_probes: 2,
            },
            Duration::from_secs(2),
        )
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_failure_ratio_over_the_window_opens_the_circuit_only_after_enough_calls() {
        let t0 = Instant::now();
        let mut b = breaker();
        for i in 0..3 {
            assert_eq!(b.permit(t0), Ok(()));
            b.record(t0 + ms(i), true, ms(5));
        }
        assert_eq!(b.state(t0), CircuitState::Closed, "three calls are too few");
        b.permit(t0).expect("still closed");
        b.record(t0 + ms(3), true, ms(5));
        assert_eq!(b.state(t0 + ms(3)), CircuitState::Open);
        assert_eq!(b.permit(t0 + ms(1003)), Err(ms(4000)));
    }

    #[test]
    fn failures_below_the_ratio_or_outside_the_window_keep_it_closed() {
        let t0 = Instant::now();
        let mut b = breaker();
        for i in 0..10 {
            b.record(t0 + ms(i), i >= 7, ms(1));
        }
        assert_eq!(b.state(t0 + ms(10)), CircuitState::Closed, "3 of 10 failed");
        let later = t0 + Duration::from_secs(20);
        for i in 0..3 {
            b.record(later + ms(i), true, ms(1));
        }
        assert_eq!(
            b.state(later),
            CircuitState::Closed,
            "the old successes are forgotten, and three failures are too few"
        );
    }

    #[test]
    fn after_the_open_time_probes_go_through_and_enough_successes_close_it() {
        let t0 = Instant::now();
        let mut b = breaker();
        for i in 0..4 {
            b.record(t0 + ms(i), true, ms(1));
        }
        let t1 = t0 + Duration::from_secs(6);
        assert_eq!(b.state(t1), CircuitState::HalfOpen);
        assert_eq!(b.permit(t1), Ok(()));
        assert_eq!(b.permit(t1), Ok(()));
        assert!(b.permit(t1).is_err(), "only two probes at once");
        b.record(t1 + ms(1), false, ms(1));
        assert_eq!(b.state(t1 + ms(1)), CircuitState::HalfOpen);
        b.record(t1 + ms(2), false, ms(1));
        assert_eq!(b.state(t1 + ms(2)), CircuitState::Closed);
        b.record(t1 + ms(3), true, ms(1));
        assert_eq!(
            b.state(t1 + ms(3)),
            CircuitState::Closed,
            "the failures that opened it were forgotten"
        );
    }

    #[test]
    fn a_failed_probe_opens_it_again_and_a_lost_probe_is_replaced() {
        let t0 = Instant::now();
        let mut b = breaker();
        for i in 0..4 {
            b.record(t0 + ms(i), true, ms(1));
        }
        let t1 = t0 + Duration::from_secs(6);
        b.permit(t1).expect("a probe");
        b.record(t1 + ms(1), true, ms(1));
        assert_eq!(b.state(t1 + ms(1)), CircuitState::Open);
        let t2 = t1 + Duration::from_secs(6);
        b.permit(t2).expect("a probe");
        b.permit(t2).expect("a second probe");
        assert!(b.permit(t2 + ms(1)).is_err());
        assert_eq!(
            b.permit(t2 + Duration::from_secs(3)),
            Ok(()),
            "probes that never reported are replaced after the probe timeout"
        );
    }

    #[test]
    fn health_reports_the_error_rate_and_latency_percentiles_of_the_window() {
        let t0 = Instant::now();
        let mut b = breaker();
        assert_eq!(b.health(t0).latency_p50, None);
        for i in 1..=100 {
            b.record(t0, i > 90, ms(i));
        }
        let health = b.health(t0);
        assert_eq!(health.recent_calls, 100);
        assert!((health.recent_error_rate - 0.10).abs() < 1e-9);
        assert_eq!(health.latency_p50, Some(ms(50)));
        assert_eq!(health.latency_p99, Some(ms(99)));
        assert_eq!(b.health(t0 + Duration::from_secs(11)).recent_calls, 0);
    }
}

//! The chaos configuration: latency, failure rates, and the presets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One endpoint of the upstream contract, for per-endpoint failure rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `GET /products/`
    ListProducts,
    /// `GET /products/{id}`
    GetProduct,
    /// `GET /orders/`
    ListOrders,
    /// `POST /orders/`
    CreateOrder,
    /// `GET /orders/{id}`
    GetOrder,
    /// `PATCH /orders/{id}`
    PatchOrder,
    /// `POST /payments/`
    CreatePayment,
    /// `GET /payments/{id}`
    GetPayment,
    /// `DELETE /payments/{id}` (refund)
    RefundPayment,
}

impl Endpoint {
    /// Whether the endpoint has an effect (so a failure may come after it).
    pub fn is_mutating(self) -> bool {
        matches!(
            self,
            Endpoint::CreateOrder
                | Endpoint::PatchOrder
                | Endpoint::CreatePayment
                | Endpoint::RefundPayment
        )
    }
}

/// Probabilities (each in `0..=1`, summing to at most 1) of the failures
/// injected into one call.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureRates {
    /// `500 Internal Server Error`.
    pub error_500: f64,
    /// `503 Service Unavailable`.
    pub error_503: f64,
    /// `429 Too Many Requests` with `Retry-After: 1`.
    pub error_429: f64,
    /// The connection is closed without any response.
    pub drop_connection: f64,
    /// The call hangs for [`SimConfig::hang_ms`] and then answers `504`.
    pub hang: f64,
}

impl FailureRates {
    /// The total probability of any failure.
    pub fn total(&self) -> f64 {
        self.error_500 + self.error_503 + self.error_429 + self.drop_connection + self.hang
    }

    fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("error_500", self.error_500),
            ("error_503", self.error_503),
            ("error_429", self.error_429),
            ("drop_connection", self.drop_connection),
            ("hang", self.hang),
        ] {
            check_probability(name, p)?;
        }
        if self.total() > 1.0 + 1e-9 {
            return Err("failure rates sum to more than 1".into());
        }
        Ok(())
    }
}

/// The injected failure of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Answer `500`.
    Error500,
    /// Answer `503`.
    Error503,
    /// Answer `429` with `Retry-After: 1`.
    Error429,
    /// Close the connection without a response.
    DropConnection,
    /// Sleep [`SimConfig::hang_ms`], then answer `504`.
    Hang,
}

/// How the simulator misbehaves. Deserialisable (every field optional: missing
/// ones take the [`SimConfig::sandbox`] values) so that tests can post it to
/// `POST /_admin/config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Seed of the random generator (latency and failures); the generator is
    /// re-seeded whenever the configuration is set.
    pub seed: u64,
    /// Fixed latency added to every call, in milliseconds.
    pub latency_ms: u64,
    /// Uniformly random extra latency in `0..=jitter_ms`, in milliseconds.
    pub jitter_ms: u64,
    /// Probability that a call also gets the slow tail.
    pub tail_probability: f64,
    /// The slow tail: uniformly random extra latency in `0..=tail_ms`.
    pub tail_ms: u64,
    /// Failure rates of every endpoint not listed in `endpoint_failures`.
    pub failures: FailureRates,
    /// Per-endpoint failure rates, replacing `failures` for those endpoints.
    pub endpoint_failures: BTreeMap<Endpoint, FailureRates>,
    /// Share (`0..=1`) of failures on mutating calls that happen *after* the
    /// effect (charged, but the client sees an error); the rest happen before.
    pub fail_after_effect_ratio: f64,
    /// How long a hanging call sleeps before answering `504`, in milliseconds.
    pub hang_ms: u64,
    /// Down: every contract call answers `503` (nothing is done).
    pub down: bool,
    /// Bound on stored orders, payments and idempotency keys (each); beyond it
    /// creations answer `507` and old idempotency keys are forgotten.
    pub max_records: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig::sandbox()
    }
}

impl SimConfig {
    /// The default: 0–20 ms latency with a 1 % tail up to 250 ms, and 2 % of
    /// calls answering `503` before any effect. A client that retries 3 times
    /// with backoff sees well over 99.9 % success.
    pub fn sandbox() -> Self {
        SimConfig {
            seed: 42,
            latency_ms: 0,
            jitter_ms: 20,
            tail_probability: 0.01,
            tail_ms: 250,
            failures: FailureRates {
                error_503: 0.02,
                ..FailureRates::default()
            },
            endpoint_failures: BTreeMap::new(),
            fail_after_effect_ratio: 0.0,
            hang_ms: 30_000,
            down: false,
            max_records: 100_000,
        }
    }

    /// No latency and no failures at all.
    pub fn healthy() -> Self {
        SimConfig {
            jitter_ms: 0,
            tail_probability: 0.0,
            tail_ms: 0,
            failures: FailureRates::default(),
            ..SimConfig::sandbox()
        }
    }

    /// Slow but correct: 200 ms + up to 100 ms, and a 5 % tail up to 2 s.
    pub fn slow() -> Self {
        SimConfig {
            latency_ms: 200,
            jitter_ms: 100,
            tail_probability: 0.05,
            tail_ms: 2_000,
            failures: FailureRates::default(),
            ..SimConfig::sandbox()
        }
    }

    /// Flaky: a share `rate` of every call fails — 30 % of those with `500`,
    /// 35 % with `503`, 20 % with `429`, 15 % by a dropped connection — and
    /// half of the failures of mutating calls happen after the effect. No
    /// hangs (set [`FailureRates::hang`] for those). `rate` is clamped to `0..=1`.
    pub fn chaos(rate: f64) -> Self {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        SimConfig {
            failures: FailureRates {
                error_500: rate * 0.30,
                error_503: rate * 0.35,
                error_429: rate * 0.20,
                drop_connection: rate * 0.15,
                hang: 0.0,
            },
            fail_after_effect_ratio: 0.5,
            ..SimConfig::sandbox()
        }
    }

    /// Down: every contract call answers `503`.
    pub fn down() -> Self {
        SimConfig {
            down: true,
            ..SimConfig::healthy()
        }
    }

    /// A preset by name: `sandbox`, `healthy`, `slow`, `flaky` (= `chaos(0.3)`),
    /// `down`.
    pub fn preset(name: &str) -> Option<Self> {
        Some(match name {
            "sandbox" => SimConfig::sandbox(),
            "healthy" => SimConfig::healthy(),
            "slow" => SimConfig::slow(),
            "flaky" => SimConfig::chaos(0.3),
            "down" => SimConfig::down(),
            _ => return None,
        })
    }

    /// The failure rates that apply to `endpoint`.
    pub fn failures_for(&self, endpoint: Endpoint) -> FailureRates {
        self.endpoint_failures
            .get(&endpoint)
            .copied()
            .unwrap_or(self.failures)
    }

    /// Checks that probabilities are in `0..=1` and rates sum to at most 1.
    pub fn validate(&self) -> Result<(), String> {
        check_probability("tail_probability", self.tail_probability)?;
        check_probability("fail_after_effect_ratio", self.fail_after_effect_ratio)?;
        self.failures.validate()?;
        for (endpoint, rates) in &self.endpoint_failures {
            rates.validate().map_err(|e| format!("{endpoint:?}: {e}"))?;
        }
        if self.max_records == 0 {
            return Err("max_records must be positive".into());
        }
        Ok(())
    }
}

fn check_probability(name: &str, p: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(format!("{name} must be between 0 and 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_partial_json_takes_sandbox_defaults() {
        for name in ["sandbox", "healthy", "slow", "flaky", "down"] {
            let c = SimConfig::preset(name).expect("known preset");
            assert_eq!(c.validate(), Ok(()), "{name}");
        }
        let c: SimConfig = serde_json::from_str(
            r#"{"seed": 7, "endpoint_failures": {"create_payment": {"error_500": 1.0}}}"#,
        )
        .expect("partial config");
        assert_eq!(c.seed, 7);
        assert_eq!(c.jitter_ms, SimConfig::sandbox().jitter_ms);
        assert_eq!(c.failures_for(Endpoint::CreatePayment).error_500, 1.0);
        assert_eq!(c.failures_for(Endpoint::GetOrder).error_503, 0.02);
        let bad = SimConfig {
            failures: FailureRates {
                error_500: 0.7,
                error_503: 0.7,
                ..FailureRates::default()
            },
            ..SimConfig::healthy()
        };
        assert!(bad.validate().is_err());
        assert!(serde_json::from_str::<SimConfig>(r#"{"nope": 1}"#).is_err());
    }
}

//! How the adapter talks to the upstream: where, as whom, how long it waits and
//! how often it tries again, and when the circuit opens.

use std::time::Duration;

use ordo_domain::Currency;

/// The adapter's configuration. [`Default`] is a sane production starting point
/// without a base URL (every call then fails as unavailable).
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The upstream's base URL, e.g. `https://api.example.com` (paths such as
    /// `/orders/` are appended). `None`: no upstream is configured.
    pub base_url: Option<String>,
    /// Sent as `x-auth-user` on every call.
    pub auth_user: String,
    /// The currency of the upstream's amounts (its API carries none).
    pub currency: Currency,
    /// How long establishing a connection may take.
    pub connect_timeout: Duration,
    /// How long one attempt may take, from connecting to the last byte of the body.
    pub attempt_timeout: Duration,
    /// How long one call may take overall, retries and waits included.
    pub deadline: Duration,
    /// Attempts per call at most (1: no retry).
    pub max_attempts: u32,
    /// The first retry waits a random time up to this; each further one up to
    /// twice as long as the previous bound ("full jitter").
    pub backoff_base: Duration,
    /// The largest bound of a retry's random wait.
    pub backoff_max: Duration,
    /// When a call is given up without the upstream saying when to come back,
    /// callers are told to retry after this long.
    pub default_retry_after: Duration,
    /// The circuit breaker.
    pub breaker: BreakerConfig,
}

/// When the circuit opens and how it closes again.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// The recent window of attempts the error rate is computed over.
    pub window: Duration,
    /// Attempts in the window before the error rate can open the circuit.
    pub min_calls: u32,
    /// The failure share (`0..=1`) of the window's attempts that opens the circuit.
    pub failure_ratio: f64,
    /// How long the circuit stays open before probing.
    pub open_for: Duration,
    /// Successful probes in a row that close the circuit again; as many probes
    /// may be in flight at once while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(30),
            min_calls: 20,
            failure_ratio: 0.5,
            open_for: Duration::from_secs(5),
            half_open_probes: 1,
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            auth_user: "ordo".to_owned(),
            currency: Currency::parse("EUR").expect("EUR is three ASCII letters"),
            connect_timeout: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(8),
            max_attempts: 4,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            default_retry_after: Duration::from_secs(1),
            breaker: BreakerConfig::default(),
        }
    }
}

impl UpstreamConfig {
    /// Checks that the numbers make sense together.
    ///
    /// # Errors
    /// A message naming the setting that does not.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        if self.attempt_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err("the connect and attempt timeouts must be positive".into());
        }
        if self.deadline < self.attempt_timeout {
            return Err("the deadline must be at least one attempt timeout".into());
        }
        if !(0.0..=1.0).contains(&self.breaker.failure_ratio) || self.breaker.failure_ratio == 0.0 {
            return Err("breaker.failure_ratio must be above 0 and at most 1".into());
        }
        if self.breaker.min_calls == 0 || self.breaker.half_open_probes == 0 {
            return Err("breaker.min_calls and breaker.half_open_probes must be positive".into());
        }
        if let Some(url) = &self.base_url {
            let parsed = reqwest::Url::parse(url).map_err(|e| format!("base_url: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err("base_url must be an http or https URL".into());
            }
        }
        Ok(())
    }
}

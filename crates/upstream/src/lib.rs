//! The upstream adapter: Ordo's ports to the external order, payment and
//! catalog API (`kanpla-mock-api.openapi.json`) over HTTP, built to survive an
//! upstream that is slow and sometimes fails.
//!
//! - Every call carries `x-auth-user`; every `POST` an `Idempotency-Key` that
//!   stays the same on every retry.
//! - A connect timeout, a timeout per attempt, and a deadline per call.
//! - Retries on timeouts, connection errors, `429` and `5xx` "not now" answers,
//!   with exponential backoff and full jitter, honouring `Retry-After`.
//! - A circuit breaker over the recent failure rate, readable through
//!   [`UpstreamMonitor`](ordo_domain::upstream::UpstreamMonitor) with the recent
//!   error rate and latency percentiles.
//! - Amounts converted exactly between minor units and decimal numbers.
//!
//! Failures become the domain's errors: declined, rejected, outcome unknown
//! (a creating call reached the upstream but no answer came back), unavailable.

mod breaker;
mod client;
mod config;
pub mod decimal;
mod retry;
pub mod wire;

pub use client::UpstreamClient;
pub use config::{BreakerConfig, UpstreamConfig};

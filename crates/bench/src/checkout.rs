//! The checkout scenarios: `POST /v1/baskets/{id}/checkout` against an upstream
//! simulator this process runs (so that its latency and failures are set per
//! run), each request checking out a basket prepared before the run.
//!
//! `checkout`: the simulator answers every call after a fixed `L` and never
//! fails; a checkout makes two upstream calls on its critical path (order,
//! payment), so its p50 is compared with `2·L + 15 ms`. `checkout-flaky`: the
//! same latency with 30 % of the calls failing (retried by the adapter, or
//! left to reconciliation as `202`); its p99 is compared with the configured
//! upstream deadline.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ordo_domain::catalog::{NewProduct, ProductId, ProductKind, ProductName, Sku, StockLevel};
use ordo_domain::customers::CustomerId;
use ordo_domain::orders::Quantity;
use ordo_domain::{Currency, Money};
use ordo_server::Services;
use ordo_upstream_sim::{RunningSim, SimConfig, UpstreamSim};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::load::{LoadShape, Measurement, drive};
use crate::scenarios::{Target, next_slot};

/// The simulator's latency per call.
pub const LATENCY_MS: u64 = 20;

/// Workers of the checkout runs: enough to measure latency under concurrent
/// load without preparing thousands of baskets.
const WORKERS: usize = 8;

/// The simulator at a fixed latency and, with `failure_rate`, that share of its
/// calls failing (as `SimConfig::chaos` spreads them).
fn simulator_config(failure_rate: f64) -> SimConfig {
    SimConfig {
        latency_ms: LATENCY_MS,
        jitter_ms: 0,
        tail_probability: 0.0,
        tail_ms: 0,
        ..SimConfig::chaos(failure_rate)
    }
}

/// What the checkout scenarios need: the simulator the bench server calls,
/// the services to prepare baskets with, a product with ample stock, and the
/// customers to check out for.
pub struct CheckoutBench {
    sim: RunningSim,
    services: Services,
    product: ProductId,
    customers: Vec<Uuid>,
}

impl std::fmt::Debug for CheckoutBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckoutBench")
            .field("upstream", &self.sim.url())
            .finish_non_exhaustive()
    }
}

impl CheckoutBench {
    /// Starts the simulator and creates the product.
    ///
    /// # Errors
    /// When the simulator cannot start or the product cannot be created.
    pub async fn start(services: Services, customers: Vec<Uuid>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !customers.is_empty(),
            "the checkout scenarios need customers"
        );
        let sim = UpstreamSim::start_on_own_thread(simulator_config(0.0))?;
        let product = NewProduct::new(
            Sku::parse("BENCH-CHECKOUT")?,
            ProductName::parse("Checkout bench beans")?,
            ProductKind::Good,
            Money::new(1_250, Currency::parse("EUR")?),
            Some(StockLevel::parse(StockLevel::MAX)?),
            None,
        )
        .map_err(|e| anyhow::anyhow!("the checkout product: {e}"))?;
        let product = services
            .catalog
            .create(product)
            .await
            .map_err(|e| anyhow::anyhow!("creating the checkout product: {e}"))?;
        Ok(Self {
            sim,
            product: product.id(),
            services,
            customers,
        })
    }

    /// The upstream's base URL, for the bench server.
    pub fn upstream_url(&self) -> String {
        self.sim.url()
    }

    /// One run: `failure_rate` of the upstream's calls failing.
    ///
    /// # Errors
    /// When the simulator cannot be configured or baskets cannot be prepared.
    pub async fn run(
        &self,
        failure_rate: f64,
        target: &Target,
        shape: LoadShape,
    ) -> anyhow::Result<Measurement> {
        let shape = LoadShape {
            concurrency: shape.concurrency.min(WORKERS),
            ..shape
        };
        self.sim.set_config(simulator_config(failure_rate))?;
        // At most one checkout per worker every 2·L, and a margin.
        let seconds = (shape.warmup + shape.duration).as_secs_f64();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let per_worker = (seconds * 1_000.0 / (2 * LATENCY_MS) as f64).ceil() as usize + 10;
        let baskets = self.prepare(shape.concurrency * per_worker).await?;
        let baskets = Arc::new(Mutex::new(baskets));
        let accepted = if failure_rate > 0.0 {
            // 202: the payment's outcome is left to reconciliation.
            [StatusCode::CREATED, StatusCode::ACCEPTED]
        } else {
            [StatusCode::CREATED, StatusCode::CREATED]
        };
        let t = target.clone();
        Ok(drive(shape, move |_, _| {
            let (t, baskets) = (t.clone(), baskets.clone());
            async move {
                let Some(basket) = baskets.lock().ok().and_then(|mut b| b.pop()) else {
                    return false;
                };
                let sent = t
                    .client
                    .post(format!("{}/v1/baskets/{basket}/checkout", t.base_url))
                    .header("idempotency-key", Uuid::now_v7().to_string())
                    .json(&json!({
                        "payment": {"token": "tok_ok"},
                        "scheduled_at": next_slot(40),
                    }))
                    .send()
                    .await;
                match sent {
                    Ok(response) => {
                        let ok = accepted.contains(&response.status());
                        response.bytes().await.is_ok() && ok
                    }
                    Err(_) => false,
                }
            }
        })
        .await)
    }

    /// `count` open baskets, each of one of the customers, holding one unit.
    async fn prepare(&self, count: usize) -> anyhow::Result<Vec<Uuid>> {
        let one = Quantity::parse(1)?;
        let mut baskets = Vec::with_capacity(count);
        for n in 0..count {
            let customer = CustomerId::from_uuid(self.customers[n % self.customers.len()]);
            let basket = self
                .services
                .baskets
                .create(Some(customer))
                .await
                .map_err(|e| anyhow::anyhow!("creating a basket: {e}"))?;
            self.services
                .baskets
                .set_item(basket.id(), self.product, Some(one), None)
                .await
                .map_err(|e| anyhow::anyhow!("filling a basket: {e}"))?;
            baskets.push(basket.id().as_uuid());
        }
        Ok(baskets)
    }
}

/// The checkout figures beside their goals, when the run measured them.
pub fn print_note(fixed: Option<&Measurement>, flaky: Option<&Measurement>, deadline: Duration) {
    if let Some(fixed) = fixed {
        println!(
            "checkout: p50 {:.1} ms beside 2·L + 15 ms = {} ms (L = {LATENCY_MS} ms per upstream call, 2·L = {} ms; no failures)",
            fixed.p50_ms,
            2 * LATENCY_MS + 15,
            2 * LATENCY_MS
        );
    }
    if let Some(flaky) = flaky {
        println!(
            "checkout-flaky: p99 {:.1} ms beside the upstream deadline {} ms (30 % of upstream calls failing, L = {LATENCY_MS} ms, 2·L = {} ms)",
            flaky.p99_ms,
            deadline.as_millis(),
            2 * LATENCY_MS
        );
    }
}

/// The upstream deadline the bench server runs with (the default).
pub fn deadline() -> Duration {
    Duration::from_millis(ordo_server::Settings::default().upstream.deadline_ms)
}

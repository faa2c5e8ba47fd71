//! What every handler can reach.

use std::time::Duration;

use ordo_domain::Currency;
use ordo_domain::activity::{ActivityService, UsageService};
use ordo_domain::auth::AuthService;
use ordo_domain::baskets::BasketService;
use ordo_domain::catalog::{CatalogService, CatalogSync};
use ordo_domain::checkout::CheckoutService;
use ordo_domain::clients::ClientService;
use ordo_domain::customers::CustomerService;
use ordo_domain::idempotency::IdempotencyService;
use ordo_domain::orders::OrderService;
use ordo_domain::ratelimit::RateLimiter;
use ordo_domain::reports::ReportService;
use ordo_domain::scheduling::SchedulingService;
use ordo_postgres::PgPool;

use crate::app::{Services, UpstreamPorts};
use crate::draining::Draining;
use crate::scheduler::RunNow;
use crate::tasks::TaskHealth;

/// The services and resources shared by all workers.
#[derive(Clone)]
pub struct AppState {
    /// Products and stock.
    pub catalog: CatalogService,
    /// Customers.
    pub customers: CustomerService,
    /// Orders.
    pub orders: OrderService,
    /// Baskets.
    pub baskets: BasketService,
    /// Checkout, its reconciliation and its outbox.
    pub checkout: CheckoutService,
    /// Idempotency keys.
    pub idempotency: IdempotencyService,
    /// Users, logins and tokens.
    pub auth: AuthService,
    /// Rate limits.
    pub rate_limits: RateLimiter,
    /// API clients and their keys.
    pub clients: ClientService,
    /// Scheduled jobs.
    pub scheduling: SchedulingService,
    /// Wakes this instance's scheduler when a run is requested.
    pub run_now: RunNow,
    /// Sales and stock reports.
    pub reports: ReportService,
    /// The local catalog kept in step with the upstream's.
    pub catalog_sync: CatalogSync,
    /// The external API's ports (its monitor tells its recent health).
    pub upstream: UpstreamPorts,
    /// The currency of products created without one.
    pub default_currency: Currency,
    /// Recording hits.
    pub activity: ActivityService,
    /// Usage figures.
    pub usage: UsageService,
    /// How long clients may reuse a usage answer (`Cache-Control: max-age`).
    pub usage_max_age: Duration,
    /// The pool, for readiness checks.
    pub pool: PgPool,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Which background tasks died, for readiness checks.
    pub tasks: TaskHealth,
    /// Whether the embedded PostgreSQL is up (it is being restarted otherwise);
    /// `None` with an external database.
    pub database_health: Option<ordo_postgres::ClusterHealth>,
    /// Set once shutdown begins; `/readyz` answers 503 from then on.
    pub draining: Draining,
    /// The shared Redis (`ORDO_REDIS_URL`), whose connections each HTTP worker
    /// adopts; `None` without one.
    pub redis: Option<ordo_redis::Redis>,
}

impl AppState {
    /// The state of an application with these services.
    pub fn new(
        services: Services,
        pool: PgPool,
        metrics: metrics_exporter_prometheus::PrometheusHandle,
        tasks: TaskHealth,
    ) -> Self {
        let Services {
            catalog,
            customers,
            orders,
            baskets,
            checkout,
            idempotency,
            auth,
            rate_limits,
            clients,
            scheduling,
            reports,
            sales_rollup: _,
            catalog_sync,
            upstream,
            default_currency,
            activity,
            usage,
            usage_max_age,
        } = services;
        Self {
            catalog,
            customers,
            orders,
            baskets,
            checkout,
            idempotency,
            auth,
            rate_limits,
            clients,
            scheduling,
            run_now: RunNow::default(),
            reports,
            catalog_sync,
            upstream,
            default_currency,
            activity,
            usage,
            usage_max_age,
            pool,
            metrics,
            tasks,
            database_health: None,
            draining: Draining::default(),
            redis: None,
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("default_currency", &self.default_currency)
            .finish_non_exhaustive()
    }
}

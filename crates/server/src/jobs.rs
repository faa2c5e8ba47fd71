//! The scheduled jobs' work: each calls the one domain function its capability
//! provides. Which of them this build runs, and on what default schedule, is
//! `job_registry` in `app.rs`.

use async_trait::async_trait;
use ordo_domain::activity::ActivityService;
use ordo_domain::baskets::BasketService;
use ordo_domain::catalog::CatalogSync;
use ordo_domain::checkout::CheckoutService;
use ordo_domain::reports::SalesRollup;
use ordo_domain::scheduling::Job;

/// `expire-baskets`: marks expired the open baskets whose time ran out.
#[derive(Debug, Clone)]
pub struct ExpireBaskets(pub BasketService);

#[async_trait]
impl Job for ExpireBaskets {
    async fn run(&self) -> anyhow::Result<()> {
        let expired = self.0.expire_due().await?;
        tracing::info!(expired, "expired the baskets whose time ran out");
        Ok(())
    }
}

/// How many items one run of a checkout job handles at most; the next run takes
/// the rest.
const CHECKOUT_BATCH: usize = 500;

/// `dispatch-outbox`: delivers the due upstream completions of settled
/// checkouts. The application's own dispatcher task does the same every second;
/// both claim rows one small batch at a time (per-row claims), so they share the
/// work and never deliver one row twice at once.
#[derive(Debug, Clone)]
pub struct DispatchOutbox(pub CheckoutService);

#[async_trait]
impl Job for DispatchOutbox {
    async fn run(&self) -> anyhow::Result<()> {
        let report = self.0.dispatch_outbox_once(CHECKOUT_BATCH).await?;
        tracing::info!(?report, "dispatched the due outbox items");
        Ok(())
    }
}

/// `reconcile-payments`: settles the checkouts whose payment outcome is unknown
/// by asking the upstream, with the same idempotency keys.
#[derive(Debug, Clone)]
pub struct ReconcilePayments(pub CheckoutService);

#[async_trait]
impl Job for ReconcilePayments {
    async fn run(&self) -> anyhow::Result<()> {
        let report = self.0.reconcile_due(CHECKOUT_BATCH).await?;
        tracing::info!(?report, "reconciled the pending payments");
        Ok(())
    }
}

/// `sync-catalog`: brings the local catalog in step with the upstream's.
#[derive(Debug, Clone)]
pub struct SyncCatalog(pub CatalogSync);

#[async_trait]
impl Job for SyncCatalog {
    async fn run(&self) -> anyhow::Result<()> {
        let report = self.0.sync_once().await?;
        tracing::info!(?report, "synced the catalog");
        Ok(())
    }
}

/// `prune-activity`: drops the raw hits' day partitions past the retention (the
/// hourly counts stay).
#[derive(Debug, Clone)]
pub struct PruneActivity(pub ActivityService);

#[async_trait]
impl Job for PruneActivity {
    async fn run(&self) -> anyhow::Result<()> {
        let dropped = self.0.prune().await?;
        tracing::info!(
            days = dropped.len(),
            "pruned the activity past its retention"
        );
        Ok(())
    }
}

/// `rollup-sales`: rolls up the days whose sales changed, so that the sales
/// reports read few rows (they are exact without it, only slower).
#[derive(Clone)]
pub struct RollUpSales(pub std::sync::Arc<dyn SalesRollup>);

impl std::fmt::Debug for RollUpSales {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollUpSales").finish_non_exhaustive()
    }
}

#[async_trait]
impl Job for RollUpSales {
    async fn run(&self) -> anyhow::Result<()> {
        let days = self.0.roll_up_changed_days().await?;
        tracing::info!(days, "rolled up the days whose sales changed");
        Ok(())
    }
}

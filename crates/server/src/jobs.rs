//! The scheduled jobs' work: each calls the one domain function its capability
//! provides. Which of them this build runs, and on what default schedule, is
//! `job_registry` in `app.rs`.

use async_trait::async_trait;
use ordo_domain::baskets::BasketService;
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

//! The outbox dispatcher: a background task of the application that delivers
//! due outbox rows (the upstream order's final status after a checkout) off the
//! request path. Each pass claims its rows a small batch at a time, per row, with
//! `FOR UPDATE SKIP LOCKED` and a lease, so several instances (and the
//! `dispatch-outbox` job beside this task) share the work without delivering a
//! row twice at once; delivery is at least once, and setting a status again
//! changes nothing upstream.

use std::time::Duration;

use ordo_domain::checkout::CheckoutService;
use tokio_util::sync::CancellationToken;

/// How often the dispatcher looks for due rows.
const INTERVAL: Duration = Duration::from_secs(1);

/// Rows per pass; a full pass is followed by another at once.
const BATCH: usize = 100;

/// Runs until `cancel`, finishing the pass under way first.
///
/// # Errors
/// Never: a failing pass is logged and tried again at the next interval.
pub async fn run(checkout: CheckoutService, cancel: CancellationToken) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            () = tokio::time::sleep(INTERVAL) => {}
        }
        loop {
            match checkout.dispatch_outbox_once(BATCH).await {
                Ok(report) if report.handled() == BATCH => {}
                Ok(report) => {
                    if report != Default::default() {
                        tracing::debug!(?report, "dispatched the outbox");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "dispatching the outbox failed");
                    break;
                }
            }
        }
    }
}

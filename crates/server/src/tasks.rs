//! Background tasks owned by the application: each gets the same cancellation
//! signal, a task that fails or panics is logged and makes `/readyz` fail, and
//! shutdown lets every task finish its work within a bounded grace.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// What `/readyz` needs to know about the background tasks: the ones that died.
#[derive(Debug, Clone, Default)]
pub struct TaskHealth(Arc<Mutex<Vec<TaskFailure>>>);

/// A background task that stopped before it was asked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    /// The task's name.
    pub task: &'static str,
    /// Why: its error, its panic message, or that it returned early.
    pub reason: String,
}

impl TaskHealth {
    /// The tasks that died, in the order they did.
    pub fn failures(&self) -> Vec<TaskFailure> {
        self.0.lock().map(|f| f.clone()).unwrap_or_default()
    }

    fn record(&self, task: &'static str, reason: String) {
        tracing::error!(task, %reason, "a background task died");
        if let Ok(mut failures) = self.0.lock() {
            failures.push(TaskFailure { task, reason });
        }
    }
}

/// The set of background tasks of one application.
#[derive(Debug)]
pub struct BackgroundTasks {
    cancel: CancellationToken,
    running: JoinSet<()>,
    health: TaskHealth,
}

impl Default for BackgroundTasks {
    fn default() -> Self {
        Self::new()
    }
}

impl BackgroundTasks {
    /// An empty set.
    pub fn new() -> Self {
        Self {
            cancel: CancellationToken::new(),
            running: JoinSet::new(),
            health: TaskHealth::default(),
        }
    }

    /// Where failures are recorded; `/readyz` reads it.
    pub fn health(&self) -> TaskHealth {
        self.health.clone()
    }

    /// Starts `task` on the runtime. It is given the set's cancellation token and
    /// must return once the token is cancelled, after finishing the work it has
    /// accepted (flushing buffers, releasing leases). Returning early, returning an
    /// error, or panicking is recorded as a failure.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let cancel = self.cancel.clone();
        let health = self.health.clone();
        let work = task(cancel.clone());
        let span = tracing::info_span!("task", task = name);
        self.running.spawn(
            async move {
                let outcome = std::panic::AssertUnwindSafe(work).catch_unwind().await;
                match outcome {
                    Ok(Ok(())) if cancel.is_cancelled() => {
                        tracing::debug!("finished");
                    }
                    Ok(Ok(())) => health.record(name, "returned before shutdown".to_owned()),
                    Ok(Err(e)) => health.record(name, format!("{e:#}")),
                    Err(panic) => health.record(name, panic_message(panic.as_ref())),
                }
            }
            .instrument(span),
        );
    }

    /// Tells every task to finish and waits for them, at most `grace`; tasks still
    /// running then are aborted, and named in the log.
    pub async fn shutdown(mut self, grace: Duration) {
        self.cancel.cancel();
        let all_done = async { while self.running.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all_done).await.is_err() {
            tracing::warn!(
                remaining = self.running.len(),
                ?grace,
                "background tasks did not finish in time; aborting them"
            );
            self.running.shutdown().await;
        }
    }
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    format!("panicked: {text}")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn shutdown_waits_for_a_task_to_finish_its_work() {
        let flushed = Arc::new(AtomicBool::new(false));
        let mut tasks = BackgroundTasks::new();
        let seen = flushed.clone();
        tasks.spawn("flusher", move |cancel| async move {
            cancel.cancelled().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            seen.store(true, Ordering::SeqCst);
            Ok(())
        });
        let health = tasks.health();
        tasks.shutdown(Duration::from_secs(5)).await;
        assert!(flushed.load(Ordering::SeqCst));
        assert!(health.failures().is_empty());
    }

    #[tokio::test]
    async fn a_panicking_task_is_recorded_with_its_message() {
        let mut tasks = BackgroundTasks::new();
        let health = tasks.health();
        tasks.spawn("doomed", |_| async { panic!("the disk is gone") });
        for _ in 0..100 {
            if !health.failures().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let failures = health.failures();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].task, "doomed");
        assert!(
            failures[0].reason.contains("the disk is gone"),
            "{failures:?}"
        );
        tasks.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn a_task_that_returns_early_or_fails_is_recorded() {
        let mut tasks = BackgroundTasks::new();
        let health = tasks.health();
        tasks.spawn("quitter", |_| async { Ok(()) });
        tasks.spawn("failer", |_| async {
            Err(anyhow::anyhow!("no route to host"))
        });
        for _ in 0..100 {
            if health.failures().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut reasons: Vec<String> = health
            .failures()
            .into_iter()
            .map(|f| format!("{}: {}", f.task, f.reason))
            .collect();
        reasons.sort();
        assert_eq!(
            reasons,
            [
                "failer: no route to host",
                "quitter: returned before shutdown"
            ]
        );
        tasks.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn a_task_that_ignores_cancellation_is_aborted_after_the_grace() {
        let mut tasks = BackgroundTasks::new();
        tasks.spawn("stubborn", |_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        });
        let started = std::time::Instant::now();
        tasks.shutdown(Duration::from_millis(100)).await;
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

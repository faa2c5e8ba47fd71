//! This instance's scheduler: the jobs it can run, and the background task that
//! polls for what is due, runs it under a renewed lease and records the outcome.
//! The rules (what is due, who takes it, what happens when a lease runs out) are
//! the domain's `scheduling`; the database makes them hold across instances.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use ordo_domain::scheduling::{
    InstanceId, Job, JobDefinition, JobName, JobRun, Schedule, SchedulingService,
};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The jobs this build can run: a name, the schedule it starts with, and the
/// capability that does the work. Registering one is one call in `app.rs`.
#[derive(Default, Clone)]
pub struct JobRegistry {
    jobs: Vec<(JobDefinition, Arc<dyn Job>)>,
}

impl std::fmt::Debug for JobRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.jobs.iter().map(|(d, _)| d))
            .finish()
    }
}

impl JobRegistry {
    /// Adds a job.
    ///
    /// # Errors
    /// When the name or the schedule is invalid, or the name is taken.
    pub fn register(
        &mut self,
        name: &str,
        default_schedule: &str,
        job: Arc<dyn Job>,
    ) -> anyhow::Result<()> {
        let name = JobName::parse(name).map_err(|e| anyhow::anyhow!("job {name}: {e}"))?;
        let default_schedule =
            Schedule::parse(default_schedule).map_err(|e| anyhow::anyhow!("job {name}: {e}"))?;
        anyhow::ensure!(
            self.jobs.iter().all(|(d, _)| d.name != name),
            "job {name} is registered twice"
        );
        self.jobs.push((
            JobDefinition {
                name,
                default_schedule,
            },
            job,
        ));
        Ok(())
    }

    /// What to store for each job.
    pub fn definitions(&self) -> Vec<JobDefinition> {
        self.jobs.iter().map(|(d, _)| d.clone()).collect()
    }
}

/// Wakes the scheduler of this instance, so that a run just requested starts
/// now rather than at the next poll: the hook behind `POST /v1/jobs/{name}/run`.
#[derive(Debug, Clone, Default)]
pub struct RunNow(Arc<Notify>);

impl RunNow {
    /// Wakes the scheduler (a no-op when this instance runs none: another
    /// instance's scheduler takes the run at its next poll).
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// A name for this process in run history: `host:pid:random`.
///
/// # Panics
/// Never: the name is never empty.
pub fn instance_id() -> InstanceId {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ordo".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("{host}:{}:{}", std::process::id(), &random[..8]);
    #[allow(clippy::expect_used)] // at most ~100 printable characters
    InstanceId::parse(&name[..name.len().min(200)]).expect("a valid instance id")
}

/// This instance's scheduler.
#[derive(Clone)]
pub struct Scheduler {
    service: SchedulingService,
    jobs: Arc<HashMap<JobName, Arc<dyn Job>>>,
    names: Vec<JobName>,
    instance: InstanceId,
    run_now: RunNow,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("instance", &self.instance)
            .field("jobs", &self.names)
            .finish_non_exhaustive()
    }
}

/// How often finished runs older than the history are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Scheduler {
    /// A scheduler running `registry`'s jobs as `instance`.
    pub fn new(service: SchedulingService, registry: &JobRegistry, instance: InstanceId) -> Self {
        let jobs: HashMap<JobName, Arc<dyn Job>> = registry
            .jobs
            .iter()
            .map(|(d, job)| (d.name.clone(), job.clone()))
            .collect();
        let mut names: Vec<JobName> = jobs.keys().cloned().collect();
        names.sort();
        Self {
            service,
            jobs: Arc::new(jobs),
            names,
            instance,
            run_now: RunNow::default(),
        }
    }

    /// Who this scheduler runs jobs as.
    pub fn instance(&self) -> &InstanceId {
        &self.instance
    }

    /// The hook that wakes it.
    pub fn run_now(&self) -> RunNow {
        self.run_now.clone()
    }

    /// One poll: takes what is due now and runs it to the end. Returns the runs
    /// it took (as taken).
    ///
    /// # Errors
    /// When the database cannot be asked.
    pub async fn tick(&self) -> anyhow::Result<Vec<JobRun>> {
        let taken = self.service.claim_due(&self.instance, &self.names).await?;
        futures::future::join_all(taken.iter().cloned().map(|run| self.execute(run))).await;
        Ok(taken)
    }

    /// Polls every `poll` (and whenever woken, and whenever a run ends) until
    /// `cancel`, running what it takes concurrently; then lets the runs in
    /// progress finish (the application's shutdown grace bounds the wait; a run
    /// cut short is taken over elsewhere once its lease runs out).
    ///
    /// # Errors
    /// Never: a failed poll is logged and the next one tries again.
    pub async fn run(self, poll: Duration, cancel: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(instance = %self.instance, jobs = ?self.names, "scheduler started");
        let mut running = JoinSet::new();
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_pruned: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticker.tick() => {}
                () = self.run_now.0.notified() => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
            if last_pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                last_pruned = Some(tokio::time::Instant::now());
                match self.service.prune().await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::info!(pruned, "pruned old job runs"),
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "could not prune job runs"),
                }
            }
            match self.service.claim_due(&self.instance, &self.names).await {
                Ok(taken) => {
                    for run in taken {
                        let this = self.clone();
                        running.spawn(async move { this.execute(run).await });
                    }
                }
                Err(e) => tracing::warn!(
                    error = %format!("{e:#}"),
                    "could not poll for due jobs; trying again at the next poll"
                ),
            }
        }
        while running.join_next().await.is_some() {}
        tracing::info!("scheduler stopped");
        Ok(())
    }

    /// Runs a run this instance took, renewing its lease every third of it, and
    /// records the outcome. Stops the job when the lease is lost (another
    /// instance took the run over).
    async fn execute(&self, run: JobRun) {
        let span = tracing::info_span!(
            "job",
            job = %run.job(),
            run_id = %run.id(),
            attempt = run.attempts()
        );
        async {
            let Some(job) = self.jobs.get(run.job()).cloned() else {
                // Claims only name this instance's jobs.
                tracing::error!("took a run of a job this instance cannot run");
                return;
            };
            let renew_every = (self.service.policy().claims.lease.get() / 3)
                .to_std()
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_millis(10));
            let mut held = run;
            let work = std::panic::AssertUnwindSafe(job.run()).catch_unwind();
            tokio::pin!(work);
            let mut renewals = tokio::time::interval_at(
                tokio::time::Instant::now() + renew_every,
                renew_every,
            );
            tracing::info!("job started");
            let outcome = loop {
                tokio::select! {
                    result = &mut work => break match result {
                        Ok(result) => result.map_err(|e| format!("{e:#}")),
                        Err(panic) => Err(crate::tasks::panic_message(panic.as_ref())),
                    },
                    _ = renewals.tick() => match self.service.renew(&held).await {
                        Ok(Some(renewed)) => held = renewed,
                        Ok(None) => {
                            tracing::warn!("another instance took the run over; stopping it here");
                            return;
                        }
                        // The job goes on; if the database stays away the lease
                        // runs out and another instance runs the job again.
                        Err(e) => tracing::warn!(error = %format!("{e:#}"), "could not renew the run's lease"),
                    },
                }
            };
            match &outcome {
                Ok(()) => tracing::info!("job succeeded"),
                Err(error) => tracing::warn!(%error, "job failed"),
            }
            match self.service.finish(&held, outcome).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    "the run was taken over by another instance before it finished here"
                ),
                Err(e) => tracing::error!(
                    error = %format!("{e:#}"),
                    "could not record the run's outcome; it runs again once its lease runs out"
                ),
            }
        }
        .instrument(span)
        .await;
    }
}

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    ClaimContext, JobChanges, JobName, JobRun, JobState, ListRunsError, RunId, TriggerJobError,
    UpdateJobError,
};
use crate::page::{Page, PageRequest};
use crate::value::VersionMatch;

/// Work the scheduler runs: a capability of another area (expiring baskets,
/// dispatching the outbox, …) behind one call.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Job: Send + Sync {
    /// Does the work once. May be cut short (its future dropped) when the
    /// instance loses the run's lease or stops; another instance then runs it
    /// again, so it must be safe to repeat.
    ///
    /// # Errors
    /// When the work failed; the run is recorded as failed with this error.
    async fn run(&self) -> anyhow::Result<()>;
}

/// A job with its latest run, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOverview {
    /// The job.
    pub job: JobState,
    /// Its newest run, if it ever ran or was asked to.
    pub last_run: Option<JobRun>,
}

/// Storage of jobs and their runs, shared by every instance.
///
/// Every method that decides about runs holds the job against every other
/// instance from reading its open runs to writing the outcome, so the rules of
/// [`claim`](super::claim) and [`trigger`](super::trigger) hold across processes.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores the jobs not stored yet; a job already stored (by another instance,
    /// or changed by an administrator) keeps its schedule and state.
    ///
    /// # Errors
    /// When storage fails.
    async fn register(&self, jobs: Vec<JobState>) -> anyhow::Result<()>;

    /// Every stored job with its newest run, by name.
    ///
    /// # Errors
    /// When storage fails.
    async fn list(&self) -> anyhow::Result<Vec<JobOverview>>;

    /// A job's runs, newest first.
    ///
    /// # Errors
    /// `NotFound`.
    async fn runs(&self, name: JobName, page: PageRequest) -> Result<Page<JobRun>, ListRunsError>;

    /// Applies `changes` with [`JobState::changed`] at `at` to the stored job,
    /// when `expected` is given only if it is at one of those versions. Returns
    /// the job as stored afterwards, with its newest run.
    ///
    /// # Errors
    /// `NotFound`, `VersionMismatch`.
    async fn update(
        &self,
        name: JobName,
        changes: JobChanges,
        expected: Option<VersionMatch>,
        at: DateTime<Utc>,
    ) -> Result<JobOverview, UpdateJobError>;

    /// Applies [`trigger`](super::trigger) to the job: returns the pending run
    /// that carries out the request, storing it when new (id `new_run`).
    ///
    /// # Errors
    /// `NotFound`.
    async fn trigger(
        &self,
        name: JobName,
        new_run: RunId,
        at: DateTime<Utc>,
    ) -> Result<JobRun, TriggerJobError>;

    /// For each of `candidates` (a job and the id of a run created if it is due)
    /// that no other instance is deciding about at this moment, applies
    /// [`claim`](super::claim) and stores its outcome. Returns the runs taken,
    /// which `ctx.instance` now holds. A job another instance is deciding about
    /// is skipped, not waited for: that instance takes what there is to take.
    ///
    /// # Errors
    /// When storage fails; nothing is taken then.
    async fn claim(
        &self,
        candidates: Vec<(JobName, RunId)>,
        ctx: ClaimContext,
    ) -> anyhow::Result<Vec<JobRun>>;

    /// Stores `run` (renewed or finished) if its instance still holds it: it is
    /// running, by the same instance, in the same attempt. Returns whether it did.
    ///
    /// # Errors
    /// When storage fails.
    async fn store_held(&self, run: JobRun) -> anyhow::Result<bool>;

    /// Deletes finished runs that finished before `before`; returns how many.
    ///
    /// # Errors
    /// When storage fails.
    async fn prune(&self, before: DateTime<Utc>) -> anyhow::Result<u64>;
}

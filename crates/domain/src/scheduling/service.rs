use std::sync::Arc;

use super::{
    ClaimContext, ClaimPolicy, InstanceId, JobChanges, JobDefinition, JobName, JobOverview, JobRun,
    JobState, JobStore, ListRunsError, RunId, TriggerJobError, UpdateJobError,
};
use crate::clock::Clock;
use crate::ids::IdSource;
use crate::page::{Page, PageRequest};
use crate::value::VersionMatch;

/// The knobs of the scheduling rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulingPolicy {
    /// How runs are taken and held.
    pub claims: ClaimPolicy,
    /// How long finished runs are kept.
    pub history: chrono::TimeDelta,
}

/// The scheduling use cases: administering jobs, and what an instance's
/// scheduler does on each poll.
#[derive(Clone)]
pub struct SchedulingService {
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    policy: SchedulingPolicy,
}

impl std::fmt::Debug for SchedulingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulingService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl SchedulingService {
    /// A service over the given ports.
    pub fn new(
        store: Arc<dyn JobStore>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        policy: SchedulingPolicy,
    ) -> Self {
        Self {
            store,
            clock,
            ids,
            policy,
        }
    }

    /// The rules in force.
    pub fn policy(&self) -> SchedulingPolicy {
        self.policy
    }

    /// Stores the jobs this instance can run that are not stored yet, due first
    /// at their default schedule's next instant.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn register(&self, jobs: &[JobDefinition]) -> anyhow::Result<()> {
        let now = self.clock.now();
        let states = jobs.iter().map(|d| JobState::registered(d, now)).collect();
        self.store.register(states).await
    }

    /// Every job with its newest run, by name.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn list(&self) -> anyhow::Result<Vec<JobOverview>> {
        self.store.list().await
    }

    /// A job's runs, newest first.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn runs(
        &self,
        name: JobName,
        page: PageRequest,
    ) -> Result<Page<JobRun>, ListRunsError> {
        self.store.runs(name, page).await
    }

    /// Changes a job's schedule or enabled flag; every instance follows at its
    /// next poll. Returns the job with its newest run.
    ///
    /// # Errors
    /// `NotFound`, `VersionMismatch` (only with `if_match`).
    #[tracing::instrument(level = "debug", skip_all, fields(job = %name))]
    pub async fn update(
        &self,
        name: JobName,
        changes: JobChanges,
        if_match: Option<VersionMatch>,
    ) -> Result<JobOverview, UpdateJobError> {
        self.store
            .update(name, changes, if_match, self.clock.now())
            .await
    }

    /// Asks for a run of a job now (enabled or not): the pending run that will
    /// carry it out, queued behind a running one.
    ///
    /// # Errors
    /// `NotFound`.
    #[tracing::instrument(level = "debug", skip_all, fields(job = %name))]
    pub async fn trigger(&self, name: JobName) -> Result<JobRun, TriggerJobError> {
        let new_run = RunId::from_uuid(self.ids.new_id());
        self.store.trigger(name, new_run, self.clock.now()).await
    }

    /// Takes, for `instance`, what there is to take now of the jobs it can run
    /// (see [`claim`](super::claim)). The caller runs each run returned, renews
    /// its lease with [`renew`](Self::renew) and ends it with
    /// [`finish`](Self::finish).
    ///
    /// # Errors
    /// When storage fails; nothing was taken.
    pub async fn claim_due(
        &self,
        instance: &InstanceId,
        jobs: &[JobName],
    ) -> anyhow::Result<Vec<JobRun>> {
        let candidates = jobs
            .iter()
            .map(|name| (name.clone(), RunId::from_uuid(self.ids.new_id())))
            .collect();
        let ctx = ClaimContext {
            now: self.clock.now(),
            instance: instance.clone(),
            policy: self.policy.claims,
        };
        self.store.claim(candidates, ctx).await
    }

    /// Extends the lease of a run this instance holds. Returns the renewed run,
    /// or `None` when the instance no longer holds it (its lease ran out and
    /// another instance took it over): the caller must stop running it.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn renew(&self, run: &JobRun) -> anyhow::Result<Option<JobRun>> {
        let renewed = run.renewed(self.clock.now(), self.policy.claims.lease);
        Ok(self
            .store
            .store_held(renewed.clone())
            .await?
            .then_some(renewed))
    }

    /// Records the outcome of a run this instance holds. Returns `false` when it
    /// no longer held it: the outcome of the instance that took it over counts.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn finish(&self, run: &JobRun, outcome: Result<(), String>) -> anyhow::Result<bool> {
        self.store
            .store_held(run.finished(outcome, self.clock.now()))
            .await
    }

    /// Deletes the history older than the policy keeps; returns how many runs.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn prune(&self) -> anyhow::Result<u64> {
        self.store
            .prune(self.clock.now() - self.policy.history)
            .await
    }
}

#[cfg(test)]
mod tests;

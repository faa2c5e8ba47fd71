//! Scheduled jobs: work that runs on a cron schedule (in UTC) or by hand, exactly
//! once per due instant however many instances share the database.
//!
//! A job is stored once for all instances with its schedule, its enabled flag and
//! when it is next due. An instance polls: for each job it can run, it takes what
//! the [`claim`] rules allow while it holds the job against the others. A run it
//! takes is held under a [`Lease`] that it renews while the job runs; an instance
//! that dies lets the lease run out, and another takes the run over. A manual
//! [`trigger`] queues a run behind the one running, so a job never runs twice at
//! once. Finished runs are kept for a while ([`SchedulingPolicy::history`]).

mod claim;
mod error;
mod model;
mod ports;
mod service;

pub use claim::{Claim, ClaimContext, ClaimPolicy, Triggered, claim, trigger};
pub use error::{ListRunsError, TriggerJobError, UpdateJobError};
pub use model::{
    InstanceId, JobChanges, JobDefinition, JobName, JobRun, JobState, Lease, RunId, RunStatus,
    RunTrigger, Schedule, StoredRun,
};
pub use ports::{Job, JobOverview, JobStore};
#[cfg(any(test, feature = "mocks"))]
pub use ports::{MockJob, MockJobStore};
pub use service::{SchedulingPolicy, SchedulingService};

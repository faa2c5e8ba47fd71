use super::JobName;

/// Why a job's run history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListRunsError {
    /// No job has this name.
    #[error("job {0} does not exist")]
    NotFound(JobName),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a job could not be changed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum UpdateJobError {
    /// No job has this name.
    #[error("job {0} does not exist")]
    NotFound(JobName),
    /// The job changed since the version the caller named in `If-Match`.
    #[error("job {0} was changed by someone else")]
    VersionMismatch(JobName),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a run could not be requested. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum TriggerJobError {
    /// No job has this name.
    #[error("job {0} does not exist")]
    NotFound(JobName),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

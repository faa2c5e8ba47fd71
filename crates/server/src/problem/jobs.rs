//! Scheduling errors mapped to problem documents.

use ordo_domain::scheduling::{ListRunsError, TriggerJobError, UpdateJobError};

use super::{ApiError, ProblemCode};

/// 404 `job_not_found`.
pub fn job_not_found(name: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ProblemCode::JobNotFound,
        format!("job {name} does not exist"),
    )
}

impl From<ListRunsError> for ApiError {
    fn from(e: ListRunsError) -> Self {
        match e {
            ListRunsError::NotFound(name) => job_not_found(name),
            ListRunsError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<UpdateJobError> for ApiError {
    fn from(e: UpdateJobError) -> Self {
        match e {
            UpdateJobError::NotFound(name) => job_not_found(name),
            UpdateJobError::VersionMismatch(name) => {
                ApiError::precondition_failed(format!("job {name} has changed since that version"))
            }
            UpdateJobError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<TriggerJobError> for ApiError {
    fn from(e: TriggerJobError) -> Self {
        match e {
            TriggerJobError::NotFound(name) => job_not_found(name),
            TriggerJobError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

//! Activity and usage errors as problem documents.

use ordo_domain::activity::{DailyUsageError, InvalidHit, RecordHitsError};

use super::{ApiError, FieldError, ProblemCode, client_not_found};

impl ApiError {
    /// The answer to hits that were not accepted. `indexed`: the body was an
    /// array, so each invalid hit is named by its index (`[3].status`).
    pub fn hits_not_recorded(error: RecordHitsError, indexed: bool) -> Self {
        match error {
            RecordHitsError::Invalid(invalid) => Self::validation(
                invalid
                    .into_iter()
                    .map(|InvalidHit { index, field, message }| {
                        let path = if indexed {
                            format!("[{index}].{field}")
                        } else {
                            field.to_owned()
                        };
                        FieldError::new(path, message)
                    })
                    .collect(),
            ),
            RecordHitsError::BadCount { max, .. } => Self::validation(vec![FieldError::new(
                "body",
                format!("send one hit or an array of 1 to {max} hits"),
            )]),
            RecordHitsError::Backpressure { retry_after } => Self::new(
                ProblemCode::IngestionBackpressure,
                "Too many hits are waiting to be written; nothing of this request was accepted. Try again after the seconds in Retry-After.",
            )
            .retry_after(retry_after),
            RecordHitsError::Unexpected(e) => Self::internal(e),
        }
    }
}

impl From<DailyUsageError> for ApiError {
    fn from(e: DailyUsageError) -> Self {
        match e {
            DailyUsageError::OtherClient => {
                Self::forbidden("An API client sees only its own usage")
            }
            DailyUsageError::ClientNotFound(id) => client_not_found(id),
            DailyUsageError::Unexpected(e) => Self::internal(e),
        }
    }
}

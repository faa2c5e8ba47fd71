//! Report errors as problem documents.

use ordo_domain::reports::ReportError;

use super::{ApiError, FieldError};

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Invalid { field, message } => {
                Self::validation(vec![FieldError::new(field, message)])
            }
            ReportError::Unexpected(e) => Self::internal(e),
        }
    }
}

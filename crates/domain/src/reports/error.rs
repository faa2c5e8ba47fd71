/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A parameter is out of range (`from` after `to`, a period too long).
    #[error("{field}: {message}")]
    Invalid {
        /// The query parameter at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

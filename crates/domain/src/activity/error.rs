use std::time::Duration;

use crate::clients::ClientId;

/// One reported hit that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidHit {
    /// Its position in the request, from 0.
    pub index: usize,
    /// The offending field (`endpoint`, `method`, `status`, `occurred_at`).
    pub field: &'static str,
    /// What is wrong with it, for the sender.
    pub message: String,
}

/// Why hits were not accepted. Either all of a request's hits are accepted or none.
#[derive(Debug, thiserror::Error)]
pub enum RecordHitsError {
    /// At least one hit is invalid; every invalid one is listed.
    #[error("{} hit(s) are invalid", .0.len())]
    Invalid(Vec<InvalidHit>),
    /// No hit, or more than a request may carry.
    #[error("a request carries 1 to {max} hits, not {given}")]
    BadCount {
        /// How many were sent.
        given: usize,
        /// The most a request may carry.
        max: usize,
    },
    /// The queue of hits waiting to be written is full: nothing was accepted, try
    /// again after `retry_after`.
    #[error("the activity queue is full")]
    Backpressure {
        /// How long to wait before trying again.
        retry_after: Duration,
    },
    /// The sink is shutting down or storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why the daily usage could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum DailyUsageError {
    /// An API client asked for another client's figures.
    #[error("an API client sees only its own usage")]
    OtherClient,
    /// No such client.
    #[error("client {0} not found")]
    ClientNotFound(ClientId),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

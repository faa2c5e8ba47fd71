use crate::Unavailable;

/// The upstream refused a request with a client error (a 4xx other than a
/// declined payment): repeating the same request cannot succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the upstream rejected the request ({status}): {reason}")]
pub struct UpstreamRejection {
    /// The HTTP status the upstream answered.
    pub status: u16,
    /// The upstream's reason, as it gave it.
    pub reason: String,
}

/// Why an upstream order could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUpstreamOrderError {
    /// The upstream refused it (e.g. our order id is taken by a different order).
    #[error(transparent)]
    Rejected(UpstreamRejection),
    /// The request reached the upstream but no answer came back: the order may
    /// exist. Creating it again with the same order id and key settles it.
    #[error("the outcome of creating the upstream order is unknown: {0}")]
    OutcomeUnknown(String),
    /// Nothing reached the upstream (circuit open, or it could not be reached).
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The upstream answered something that makes no sense (malformed JSON, an
    /// amount that is not exact cents), or the adapter failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a payment could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ChargeError {
    /// The payment was declined (HTTP 402): nothing was charged.
    #[error("the payment was declined: {reason}")]
    Declined {
        /// The upstream's reason.
        reason: String,
    },
    /// The upstream refused the request (unknown order, invalid amount, an
    /// idempotency key reused for a different payment, ...).
    #[error(transparent)]
    Rejected(UpstreamRejection),
    /// The request reached the upstream but no answer came back: the customer
    /// may have been charged. Sending the same payment with the same idempotency
    /// key settles it; a new key could charge twice.
    #[error("the outcome of the payment is unknown: {0}")]
    OutcomeUnknown(String),
    /// Nothing reached the upstream (circuit open, or it could not be reached):
    /// nothing was charged.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The upstream answered something that makes no sense, or the adapter failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a call that is safe to repeat (a read, a status update, a refund) failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamCallError {
    /// No such order, payment or product upstream (HTTP 404).
    #[error("not found upstream: {0}")]
    NotFound(String),
    /// The upstream refused the request.
    #[error(transparent)]
    Rejected(UpstreamRejection),
    /// The upstream did not answer in time, or the circuit is open. The call may
    /// have taken effect; repeating it is safe.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The upstream answered something that makes no sense, or the adapter failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

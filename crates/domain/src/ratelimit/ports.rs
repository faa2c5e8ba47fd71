use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Decision, RateKey, RatePolicy};

/// One policy to check a request against, under the key of the caller it limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCheck {
    /// Whose allowance this is.
    pub key: RateKey,
    /// How large the allowance is.
    pub policy: RatePolicy,
}

/// The outcome of checking one request against all its policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitOutcome {
    /// One decision per check, in the order given.
    pub decisions: Vec<Decision>,
}

impl RateLimitOutcome {
    /// Whether every policy allowed the request.
    pub fn is_allowed(&self) -> bool {
        self.decisions.iter().all(Decision::is_allowed)
    }

    /// The longest wait any denying policy asks for, `None` when allowed.
    pub fn retry_after(&self) -> Option<Duration> {
        self.decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Denied { retry_after, .. } => Some(*retry_after),
                Decision::Allowed { .. } => None,
            })
            .max()
    }
}

/// The rate-limit store could not decide.
#[derive(Debug, thiserror::Error)]
#[error("the rate-limit store failed: {0}")]
pub struct RateLimitError(#[from] pub anyhow::Error);

/// Where the theoretical arrival time of each key is kept.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Decides one request against every check with [`decide`](super::decide), at
    /// `now`, all-or-nothing: when every check allows it, each key's new state is
    /// stored; when any check denies it, no key changes, so a request rejected by
    /// one policy does not use up another. Concurrent calls on the same keys are
    /// serialised: two requests can never both take the last unit of a burst.
    ///
    /// # Errors
    /// When the store cannot be reached; the caller chooses to fail open or closed.
    async fn check(
        &self,
        checks: &[LimitCheck],
        now: DateTime<Utc>,
    ) -> Result<RateLimitOutcome, RateLimitError>;
}

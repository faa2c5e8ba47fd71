//! Rate-limit refusals as problem documents.

use std::time::Duration;

use ordo_domain::ratelimit::AdmitError;

use super::{ApiError, ProblemCode};

/// How long a login waits for a failed rate-limit store before trying again.
const STORE_RETRY_AFTER: Duration = Duration::from_secs(1);

impl ApiError {
    /// 429 `rate_limited`, with `Retry-After` in whole seconds, rounded up.
    pub fn rate_limited(retry_after: Duration) -> Self {
        Self::new(
            ProblemCode::RateLimited,
            "Too many requests; try again after the seconds in Retry-After",
        )
        .retry_after(retry_after)
    }
}

impl From<AdmitError> for ApiError {
    fn from(e: AdmitError) -> Self {
        match e {
            AdmitError::Unavailable(cause) => {
                tracing::warn!(
                    error = format!("{:#}", cause.0),
                    "rate limits unavailable; a login attempt was refused"
                );
                Self::new(
                    ProblemCode::RateLimitsUnavailable,
                    "Logins are paused while their rate limits cannot be checked; try again shortly",
                )
                .retry_after(STORE_RETRY_AFTER)
            }
        }
    }
}

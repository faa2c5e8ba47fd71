use super::RateLimitError;

/// Why a request could not be admitted or refused.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// The rate-limit store could not decide a login attempt. Logins fail closed:
    /// letting them through unchecked would open the door to password guessing
    /// whenever the store is down.
    #[error("the rate-limit store could not decide a login attempt")]
    Unavailable(#[source] RateLimitError),
}

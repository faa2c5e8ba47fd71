//! "Not now, try again shortly": the failure of an outside system that is expected
//! to pass, as opposed to a bug.

use std::fmt;
use std::time::Duration;

/// Which outside system is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dependency {
    /// The system of record (the database).
    Database,
    /// The external order/payment/catalog API.
    Upstream,
}

impl Dependency {
    /// A stable lower-case name, for logs and problem codes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Upstream => "upstream",
        }
    }
}

/// An outside system could not serve the request now: it is down, overloaded, too
/// slow, or its connection broke mid-request. Callers answer "try again after
/// `retry_after`", never "bug".
///
/// Adapters raise it inside the `Unexpected(anyhow::Error)` variant of any use-case
/// error (`anyhow::Error::new(Unavailable::new(..))`), so no use case needs a variant
/// of its own; the HTTP layer finds it with [`Unavailable::find`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Unavailable {
    dependency: Dependency,
    retry_after: Duration,
    reason: String,
}

impl Unavailable {
    /// `dependency` is unavailable for `reason`; a retry may succeed after `retry_after`.
    pub fn new(dependency: Dependency, retry_after: Duration, reason: impl Into<String>) -> Self {
        Self {
            dependency,
            retry_after,
            reason: reason.into(),
        }
    }

    /// Which system failed.
    pub fn dependency(&self) -> Dependency {
        self.dependency
    }

    /// How long a caller should wait before trying again.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// What the adapter saw, for the log.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The `Unavailable` anywhere in `error`'s chain of causes.
    pub fn find(error: &anyhow::Error) -> Option<&Unavailable> {
        error
            .chain()
            .find_map(|cause| cause.downcast_ref::<Unavailable>())
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} is unavailable: {}",
            self.dependency.as_str(),
            self.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_cause_is_found_under_added_context() {
        let error = anyhow::Error::new(Unavailable::new(
            Dependency::Database,
            Duration::from_secs(1),
            "connection refused",
        ))
        .context("loading an order");
        let found = Unavailable::find(&error).expect("found");
        assert_eq!(found.dependency(), Dependency::Database);
        assert_eq!(found.retry_after(), Duration::from_secs(1));
    }

    #[test]
    fn an_ordinary_error_is_not_unavailable() {
        let error = anyhow::anyhow!("constraint violated").context("storing an order");
        assert!(Unavailable::find(&error).is_none());
    }
}

//! Recognising the database errors that mean something to the domain.

use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use ordo_domain::{Dependency, Unavailable};

/// The name of the unique constraint or index `error` violated, if that is what it is.
pub(crate) fn unique_violation(error: &DieselError) -> Option<&str> {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            Some(info.constraint_name().unwrap_or_default())
        }
        _ => None,
    }
}

/// The name of the foreign key `error` violated (SQLSTATE 23503), if that is what it is.
pub(crate) fn foreign_key_violation(error: &DieselError) -> Option<&str> {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) => {
            Some(info.constraint_name().unwrap_or_default())
        }
        _ => None,
    }
}

/// Turns an infrastructure failure into the `Unexpected` case of a use-case error,
/// with a note of what was being done. A failure that is expected to pass (a lost
/// connection, a statement or lock timeout, a server shutting down) carries the
/// domain's [`Unavailable`], so callers answer "try again shortly" instead of "bug".
pub(crate) fn unexpected(error: DieselError, doing: &'static str) -> anyhow::Error {
    match transient_reason(&error) {
        Some(reason) => anyhow::Error::new(error)
            .context(Unavailable::new(Dependency::Database, RETRY_AFTER, reason))
            .context(doing),
        None => anyhow::Error::new(error).context(doing),
    }
}

/// How long a client is asked to wait after a transient database failure.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why `error` is worth retrying, if it is. diesel-async reports SQLSTATEs it has no
/// kind for as `Unknown`, with PostgreSQL's message; the connection's `lc_messages`
/// is pinned to `C` (see `pool.rs`) so these messages are stable.
fn transient_reason(error: &DieselError) -> Option<String> {
    match error {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            info,
        ) => Some(format!("the connection broke: {}", info.message())),
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message();
            let transient = [
                "canceling statement due to statement timeout",
                "canceling statement due to lock timeout",
                "terminating connection",
                "the database system is",
                "could not serialize access",
                "deadlock detected",
            ];
            transient
                .iter()
                .any(|prefix| message.starts_with(prefix))
                .then(|| message.to_owned())
        }
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, info) => {
            Some(info.message().to_owned())
        }
        DieselError::BrokenTransactionManager => {
            Some("the connection's transaction state is broken".to_owned())
        }
        _ => None,
    }
}

/// A failure inside a transaction: a rule the domain understands, or the database.
pub(crate) enum TxError<E> {
    Rule(E),
    Database(diesel::result::Error),
}

impl<E> From<diesel::result::Error> for TxError<E> {
    fn from(e: diesel::result::Error) -> Self {
        Self::Database(e)
    }
}

impl<E> TxError<E> {
    /// The same failure as part of a larger use case, whose error takes `E`.
    pub(crate) fn widen<F: From<E>>(self) -> TxError<F> {
        match self {
            Self::Rule(e) => TxError::Rule(e.into()),
            Self::Database(e) => TxError::Database(e),
        }
    }
}

impl<E: From<anyhow::Error>> TxError<E> {
    pub(crate) fn into_domain(self, doing: &'static str) -> E {
        match self {
            Self::Rule(e) => e,
            Self::Database(e) => unexpected(e, doing).into(),
        }
    }
}

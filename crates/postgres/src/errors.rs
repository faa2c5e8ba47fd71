//! Recognising the database errors that mean something to the domain.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

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
/// with a note of what was being done.
pub(crate) fn unexpected(error: DieselError, doing: &'static str) -> anyhow::Error {
    anyhow::Error::new(error).context(doing)
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

impl<E: From<anyhow::Error>> TxError<E> {
    pub(crate) fn into_domain(self, doing: &'static str) -> E {
        match self {
            Self::Rule(e) => e,
            Self::Database(e) => unexpected(e, doing).into(),
        }
    }
}

//! Small values shared by every area.

use std::fmt;

/// Why a raw value was refused by one of the domain's parsing constructors.
///
/// The message is written for the person who sent the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(String);

impl InvalidValue {
    /// Creates the error with a message for the sender of the value.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The message for the sender of the value.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// The revision of a stored resource; it grows by one with every change and is the
/// basis of `ETag` / `If-Match` optimistic concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(i32);

impl Version {
    /// The version of a freshly created resource.
    pub const FIRST: Version = Version(1);

    /// Wraps a stored version number; versions start at 1.
    ///
    /// # Errors
    /// When `value` is below 1.
    pub fn new(value: i32) -> Result<Self, InvalidValue> {
        if value >= 1 {
            Ok(Self(value))
        } else {
            Err(InvalidValue::new("a version starts at 1"))
        }
    }

    /// The version number.
    pub fn get(self) -> i32 {
        self.0
    }

    /// The version after one more change.
    pub fn next(self) -> Version {
        Version(self.0.saturating_add(1))
    }
}

/// The versions a client says it last saw: `If-Match` may name several, and a
/// change goes ahead only when the resource is at one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionMatch(Vec<Version>);

impl VersionMatch {
    /// Exactly one version.
    pub fn one(version: Version) -> Self {
        Self(vec![version])
    }

    /// Any of `versions`.
    ///
    /// # Errors
    /// When `versions` is empty: a precondition that nothing meets is a mistake.
    pub fn any_of(mut versions: Vec<Version>) -> Result<Self, InvalidValue> {
        if versions.is_empty() {
            return Err(InvalidValue::new("name at least one version"));
        }
        versions.sort_unstable();
        versions.dedup();
        Ok(Self(versions))
    }

    /// Whether a resource at `current` meets the precondition.
    pub fn admits(&self, current: Version) -> bool {
        self.0.contains(&current)
    }

    /// The version, when exactly one is named: storage can then compare-and-set on
    /// it without reading first.
    pub fn single(&self) -> Option<Version> {
        match self.0.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Trims `raw` and checks that it holds between 1 and `max_chars` characters and no
/// control characters; `what` names the value in the error message.
pub(crate) fn parse_text(raw: &str, what: &str, max_chars: usize) -> Result<String, InvalidValue> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(InvalidValue::new(format!("{what} must not be empty")));
    }
    if trimmed.chars().count() > max_chars {
        return Err(InvalidValue::new(format!(
            "{what} must be at most {max_chars} characters"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(InvalidValue::new(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(trimmed.to_owned())
}

/// Declares a newtype over `String` that is parsed by [`parse_text`].
macro_rules! text_newtype {
    ($(#[$meta:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Parses ", $what, ": trimmed, 1 to ", stringify!($max), " characters, no control characters.")]
            ///
            /// # Errors
            /// When the trimmed text is empty, too long or holds control characters.
            pub fn parse(raw: &str) -> Result<Self, $crate::value::InvalidValue> {
                $crate::value::parse_text(raw, $what, $max).map(Self)
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use text_newtype;

/// Declares a UUID-backed identifier newtype.
macro_rules! id_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A new, time-ordered (UUID v7) identifier.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7())
            }

            /// Wraps an existing identifier.
            pub fn from_uuid(id: uuid::Uuid) -> Self {
                Self(id)
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<uuid::Uuid> for $name {
            fn from(id: uuid::Uuid) -> Self {
                Self(id)
            }
        }
    };
}
pub(crate) use id_newtype;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(parse_text("  Oslo ", "city", 5).as_deref(), Ok("Oslo"));
        assert!(parse_text("   ", "city", 5).is_err());
        assert!(parse_text("Copenhagen", "city", 5).is_err());
        assert!(parse_text("a\u{0}b", "city", 5).is_err());
    }

    #[test]
    fn versions_start_at_one_and_grow() {
        assert!(Version::new(0).is_err());
        assert_eq!(Version::FIRST.next().get(), 2);
    }
}

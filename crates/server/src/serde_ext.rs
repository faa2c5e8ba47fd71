//! Serde helpers for request bodies.

use serde::{Deserialize, Deserializer};

/// For `#[serde(default, deserialize_with = "present")]` on an `Option<Option<T>>`:
/// an absent field stays `None`, an explicit `null` becomes `Some(None)`.
///
/// # Errors
/// When the value is not a `T` or `null`.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

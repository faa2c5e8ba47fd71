//! Values kept encrypted at rest: what a storage adapter needs to seal a personal
//! value (an e-mail address, a phone number) before it writes it, to open it again,
//! and to find or compare values it can no longer read in the clear (a blind index).
//!
//! The domain itself never sees a sealed value; the port lives here so that storage
//! adapters and the cryptographic adapter that implements it depend on this crate
//! only, not on each other.

use uuid::Uuid;

use crate::value::InvalidValue;

/// The name of the key a value was sealed under, stored beside it so that keys can
/// rotate: a value stays readable while its key is configured, current or previous.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// Longest key id accepted.
    pub const MAX_LEN: usize = 64;

    /// A key id of 1 to 64 ASCII letters, digits, `-` or `_`.
    ///
    /// # Errors
    /// When `raw` is empty, too long or holds other characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let acceptable = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.chars().all(acceptable) {
            return Err(InvalidValue::new(
                "a key id is 1 to 64 ASCII letters, digits, '-' or '_'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a sealed value lives. A value sealed for one field cannot be opened as
/// another's, so a ciphertext copied into another column (or row) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SealedField {
    /// `customers.email`.
    CustomerEmail,
    /// `customers.phone`.
    CustomerPhone,
    /// `api_clients.email`: an API client's contact address.
    ClientEmail,
}

impl SealedField {
    /// A stable label of the field, `table.column`; sealed values are bound to it.
    pub fn label(self) -> &'static str {
        match self {
            Self::CustomerEmail => "customers.email",
            Self::CustomerPhone => "customers.phone",
            Self::ClientEmail => "api_clients.email",
        }
    }
}

/// A value sealed under the key `key_id`: opaque bytes that only that key opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The key the value was sealed under.
    pub key_id: KeyId,
    /// The ciphertext, with whatever the cipher needs to open it (nonce, tag).
    pub bytes: Vec<u8>,
}

/// A keyed digest of a normalised value: equal values give equal indexes under one
/// key, and without the key an index tells nothing about the value. Storage compares
/// and looks up indexes where it cannot compare plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlindIndex(Vec<u8>);

impl BlindIndex {
    /// An index from its bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes to store, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The value was sealed under a key that is not configured (neither the current
    /// data key nor a previous one).
    #[error("the value is sealed under key id {0}, which is not configured")]
    UnknownKey(KeyId),
    /// The value is not what was sealed for this field and record: changed,
    /// truncated, or moved from another column or row.
    #[error("the sealed value was altered or belongs to another field or record")]
    Tampered,
}

/// Seals and opens personal values, and computes their blind indexes.
///
/// Sealing always uses the current key; opening accepts the current key and every
/// previous one configured, so values sealed before a rotation stay readable until
/// they are sealed again.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait FieldCipher: Send + Sync {
    /// The key new values are sealed under.
    fn current_key(&self) -> KeyId;

    /// `plaintext` sealed under the current key for `field` of the record `record`;
    /// a fresh random nonce each time, so sealing one value twice gives different
    /// bytes.
    ///
    /// # Errors
    /// When the operating system's random source fails.
    fn seal(&self, field: SealedField, record: Uuid, plaintext: &str) -> anyhow::Result<Sealed>;

    /// The plaintext of `sealed`, which must have been sealed for `field` of `record`.
    ///
    /// # Errors
    /// [`OpenError::UnknownKey`] when its key is not configured,
    /// [`OpenError::Tampered`] when it does not authenticate.
    fn open(&self, field: SealedField, record: Uuid, sealed: &Sealed) -> Result<String, OpenError>;

    /// The blind index of `normalised` (e.g. an e-mail address's lookup key) for
    /// `field` under the current key.
    fn blind_index(&self, field: SealedField, normalised: &str) -> BlindIndex;

    /// The blind indexes of `normalised` under each previous key, for comparisons
    /// with values not yet sealed again under the current key. Empty when no
    /// previous key is configured.
    fn previous_blind_indexes(&self, field: SealedField, normalised: &str) -> Vec<BlindIndex>;
}

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::Context;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use ordo_domain::sealing::{BlindIndex, FieldCipher, KeyId, OpenError, Sealed, SealedField};
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};
use sha2::Sha256;
use uuid::Uuid;

/// The layout of a sealed value: this byte, the nonce, then ciphertext and tag. The
/// leading byte lets a later layout coexist with this one.
const LAYOUT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Fixed HKDF salt: it separates Ordo's derivations from any other use of the same
/// secret. A secret is expected to be random already, so a secret salt adds nothing.
const HKDF_SALT: &[u8] = b"ordo/data-key/v1";
/// Shortest secret accepted, in bytes. HKDF spreads entropy, it does not create it:
/// the secret must be random (e.g. `openssl rand -base64 32`).
pub const MIN_DATA_KEY_LEN: usize = 16;

/// The keys derived from one configured secret.
struct DataKey {
    id: KeyId,
    cipher: Aes256Gcm,
    /// Keyed once; cloning the keyed state is cheaper than keying per value.
    index: Hmac<Sha256>,
}

impl DataKey {
    /// Derives, with HKDF-SHA256, an AES-256-GCM key, a separate HMAC-SHA256 key for
    /// blind indexes (so an index reveals nothing about the encryption key), and a
    /// public key id (so the id reveals nothing about either).
    fn derive(secret: &str) -> anyhow::Result<Self> {
        let secret = secret.trim();
        anyhow::ensure!(
            secret.len() >= MIN_DATA_KEY_LEN,
            "a data key must be at least {MIN_DATA_KEY_LEN} bytes of random text (e.g. `openssl rand -base64 32`)"
        );
        let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret.as_bytes());
        let mut encryption = SecretBox::new(Box::new([0_u8; 32]));
        let mut index = SecretBox::new(Box::new([0_u8; 32]));
        let mut id = [0_u8; 8];
        for (info, out) in [
            (&b"aes-256-gcm"[..], &mut encryption.expose_secret_mut()[..]),
            (
                &b"blind-index/hmac-sha256"[..],
                &mut index.expose_secret_mut()[..],
            ),
            (&b"key-id"[..], &mut id[..]),
        ] {
            hkdf.expand(info, out)
                .map_err(|e| anyhow::anyhow!("deriving a data key: {e}"))?;
        }
        let id = KeyId::parse(&hex(&id)).map_err(|e| anyhow::anyhow!(e.message().to_owned()))?;
        Ok(Self {
            id,
            cipher: Aes256Gcm::new_from_slice(encryption.expose_secret())
                .context("an AES-256 key is 32 bytes")?,
            index: <Hmac<Sha256> as Mac>::new_from_slice(index.expose_secret())
                .context("an HMAC key of 32 bytes")?,
        })
    }

    fn blind_index(&self, field: SealedField, normalised: &str) -> BlindIndex {
        let mut mac = self.index.clone();
        mac.update(field.label().as_bytes());
        mac.update(&[0]);
        mac.update(normalised.as_bytes());
        BlindIndex::from_bytes(mac.finalize().into_bytes().to_vec())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// What a sealed value is bound to besides its key: the field and the record. A
/// ciphertext copied into another column or another row fails to open.
fn associated_data(field: SealedField, record: Uuid) -> Vec<u8> {
    let label = field.label().as_bytes();
    let mut data = Vec::with_capacity(label.len() + 1 + 16);
    data.extend_from_slice(label);
    data.push(0);
    data.extend_from_slice(record.as_bytes());
    data
}

/// The data keys of an installation: the current one (`ORDO_DATA_KEY`), which seals
/// every new value, and previous ones (`ORDO_DATA_KEY_PREVIOUS`), which only open
/// values sealed before a rotation. Keys are derived once, when the keyring is
/// built; sealing a value costs one AES-GCM encryption and nothing more.
///
/// Values are sealed with AES-256-GCM under a random 96-bit nonce each. Random
/// nonces stay safe for about 2³² values per key; rotate well before that.
///
/// # Blind indexes rotate with the key
///
/// The blind index of a value is an HMAC under a key derived from the same secret
/// as the encryption key, and `ordo rekey` recomputes it along with the ciphertext.
/// An index that stayed stable across rotations would need an index key that never
/// rotates, so whoever once obtained it could test guessed addresses against every
/// index forever; rotating retires the old index key together with the old
/// encryption key. The price is paid during a rotation only: until every row is
/// sealed again, a uniqueness check compares the index under the current key and
/// under each previous one ([`FieldCipher::previous_blind_indexes`]).
pub struct DataKeyring {
    current: DataKey,
    previous: Vec<DataKey>,
}

impl std::fmt::Debug for DataKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyring")
            .field("current", &self.current.id)
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl DataKeyring {
    /// A keyring sealing under `current` and also opening under each of
    /// `previous`, a comma-separated list (base64 has no commas). A previous secret
    /// equal to the current one is ignored.
    ///
    /// # Errors
    /// When a secret is shorter than [`MIN_DATA_KEY_LEN`] bytes.
    pub fn new(current: &SecretString, previous: Option<&SecretString>) -> anyhow::Result<Self> {
        let current = DataKey::derive(current.expose_secret()).context("ORDO_DATA_KEY")?;
        let mut keys: Vec<DataKey> = Vec::new();
        for secret in previous
            .map(|list| list.expose_secret().split(','))
            .into_iter()
            .flatten()
            .filter(|s| !s.trim().is_empty())
        {
            let key = DataKey::derive(secret).context("ORDO_DATA_KEY_PREVIOUS")?;
            if key.id != current.id && keys.iter().all(|k| k.id != key.id) {
                keys.push(key);
            }
        }
        Ok(Self {
            current,
            previous: keys,
        })
    }

    /// The ids of the previous keys, in the order configured.
    pub fn previous_keys(&self) -> Vec<KeyId> {
        self.previous.iter().map(|k| k.id.clone()).collect()
    }

    fn key(&self, id: &KeyId) -> Option<&DataKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| &k.id == id)
    }
}

impl FieldCipher for DataKeyring {
    fn current_key(&self) -> KeyId {
        self.current.id.clone()
    }

    fn seal(&self, field: SealedField, record: Uuid, plaintext: &str) -> anyhow::Result<Sealed> {
        let mut nonce = [0_u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|e| anyhow::anyhow!("the operating system's random source failed: {e}"))?;
        let aad = associated_data(field, record);
        let ciphertext = self
            .current
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| anyhow::anyhow!("sealing a value of {}", field.label()))?;
        let mut bytes = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        bytes.push(LAYOUT_V1);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        Ok(Sealed {
            key_id: self.current.id.clone(),
            bytes,
        })
    }

    fn open(&self, field: SealedField, record: Uuid, sealed: &Sealed) -> Result<String, OpenError> {
        let key = self
            .key(&sealed.key_id)
            .ok_or_else(|| OpenError::UnknownKey(sealed.key_id.clone()))?;
        let Some((&LAYOUT_V1, rest)) = sealed.bytes.split_first() else {
            return Err(OpenError::Tampered);
        };
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError::Tampered);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError::Tampered)?;
        let aad = associated_data(field, record);
        let plaintext = key
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::Tampered)?;
        String::from_utf8(plaintext).map_err(|_| OpenError::Tampered)
    }

    fn blind_index(&self, field: SealedField, normalised: &str) -> BlindIndex {
        self.current.blind_index(field, normalised)
    }

    fn previous_blind_indexes(&self, field: SealedField, normalised: &str) -> Vec<BlindIndex> {
        self.previous
            .iter()
            .map(|k| k.blind_index(field, normalised))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const OLD: &str = "old-data-key-0123456789abcdef0123";
    const NEW: &str = "new-data-key-0123456789abcdef0123";

    fn keyring(current: &str, previous: Option<&str>) -> DataKeyring {
        DataKeyring::new(
            &SecretString::from(current),
            previous.map(SecretString::from).as_ref(),
        )
        .expect("keyring")
    }

    fn record() -> Uuid {
        Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001)
    }

    #[test]
    fn a_sealed_value_opens_to_what_was_sealed() {
        let keys = keyring(NEW, None);
        let sealed = keys
            .seal(SealedField::CustomerEmail, record(), "Ada@Example.com")
            .expect("sealed");
        assert_eq!(sealed.key_id, keys.current_key());
        assert!(
            !String::from_utf8_lossy(&sealed.bytes).contains("Ada"),
            "the plaintext shows through"
        );
        assert_eq!(
            keys.open(SealedField::CustomerEmail, record(), &sealed),
            Ok("Ada@Example.com".to_owned())
        );
    }

    #[test]
    fn any_changed_byte_is_refused() {
        let keys = keyring(NEW, None);
        let sealed = keys
            .seal(SealedField::CustomerPhone, record(), "+47 22 00 00 00")
            .expect("sealed");
        for position in 0..sealed.bytes.len() {
            let mut altered = sealed.clone();
            altered.bytes[position] ^= 0x01;
            assert_eq!(
                keys.open(SealedField::CustomerPhone, record(), &altered),
                Err(OpenError::Tampered),
                "byte {position}"
            );
        }
        let mut truncated = sealed.clone();
        truncated.bytes.truncate(1 + NONCE_LEN + TAG_LEN - 1);
        assert_eq!(
            keys.open(SealedField::CustomerPhone, record(), &truncated),
            Err(OpenError::Tampered)
        );
        let empty = Sealed {
            key_id: sealed.key_id,
            bytes: Vec::new(),
        };
        assert_eq!(
            keys.open(SealedField::CustomerPhone, record(), &empty),
            Err(OpenError::Tampered)
        );
    }

    #[test]
    fn a_value_moved_to_another_column_or_row_is_refused() {
        let keys = keyring(NEW, None);
        let sealed = keys
            .seal(SealedField::CustomerEmail, record(), "ada@example.com")
            .expect("sealed");
        assert_eq!(
            keys.open(SealedField::CustomerPhone, record(), &sealed),
            Err(OpenError::Tampered)
        );
        assert_eq!(
            keys.open(SealedField::CustomerEmail, Uuid::from_u128(7), &sealed),
            Err(OpenError::Tampered)
        );
    }

    #[test]
    fn every_seal_takes_a_fresh_nonce() {
        let keys = keyring(NEW, None);
        let nonces: HashSet<Vec<u8>> = (0..2000)
            .map(|_| {
                let sealed = keys
                    .seal(SealedField::CustomerEmail, record(), "ada@example.com")
                    .expect("sealed");
                sealed.bytes[1..=NONCE_LEN].to_vec()
            })
            .collect();
        assert_eq!(nonces.len(), 2000);
    }

    #[test]
    fn values_of_a_previous_key_stay_readable_and_new_ones_use_the_current_key() {
        let before = keyring(OLD, None);
        let sealed = before
            .seal(SealedField::CustomerEmail, record(), "ada@example.com")
            .expect("sealed");

        let rotated = keyring(NEW, Some(OLD));
        assert_eq!(rotated.previous_keys(), vec![before.current_key()]);
        assert_ne!(rotated.current_key(), before.current_key());
        assert_eq!(
            rotated.open(SealedField::CustomerEmail, record(), &sealed),
            Ok("ada@example.com".to_owned())
        );
        let resealed = rotated
            .seal(SealedField::CustomerEmail, record(), "ada@example.com")
            .expect("sealed");
        assert_eq!(resealed.key_id, rotated.current_key());

        let retired = keyring(NEW, None);
        assert_eq!(
            retired.open(SealedField::CustomerEmail, record(), &sealed),
            Err(OpenError::UnknownKey(before.current_key()))
        );
    }

    #[test]
    fn the_key_id_follows_from_the_secret_alone() {
        assert_eq!(
            keyring(NEW, None).current_key(),
            keyring(NEW, None).current_key()
        );
        assert_ne!(
            keyring(NEW, None).current_key(),
            keyring(OLD, None).current_key()
        );
        assert_eq!(keyring(NEW, None).current_key().as_str().len(), 16);
        // Surrounding whitespace (a newline from a secrets file) is not part of the key.
        assert_eq!(
            keyring(&format!("  {NEW}\n"), None).current_key(),
            keyring(NEW, None).current_key()
        );
    }

    #[test]
    fn the_blind_index_is_stable_for_a_key_and_differs_between_keys_and_fields() {
        let keys = keyring(NEW, Some(OLD));
        let index = keys.blind_index(SealedField::CustomerEmail, "ada@example.com");
        assert_eq!(index.as_bytes().len(), 32);
        assert_eq!(
            index,
            keyring(NEW, None).blind_index(SealedField::CustomerEmail, "ada@example.com")
        );
        assert_ne!(
            index,
            keys.blind_index(SealedField::CustomerEmail, "bob@example.com")
        );
        assert_ne!(
            index,
            keys.blind_index(SealedField::CustomerPhone, "ada@example.com")
        );
        assert_eq!(
            keys.previous_blind_indexes(SealedField::CustomerEmail, "ada@example.com"),
            vec![keyring(OLD, None).blind_index(SealedField::CustomerEmail, "ada@example.com")]
        );
        assert!(
            keyring(NEW, None)
                .previous_blind_indexes(SealedField::CustomerEmail, "ada@example.com")
                .is_empty()
        );
    }

    #[test]
    fn previous_keys_are_a_comma_separated_list_without_repeats_of_the_current_one() {
        let third = "third-data-key-0123456789abcdef01";
        let keys = keyring(NEW, Some(&format!("{OLD}, {NEW},,{third},{OLD}")));
        assert_eq!(
            keys.previous_keys(),
            vec![
                keyring(OLD, None).current_key(),
                keyring(third, None).current_key()
            ]
        );
    }

    #[test]
    fn a_short_secret_is_refused_and_no_secret_ever_prints() {
        let short = DataKeyring::new(&SecretString::from("short"), None);
        assert!(short.is_err());
        let bad_previous =
            DataKeyring::new(&SecretString::from(NEW), Some(&SecretString::from("short")))
                .expect_err("a short previous key");
        assert!(format!("{bad_previous:#}").contains("ORDO_DATA_KEY_PREVIOUS"));
        let printed = format!("{:?}", keyring(NEW, Some(OLD)));
        assert!(
            !printed.contains(NEW) && !printed.contains(OLD),
            "{printed}"
        );
        assert!(printed.contains(keyring(NEW, None).current_key().as_str()));
    }
}

use std::fmt::Write as _;

use ordo_domain::clients::{ApiKey, ApiKeyDigest, ApiKeys};
use sha2::{Digest, Sha256};

/// The alphabet of keys: letters and digits only, so that a key survives being
/// double-clicked, pasted into a shell or put in a URL, and `_` stays a separator.
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// 43 characters of 62 carry 256 bits: beyond any guessing.
const SECRET_CHARS: usize = 43;

/// API keys from the operating system's random source, stored under the SHA-256
/// digest of the whole key, in hex. As for refresh tokens, an unsalted hash is
/// enough: the keys are random, so there is no table of likely values to look up.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomApiKeys;

/// `n` characters of [`ALPHABET`], uniformly: bytes of 248 and above are
/// rejected, so that every character is equally likely (248 = 4 × 62).
fn random_text(n: usize) -> String {
    let mut text = String::with_capacity(n);
    let mut bytes = [0_u8; 64];
    while text.len() < n {
        // Without the operating system's random source no key can be made at all;
        // carrying on with a predictable one would be worse than stopping.
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut bytes).expect("the operating system's random source is available");
        for byte in bytes {
            if text.len() < n && byte < 248 {
                text.push(char::from(ALPHABET[usize::from(byte % 62)]));
            }
        }
    }
    text
}

impl ApiKeys for RandomApiKeys {
    fn new_key(&self) -> ApiKey {
        let raw = format!(
            "ordo_{}_{}",
            random_text(ApiKey::PREFIX_LEN),
            random_text(SECRET_CHARS)
        );
        #[allow(clippy::expect_used)] // the shape is the one ApiKey::parse reads
        ApiKey::parse(&raw).expect("a generated key has the Ordo shape")
    }

    fn digest(&self, key: &ApiKey) -> ApiKeyDigest {
        let digest = Sha256::digest(key.expose().as_bytes());
        let mut hex = String::with_capacity(2 * digest.len());
        for byte in digest {
            let _ = write!(hex, "{byte:02x}");
        }
        ApiKeyDigest::from_hex(hex)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn keys_have_the_ordo_shape_and_never_repeat() {
        let keys: HashSet<String> = (0..1000)
            .map(|_| RandomApiKeys.new_key().expose())
            .collect();
        assert_eq!(keys.len(), 1000);
        let prefixes: HashSet<String> = keys.iter().map(|k| k[5..13].to_owned()).collect();
        assert!(prefixes.len() > 990, "prefixes are random too");
        for key in &keys {
            assert_eq!(key.len(), 5 + 8 + 1 + 43, "{key}");
            assert!(ApiKey::parse(key).is_ok());
        }
    }

    #[test]
    fn every_character_of_the_alphabet_turns_up() {
        let text = random_text(20_000);
        let seen: HashSet<char> = text.chars().collect();
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn the_digest_is_the_sha256_of_the_whole_key_in_hex() {
        let key = ApiKey::parse(&format!("ordo_abcdefgh_{}", "a".repeat(43))).expect("key");
        let digest = RandomApiKeys.digest(&key);
        assert_eq!(digest.as_str().len(), 64);
        assert_eq!(digest, RandomApiKeys.digest(&key));
        let other = ApiKey::parse(&format!("ordo_abcdefgh_{}", "b".repeat(43))).expect("key");
        assert_ne!(digest, RandomApiKeys.digest(&other));
    }
}

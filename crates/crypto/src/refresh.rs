use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ordo_domain::auth::{RefreshToken, RefreshTokenHash, TokenSecrets};
use sha2::{Digest, Sha256};

/// How many random bytes a refresh token carries: 256 bits, beyond any guessing.
const TOKEN_BYTES: usize = 32;

/// Refresh tokens of 32 bytes from the operating system's random source, written
/// base64url without padding (43 characters), stored under their SHA-256 digest in
/// hex. A plain, unsalted hash suffices: the tokens are random, not chosen by people,
/// so there is nothing to look up in a table of likely values.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomTokens;

impl TokenSecrets for RandomTokens {
    fn new_refresh_token(&self) -> RefreshToken {
        let mut bytes = [0_u8; TOKEN_BYTES];
        // Without the operating system's random source no secret can be made at all;
        // carrying on with a predictable token would be worse than stopping.
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut bytes).expect("the operating system's random source is available");
        #[allow(clippy::expect_used)] // 32 bytes always encode to 43 characters
        RefreshToken::new(URL_SAFE_NO_PAD.encode(bytes)).expect("43 characters are enough")
    }

    fn digest(&self, token: &RefreshToken) -> RefreshTokenHash {
        let digest = Sha256::digest(token.expose().as_bytes());
        let mut hex = String::with_capacity(2 * digest.len());
        for byte in digest {
            let _ = write!(hex, "{byte:02x}");
        }
        RefreshTokenHash::from_hex(hex)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn a_token_is_43_url_safe_characters_and_never_repeats() {
        let tokens: HashSet<String> = (0..1000)
            .map(|_| RandomTokens.new_refresh_token().expose().to_owned())
            .collect();
        assert_eq!(tokens.len(), 1000);
        for token in &tokens {
            assert_eq!(token.len(), 43);
            assert!(
                token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{token}"
            );
        }
    }

    #[test]
    fn the_digest_is_the_sha256_of_the_token_in_hex() {
        let token = RefreshToken::new("a".repeat(43)).expect("token");
        // printf 'a%.0s' {1..43} | sha256sum
        assert_eq!(
            RandomTokens.digest(&token).as_str(),
            "66d34fba71f8f450f7e45598853e53bfc23bbd129027cbb131a2f4ffd7878cd0"
        );
        assert_eq!(RandomTokens.digest(&token), RandomTokens.digest(&token));
    }
}

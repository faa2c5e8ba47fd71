use std::fmt;

use chrono::{DateTime, Utc};

use super::UserId;
use crate::value::{InvalidValue, id_newtype};

id_newtype!(
    /// The chain of refresh tokens that descend from one login by rotation.
    RefreshFamilyId
);

/// A refresh token as the client holds it: opaque random text, shown once. Never
/// printed; storage keeps only its [`RefreshTokenHash`].
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    /// Wraps a freshly generated token (at least 32 characters of randomness).
    ///
    /// # Errors
    /// When `secret` is shorter than 32 characters.
    pub fn new(secret: String) -> Result<Self, InvalidValue> {
        if secret.len() < 32 {
            return Err(InvalidValue::new(
                "a refresh token has at least 32 characters",
            ));
        }
        Ok(Self(secret))
    }

    /// A token presented by a client: any non-empty text up to 512 characters (an
    /// unknown one is simply not found).
    ///
    /// # Errors
    /// When it is empty or longer.
    pub fn presented(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() || raw.len() > 512 {
            return Err(InvalidValue::new("not a refresh token"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The text, to hand to the client once, or to hash.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(..)")
    }
}

/// The digest under which a refresh token is stored and looked up (a SHA-256 of
/// the token, hex): a database dump yields no usable token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefreshTokenHash(String);

impl RefreshTokenHash {
    /// Wraps a digest computed by an adapter.
    pub fn from_hex(hex: String) -> Self {
        Self(hex)
    }

    /// The digest, hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A refresh token as storage knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRefreshToken {
    /// The user it logs in.
    pub user: UserId,
    /// The login it descends from.
    pub family: RefreshFamilyId,
    /// When it stops being exchangeable.
    pub expires_at: DateTime<Utc>,
    /// When it was exchanged for a new one, if it was.
    pub used_at: Option<DateTime<Utc>>,
    /// When its family was revoked (logout, reuse), if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What presenting a refresh token leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Exchange it: mark it used and issue a new token of the same family.
    Rotate {
        /// The user to issue new tokens for.
        user: UserId,
        /// The family the new refresh token joins.
        family: RefreshFamilyId,
    },
    /// It was exchanged before: someone holds a copy. Revoke the whole family.
    Reused {
        /// The family to revoke.
        family: RefreshFamilyId,
    },
    /// Expired, revoked or unknown: refuse, change nothing.
    Refuse,
}

/// The rotation rule: a token is exchangeable once, before it expires, while its
/// family stands. Reuse is checked before expiry and revocation, so a stolen copy
/// presented late still revokes whatever the family holds.
pub fn rotation(stored: Option<&StoredRefreshToken>, now: DateTime<Utc>) -> Rotation {
    let Some(token) = stored else {
        return Rotation::Refuse;
    };
    if token.used_at.is_some() {
        return Rotation::Reused {
            family: token.family,
        };
    }
    if token.revoked_at.is_some() || now >= token.expires_at {
        return Rotation::Refuse;
    }
    Rotation::Rotate {
        user: token.user,
        family: token.family,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
    }

    fn token() -> StoredRefreshToken {
        StoredRefreshToken {
            user: UserId::from_uuid(uuid::Uuid::from_u128(1)),
            family: RefreshFamilyId::from_uuid(uuid::Uuid::from_u128(2)),
            expires_at: now() + TimeDelta::days(30),
            used_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn a_fresh_token_rotates_within_its_family() {
        let stored = token();
        assert_eq!(
            rotation(Some(&stored), now()),
            Rotation::Rotate {
                user: stored.user,
                family: stored.family
            }
        );
    }

    #[test]
    fn a_token_presented_twice_revokes_its_family() {
        let stored = StoredRefreshToken {
            used_at: Some(now() - TimeDelta::minutes(5)),
            ..token()
        };
        assert_eq!(
            rotation(Some(&stored), now()),
            Rotation::Reused {
                family: stored.family
            }
        );
    }

    #[test]
    fn reuse_is_detected_even_after_expiry_or_revocation() {
        let stored = StoredRefreshToken {
            used_at: Some(now() - TimeDelta::days(40)),
            revoked_at: Some(now() - TimeDelta::days(1)),
            expires_at: now() - TimeDelta::days(10),
            ..token()
        };
        assert!(matches!(
            rotation(Some(&stored), now()),
            Rotation::Reused { .. }
        ));
    }

    #[test]
    fn an_expired_revoked_or_unknown_token_is_refused() {
        let expired = StoredRefreshToken {
            expires_at: now(),
            ..token()
        };
        let revoked = StoredRefreshToken {
            revoked_at: Some(now()),
            ..token()
        };
        assert_eq!(rotation(Some(&expired), now()), Rotation::Refuse);
        assert_eq!(rotation(Some(&revoked), now()), Rotation::Refuse);
        assert_eq!(rotation(None, now()), Rotation::Refuse);
    }

    #[test]
    fn tokens_never_print_and_short_secrets_are_refused() {
        assert!(RefreshToken::new("too-short".into()).is_err());
        let token = RefreshToken::new("a".repeat(43)).unwrap();
        assert!(!format!("{token:?}").contains("aaaa"));
    }
}

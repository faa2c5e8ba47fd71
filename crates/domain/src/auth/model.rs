use std::fmt;

use crate::value::{InvalidValue, id_newtype};

id_newtype!(
    /// Identifies a user (a member of staff or an administrator).
    UserId
);

/// What a user may do: staff run the business, admins also manage users and API
/// clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages users, API clients, jobs and integrations, and everything staff do.
    Admin,
    /// Manages the catalog, customers, orders and baskets, and reads reports.
    Staff,
}

impl Role {
    /// Parses `admin` or `staff`.
    ///
    /// # Errors
    /// For any other text.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match raw {
            "admin" => Ok(Self::Admin),
            "staff" => Ok(Self::Staff),
            _ => Err(InvalidValue::new("a role is admin or staff")),
        }
    }

    /// `admin` or `staff`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Staff => "staff",
        }
    }

    /// Whether this role may do what `required` may.
    pub fn includes(self, required: Role) -> bool {
        self == Self::Admin || self == required
    }
}

/// A password as typed: 12 to 128 characters, not all white space. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The fewest characters a password has (NIST SP 800-63B asks at least 8; staff
    /// accounts guard customer data, so more).
    pub const MIN_CHARS: usize = 12;
    /// The most characters a password has: a bound on the work of hashing it.
    pub const MAX_CHARS: usize = 128;

    /// Parses a new password.
    ///
    /// # Errors
    /// When it is too short, too long, or only white space.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let chars = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) || raw.trim().is_empty() {
            return Err(InvalidValue::new(format!(
                "a password has {} to {} characters",
                Self::MIN_CHARS,
                Self::MAX_CHARS
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    /// A password offered at login: anything up to the maximum length is checked
    /// against the stored hash (the length rule applies to new passwords only, so a
    /// login never tells which rule a guess broke).
    ///
    /// # Errors
    /// When it is longer than [`Password::MAX_CHARS`].
    pub fn offered(raw: &str) -> Result<Self, InvalidValue> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue::new("the password is too long"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The text, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// A password hash in PHC string format (`$argon2id$v=19$m=…`), opaque to the
/// domain: only the hasher port reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a hash produced by a hasher or read from storage.
    pub fn from_phc(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// The caller of a request, resolved once from its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A logged-in user.
    User {
        /// Who.
        id: UserId,
        /// What they may do.
        role: Role,
    },
    /// An API client, by its key.
    Client {
        /// Which client.
        id: uuid::Uuid,
    },
}

impl Principal {
    /// `user` or `client`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::User { .. } => "user",
            Self::Client { .. } => "client",
        }
    }

    /// The id of the user or client.
    pub fn id(&self) -> uuid::Uuid {
        match self {
            Self::User { id, .. } => id.as_uuid(),
            Self::Client { id } => *id,
        }
    }

    /// Whether this caller is a user whose role includes `required`.
    pub fn has_role(&self, required: Role) -> bool {
        matches!(self, Self::User { role, .. } if role.includes(required))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_may_do_what_staff_may_but_not_the_other_way_round() {
        assert!(Role::Admin.includes(Role::Staff));
        assert!(Role::Staff.includes(Role::Staff));
        assert!(!Role::Staff.includes(Role::Admin));
    }

    #[test]
    fn a_client_has_no_user_role() {
        let client = Principal::Client {
            id: uuid::Uuid::nil(),
        };
        assert!(!client.has_role(Role::Staff));
        assert_eq!(client.kind(), "client");
    }

    #[test]
    fn a_new_password_is_12_to_128_characters_counted_as_characters() {
        assert!(Password::parse("short-pass!").is_err());
        assert!(Password::parse("twelve chars").is_ok());
        assert!(Password::parse(&"ø".repeat(128)).is_ok());
        assert!(Password::parse(&"ø".repeat(129)).is_err());
        assert!(Password::parse(&" ".repeat(20)).is_err());
    }

    #[test]
    fn passwords_and_hashes_never_print() {
        let password = Password::parse("correct horse battery").unwrap();
        let hash = PasswordHash::from_phc("$argon2id$v=19$secret".into());
        assert!(!format!("{password:?}{hash:?}").contains("horse"));
        assert!(!format!("{hash:?}").contains("secret"));
    }
}

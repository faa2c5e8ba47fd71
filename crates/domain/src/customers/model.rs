use chrono::{DateTime, Utc};

use crate::value::{InvalidValue, Version, id_newtype, text_newtype};

id_newtype!(
    /// Identifies a customer.
    CustomerId
);

text_newtype!(
    /// A customer's name.
    CustomerName,
    "a name",
    200
);

text_newtype!(
    /// The city a customer is in; reports group sales by it.
    City,
    "a city",
    100
);

/// An e-mail address: one `@`, a non-empty local part, a domain with a dot, no
/// spaces, at most 254 characters. Kept as given; two addresses are the same
/// customer's when their [`lookup_key`](Self::lookup_key)s are equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses an address.
    ///
    /// # Errors
    /// When `raw` does not look like an address.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let email = raw.trim();
        let invalid = || InvalidValue::new("must be an e-mail address like name@example.com");
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@');
        if local.is_empty() || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(email.to_owned()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address lower-cased by Unicode rules, not only ASCII ones
    /// (`Éx@Example.com` → `éx@example.com`): what uniqueness compares.
    pub fn lookup_key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number: digits with optional `+`, spaces, dashes and parentheses, 3 to 32
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Parses a phone number.
    ///
    /// # Errors
    /// When `raw` holds other characters, too few digits, or is too long.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let phone = raw.trim();
        let allowed = |c: char| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')');
        let digits = phone.chars().filter(char::is_ascii_digit).count();
        if phone.len() > 32 || digits < 3 || !phone.chars().all(allowed) {
            return Err(InvalidValue::new(
                "a phone number is 3 to 32 digits, spaces, '+', '-', '(' or ')'",
            ));
        }
        Ok(Self(phone.to_owned()))
    }

    /// The number as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    id: CustomerId,
    name: CustomerName,
    email: Email,
    city: City,
    phone: Option<Phone>,
    version: Version,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Customer {
    /// Reassembles a stored customer.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        id: CustomerId,
        name: CustomerName,
        email: Email,
        city: City,
        phone: Option<Phone>,
        version: Version,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            name,
            email,
            city,
            phone,
            version,
            created_at,
            updated_at,
        }
    }

    /// The customer's id.
    pub fn id(&self) -> CustomerId {
        self.id
    }
    /// The name.
    pub fn name(&self) -> &CustomerName {
        &self.name
    }
    /// The e-mail address.
    pub fn email(&self) -> &Email {
        &self.email
    }
    /// The city.
    pub fn city(&self) -> &City {
        &self.city
    }
    /// The phone number, if known.
    pub fn phone(&self) -> Option<&Phone> {
        self.phone.as_ref()
    }
    /// The revision, for optimistic concurrency.
    pub fn version(&self) -> Version {
        self.version
    }
    /// When the customer was created.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    /// When the customer last changed.
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
}

/// A customer to create; the customer service gives it its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCustomer {
    /// The name.
    pub name: CustomerName,
    /// The e-mail address; unique, case-insensitively.
    pub email: Email,
    /// The city.
    pub city: City,
    /// The phone number.
    pub phone: Option<Phone>,
}

/// A partial update of a customer; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerChanges {
    /// A new name.
    pub name: Option<CustomerName>,
    /// A new address.
    pub email: Option<Email>,
    /// A new city.
    pub city: Option<City>,
    /// A new phone number; `Some(None)` clears it.
    pub phone: Option<Option<Phone>>,
}

impl CustomerChanges {
    /// Whether no field changes.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_addresses_parse() {
        assert!(Email::parse(" ada@example.com ").is_ok());
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "a@b@c.com",
            "ada@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn addresses_differing_only_in_case_share_a_lookup_key_in_any_script() {
        let key = |raw| Email::parse(raw).expect("address").lookup_key();
        assert_eq!(key("\u{c9}x@Example.COM"), key("\u{e9}x@example.com"));
        assert_eq!(key("\u{c9}x@Example.COM"), "\u{e9}x@example.com");
        assert_ne!(key("ex@example.com"), key("\u{e9}x@example.com"));
    }

    #[test]
    fn phone_numbers_allow_common_punctuation() {
        assert!(Phone::parse("+45 (33) 12-34-56").is_ok());
        assert!(Phone::parse("12").is_err());
        assert!(Phone::parse("call me").is_err());
    }
}

//! Money in integer minor units: no floating point anywhere.

use std::fmt;

use crate::value::InvalidValue;

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses a currency code; lower-case input is accepted and upper-cased.
    ///
    /// # Errors
    /// When `raw` is not three ASCII letters.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let bytes = raw.trim().as_bytes();
        match bytes {
            [a, b, c] if bytes.iter().all(u8::is_ascii_alphabetic) => Ok(Self([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
                c.to_ascii_uppercase(),
            ])),
            _ => Err(InvalidValue::new(
                "currency must be a three-letter ISO 4217 code",
            )),
        }
    }

    /// The code, e.g. `"EUR"`.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount that did not fit in 64-bit minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the amount is too large")]
pub struct MoneyOverflow;

/// An amount of money: integer minor units (cents, øre, ...) and a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// An amount in minor units.
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// A price: a non-negative amount.
    ///
    /// # Errors
    /// When `minor` is negative.
    pub fn price(minor: i64, currency: Currency) -> Result<Self, InvalidValue> {
        if minor < 0 {
            return Err(InvalidValue::new("a price must not be negative"));
        }
        Ok(Self { minor, currency })
    }

    /// Nothing, in `currency`.
    pub fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }

    /// The amount in minor units.
    pub fn minor(&self) -> i64 {
        self.minor
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// This amount `times` times.
    ///
    /// # Errors
    /// When the product does not fit in 64 bits.
    pub fn times(&self, times: u32) -> Result<Money, MoneyOverflow> {
        self.minor
            .checked_mul(i64::from(times))
            .map(|minor| Money::new(minor, self.currency))
            .ok_or(MoneyOverflow)
    }

    /// The sum of two amounts of the same currency.
    ///
    /// # Errors
    /// When the sum does not fit in 64 bits. Callers make sure currencies match.
    pub fn plus(&self, other: Money) -> Result<Money, MoneyOverflow> {
        debug_assert_eq!(self.currency, other.currency);
        self.minor
            .checked_add(other.minor)
            .map(|minor| Money::new(minor, self.currency))
            .ok_or(MoneyOverflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("eur").expect("valid currency")
    }

    #[test]
    fn currencies_are_three_letters_upper_cased() {
        assert_eq!(eur().as_str(), "EUR");
        assert!(Currency::parse("EURO").is_err());
        assert!(Currency::parse("E1R").is_err());
        assert!(Currency::parse("").is_err());
    }

    #[test]
    fn prices_are_never_negative() {
        assert!(Money::price(-1, eur()).is_err());
        assert_eq!(Money::price(0, eur()).map(|m| m.minor()), Ok(0));
    }

    #[test]
    fn arithmetic_overflow_is_an_error_not_a_wrap() {
        let big = Money::new(i64::MAX / 2 + 1, eur());
        assert_eq!(big.times(2), Err(MoneyOverflow));
        assert_eq!(big.plus(big), Err(MoneyOverflow));
        assert_eq!(Money::new(250, eur()).times(3).map(|m| m.minor()), Ok(750));
    }
}

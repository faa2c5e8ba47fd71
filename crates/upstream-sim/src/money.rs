//! Exact decimal amounts: the wire carries JSON numbers such as `12.34`, the
//! simulator keeps integer minor units (`1234`). No floating point anywhere.

use std::fmt;

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// An amount of money in minor units (cents, øre): `Money(1234)` is `12.34`.
///
/// It is read from and written to JSON as a decimal *number* whose text is
/// parsed exactly (never through `f64`), so `0.1` and `0.2` are exactly `10`
/// and `20` minor units and their sum is exactly `0.30`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(pub i64);

/// Why a JSON number could not be read as an amount of money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoneyError {
    /// The text is not a JSON number (a string, `null`, garbage, …).
    NotANumber,
    /// The number has more than two significant decimals (e.g. `1.005`).
    TooPrecise,
    /// The number does not fit in 64-bit minor units.
    Overflow,
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MoneyError::NotANumber => "amount is not a JSON number",
            MoneyError::TooPrecise => "amount has more than two decimals",
            MoneyError::Overflow => "amount is out of range",
        })
    }
}

impl std::error::Error for MoneyError {}

impl Money {
    /// The amount in minor units.
    pub fn minor(self) -> i64 {
        self.0
    }

    /// Reads the exact text of a JSON number (`12.34`, `1e2`, `-0.5`, `10.10`).
    pub fn parse_json_number(text: &str) -> Result<Money, MoneyError> {
        let t = text.trim();
        let (negative, rest) = match t.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, t),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (int, frac) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        let digits_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits_ok(int) || (int.len() > 1 && int.starts_with('0')) {
            return Err(MoneyError::NotANumber);
        }
        if mantissa.contains('.') && !digits_ok(frac) {
            return Err(MoneyError::NotANumber);
        }
        let exp: i64 = match exponent {
            None => 0,
            Some(e) => {
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if !digits_ok(digits) {
                    return Err(MoneyError::NotANumber);
                }
                // Absurd exponents are either overflow or too precise.
                let value: i64 = digits.parse().map_err(|_| MoneyError::Overflow)?;
                if e.starts_with('-') { -value } else { value }
            }
        };
        // value = digits × 10^-scale
        let mut digits: String = format!("{int}{frac}");
        let mut scale: i64 = i64::try_from(frac.len())
            .map_err(|_| MoneyError::Overflow)?
            .checked_sub(exp)
            .ok_or(MoneyError::Overflow)?;
        let significant = digits.trim_start_matches('0');
        if significant.is_empty() {
            return Ok(Money(0));
        }
        digits = significant.to_owned();
        while scale > 2 && digits.ends_with('0') {
            digits.pop();
            scale -= 1;
        }
        if scale > 2 {
            return Err(MoneyError::TooPrecise);
        }
        let mut value: i64 = 0;
        for b in digits.bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(b - b'0')))
                .ok_or(MoneyError::Overflow)?;
        }
        let shift = u32::try_from(2 - scale).map_err(|_| MoneyError::Overflow)?;
        let factor = 10_i64.checked_pow(shift).ok_or(MoneyError::Overflow)?;
        let minor = value.checked_mul(factor).ok_or(MoneyError::Overflow)?;
        Ok(Money(if negative { -minor } else { minor }))
    }

    /// The decimal text of the amount, always with two decimals (`12.30`).
    pub fn to_decimal_string(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }

    /// Whether the amount ends in `.13`: the simulator's "decline" test hook.
    pub fn ends_in_13(self) -> bool {
        self.0.unsigned_abs() % 100 == 13
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_decimal_string())
    }
}

/// Exact addition of minor units; overflows like `i64` (a panic in debug builds).
impl std::ops::Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money(self.0 + rhs.0)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        raw_number(&self.to_decimal_string())
            .map_err(S::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Money::parse_json_number(raw.get()).map_err(D::Error::custom)
    }
}

/// A JSON number written verbatim from its decimal text.
pub(crate) fn raw_number(text: &str) -> Result<Box<RawValue>, serde_json::Error> {
    RawValue::from_string(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly() {
        let p = |s| Money::parse_json_number(s);
        assert_eq!(p("12.34"), Ok(Money(1234)));
        assert_eq!(p("12.3"), Ok(Money(1230)));
        assert_eq!(p("12"), Ok(Money(1200)));
        assert_eq!(p("0.1"), Ok(Money(10)));
        assert_eq!(p("0.01"), Ok(Money(1)));
        assert_eq!(p("1.10000"), Ok(Money(110)));
        assert_eq!(p("1e2"), Ok(Money(10000)));
        assert_eq!(p("1234E-2"), Ok(Money(1234)));
        assert_eq!(p("-5.5"), Ok(Money(-550)));
        assert_eq!(p("0"), Ok(Money(0)));
        assert_eq!(p("0.000"), Ok(Money(0)));
        assert_eq!(p("1.005"), Err(MoneyError::TooPrecise));
        assert_eq!(p("1e-3"), Err(MoneyError::TooPrecise));
        assert_eq!(p("1e400"), Err(MoneyError::Overflow));
        assert_eq!(p("99999999999999999999"), Err(MoneyError::Overflow));
        assert_eq!(p("\"1.00\""), Err(MoneyError::NotANumber));
        assert_eq!(p("01"), Err(MoneyError::NotANumber));
        assert_eq!(p("1."), Err(MoneyError::NotANumber));
        assert_eq!(p(".5"), Err(MoneyError::NotANumber));
        assert_eq!(p("null"), Err(MoneyError::NotANumber));
        assert_eq!(p("1e"), Err(MoneyError::NotANumber));
    }

    #[test]
    fn formats_and_round_trips() {
        assert_eq!(Money(1234).to_decimal_string(), "12.34");
        assert_eq!(Money(5).to_decimal_string(), "0.05");
        assert_eq!(Money(-5).to_decimal_string(), "-0.05");
        assert_eq!(Money(100).to_decimal_string(), "1.00");
        for m in [0, 1, 9, 10, 99, 100, 1234, 1013, 999_999_999] {
            let text = Money(m).to_decimal_string();
            assert_eq!(Money::parse_json_number(&text), Ok(Money(m)));
        }
        let json = serde_json::to_string(&Money(1234)).expect("serialises");
        assert_eq!(json, "12.34");
        let back: Money = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, Money(1234));
    }

    #[test]
    fn decimal_sums_never_drift() {
        let p = |s| Money::parse_json_number(s).expect("valid");
        assert_eq!(p("0.1") + p("0.2"), p("0.3"));
        let mut total = Money(0);
        for _ in 0..1000 {
            total = total + p("0.01");
        }
        assert_eq!(total, p("10.00"));
        assert!(p("10.13").ends_in_13());
        assert!(!p("10.31").ends_in_13());
    }
}

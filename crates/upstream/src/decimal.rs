//! Exact conversion between the upstream's decimal numbers (`12.34`, `0.25`) and
//! integers (minor units, basis points). The text of the JSON number is read
//! digit by digit — never through `f64` — and a number that is not a whole
//! multiple of the unit (`12.345` as money) is refused, not rounded.
//!
//! Hand-written rather than a decimal crate: only "scale a JSON number's text by a
//! power of ten, exactly" is needed, and serde_json's `arbitrary_precision` would
//! change number handling for every crate in the build.

use serde_json::value::RawValue;

/// Why a JSON number could not be read as an exact integer of the wanted unit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Not a JSON number (a string, `null`, garbage).
    #[error("{0:?} is not a JSON number")]
    NotANumber(String),
    /// More decimals than the unit has (`12.345` as money).
    #[error("{0} is not a whole number of the unit (too many decimals)")]
    Inexact(String),
    /// Too large for 64 bits.
    #[error("{0} is out of range")]
    OutOfRange(String),
}

/// Reads a JSON number's text as an integer count of `10^-scale`: with scale 2,
/// `12.3` is `1230`.
///
/// # Errors
/// When the text is not a JSON number, is not a whole count of the unit, or does
/// not fit in an `i64`.
pub fn parse_scaled(text: &str, scale: u32) -> Result<i64, DecimalError> {
    let text = text.trim();
    let not_a_number = || DecimalError::NotANumber(text.to_owned());
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole)
        || (whole.len() > 1 && whole.starts_with('0'))
        || (mantissa.contains('.') && !all_digits(fraction))
    {
        return Err(not_a_number());
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if !all_digits(digits) {
                return Err(not_a_number());
            }
            let value: i64 = digits
                .parse()
                .map_err(|_| DecimalError::OutOfRange(text.to_owned()))?;
            if e.starts_with('-') { -value } else { value }
        }
    };
    // value = digits × 10^(exponent − fraction length); in units: × 10^scale.
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Ok(0);
    }
    let fraction_len = i64::try_from(fraction.len()).map_err(|_| not_a_number())?;
    let mut shift = exponent
        .checked_sub(fraction_len)
        .and_then(|s| s.checked_add(i64::from(scale)))
        .ok_or_else(|| DecimalError::OutOfRange(text.to_owned()))?;
    let mut significant = significant;
    while shift < 0 {
        // Trailing zeros below the unit are harmless (`1.230` is 123 cents).
        match significant.strip_suffix('0') {
            Some(shorter) => {
                significant = shorter;
                shift += 1;
            }
            None => return Err(DecimalError::Inexact(text.to_owned())),
        }
    }
    let out_of_range = || DecimalError::OutOfRange(text.to_owned());
    let mut value: i64 = 0;
    for digit in significant.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(digit - b'0')))
            .ok_or_else(out_of_range)?;
    }
    let factor = u32::try_from(shift)
        .ok()
        .and_then(|s| 10_i64.checked_pow(s))
        .ok_or_else(out_of_range)?;
    let value = value.checked_mul(factor).ok_or_else(out_of_range)?;
    Ok(if negative { -value } else { value })
}

/// An amount in minor units as the upstream's decimal number, always with two
/// decimals (`1234` → `12.34`, `-5` → `-0.05`).
pub fn minor_to_json(minor: i64) -> Box<RawValue> {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let text = format!("{sign}{}.{:02}", abs / 100, abs % 100);
    // Digits, a dot and an optional sign always make a valid JSON number.
    RawValue::from_string(text).unwrap_or_else(|_| zero())
}

fn zero() -> Box<RawValue> {
    RawValue::from_string("0".to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cents(text: &str) -> Result<i64, DecimalError> {
        parse_scaled(text, 2)
    }

    #[test]
    fn decimal_numbers_become_exact_minor_units() {
        assert_eq!(cents("12.34"), Ok(1234));
        assert_eq!(cents("12.3"), Ok(1230));
        assert_eq!(cents("12"), Ok(1200));
        assert_eq!(cents("0.1"), Ok(10));
        assert_eq!(cents("0.01"), Ok(1));
        assert_eq!(cents("1.10000"), Ok(110));
        assert_eq!(cents("1e2"), Ok(10_000));
        assert_eq!(cents("1234E-2"), Ok(1234));
        assert_eq!(cents("1.5e+1"), Ok(1500));
        assert_eq!(cents("-5.5"), Ok(-550));
        assert_eq!(cents("0"), Ok(0));
        assert_eq!(cents("0.000"), Ok(0));
        assert_eq!(cents("92233720368547758.07"), Ok(i64::MAX));
    }

    #[test]
    fn amounts_that_are_not_whole_cents_are_refused_not_rounded() {
        assert!(matches!(cents("12.345"), Err(DecimalError::Inexact(_))));
        assert!(matches!(cents("0.001"), Err(DecimalError::Inexact(_))));
        assert!(matches!(cents("1e-3"), Err(DecimalError::Inexact(_))));
        assert!(matches!(cents("19.999"), Err(DecimalError::Inexact(_))));
    }

    #[test]
    fn garbage_and_huge_numbers_are_errors() {
        for text in [
            "\"1.00\"", "01", "1.", ".5", "null", "1e", "", "-", "1.2.3", "1e+-2",
        ] {
            assert!(
                matches!(cents(text), Err(DecimalError::NotANumber(_))),
                "{text}"
            );
        }
        assert!(matches!(cents("1e400"), Err(DecimalError::OutOfRange(_))));
        assert!(matches!(
            cents("99999999999999999999"),
            Err(DecimalError::OutOfRange(_))
        ));
        assert!(matches!(
            cents("1e99999999999999999999"),
            Err(DecimalError::OutOfRange(_))
        ));
    }

    #[test]
    fn other_scales_read_rates_exactly() {
        assert_eq!(parse_scaled("0.25", 4), Ok(2500));
        assert_eq!(parse_scaled("0.125", 4), Ok(1250));
        assert!(matches!(
            parse_scaled("0.00001", 4),
            Err(DecimalError::Inexact(_))
        ));
    }

    #[test]
    fn minor_units_are_written_with_two_decimals_and_read_back_exactly() {
        assert_eq!(minor_to_json(1234).get(), "12.34");
        assert_eq!(minor_to_json(5).get(), "0.05");
        assert_eq!(minor_to_json(-5).get(), "-0.05");
        assert_eq!(minor_to_json(100).get(), "1.00");
        for minor in [
            0,
            1,
            9,
            10,
            99,
            100,
            1234,
            1013,
            999_999_999,
            i64::MAX,
            i64::MIN + 1,
        ] {
            assert_eq!(cents(minor_to_json(minor).get()), Ok(minor), "{minor}");
        }
    }

    #[test]
    fn decimal_sums_never_drift() {
        let tenth = cents("0.1").expect("a number");
        let fifth = cents("0.2").expect("a number");
        assert_eq!(tenth + fifth, cents("0.3").expect("a number"));
    }
}

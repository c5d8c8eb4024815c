//! Exact decimal text for the fixed-point types: formatting, strict parsing
//! and the serde string representation.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use crate::NumError;

/// Longest input echoed back in a parse error message.
const MAX_ECHO_CHARS: usize = 64;

/// Writes `raw / 10^decimals` as an exact decimal: no exponent, no trailing
/// fractional zeros, no decimal point for whole numbers, `-` for negatives.
/// Honours the formatter's width, fill, alignment and `+` flags.
pub(crate) fn format_fixed(raw: i128, decimals: u32, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let scale = 10u128.pow(decimals);
    let magnitude = raw.unsigned_abs();
    let int_part = magnitude / scale;
    let frac_part = magnitude % scale;
    let digits = if frac_part == 0 {
        int_part.to_string()
    } else {
        let width = usize::try_from(decimals).map_err(|_| fmt::Error)?;
        let frac = format!("{frac_part:0width$}");
        format!("{int_part}.{}", frac.trim_end_matches('0'))
    };
    f.pad_integral(raw >= 0, "", &digits)
}

/// Builds a [`NumError::Parse`] mentioning the (truncated) input.
fn parse_error(what: &str, input: &str, reason: &str) -> NumError {
    let mut echo: String = input.chars().take(MAX_ECHO_CHARS).collect();
    if input.chars().nth(MAX_ECHO_CHARS).is_some() {
        echo.push_str("...");
    }
    NumError::Parse(format!("{what} {echo:?}: {reason}"))
}

/// Accumulates ASCII decimal digits into `acc`; `None` on overflow or on a
/// non-digit byte (callers check digits first).
fn accumulate(acc: u128, digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(acc, |acc, &b| {
        let digit = u128::from(b.checked_sub(b'0')?);
        acc.checked_mul(10)?.checked_add(digit)
    })
}

/// Parses a strict decimal string into `raw` units of `10^-decimals`.
///
/// Grammar: `-? [0-9]+ ( . [0-9]{1,decimals} )?`. Rejected: the empty
/// string, a leading `+`, whitespace, exponents, a bare or trailing `.`,
/// more fractional digits than `decimals`, and values beyond `i128`.
/// `what` names the type in error messages.
pub(crate) fn parse_fixed(s: &str, decimals: u32, what: &str) -> Result<i128, NumError> {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return Err(parse_error(what, s, "empty string"));
    }
    let (negative, body) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    let (int_digits, frac_digits) = match body.iter().position(|&b| b == b'.') {
        Some(dot) => (&body[..dot], Some(&body[dot + 1..])),
        None => (body, None),
    };
    let all_digits = |d: &[u8]| d.iter().all(u8::is_ascii_digit);
    if int_digits.is_empty() || !all_digits(int_digits) {
        return Err(parse_error(
            what,
            s,
            "expected digits before any decimal point",
        ));
    }
    let frac_digits = frac_digits.unwrap_or(&[]);
    if body.len() > int_digits.len() && frac_digits.is_empty() {
        return Err(parse_error(
            what,
            s,
            "expected digits after the decimal point",
        ));
    }
    if !all_digits(frac_digits) {
        return Err(parse_error(what, s, "unexpected character"));
    }
    let frac_len = u32::try_from(frac_digits.len()).unwrap_or(u32::MAX);
    if frac_len > decimals {
        return Err(parse_error(
            what,
            s,
            &format!("more than {decimals} decimal places"),
        ));
    }
    let out_of_range = || parse_error(what, s, "out of range");
    let int_value = accumulate(0, int_digits).ok_or_else(out_of_range)?;
    let frac_value = accumulate(0, frac_digits).ok_or_else(out_of_range)?;
    let magnitude = int_value
        .checked_mul(10u128.pow(decimals))
        .and_then(|m| m.checked_add(frac_value.checked_mul(10u128.pow(decimals - frac_len))?))
        .ok_or_else(out_of_range)?;
    let raw = if negative {
        0i128.checked_sub_unsigned(magnitude)
    } else {
        i128::try_from(magnitude).ok()
    };
    raw.ok_or_else(out_of_range)
}

/// serde visitor deserializing a fixed-point type from its decimal string.
pub(crate) struct DecimalVisitor<T> {
    expecting: &'static str,
    marker: PhantomData<T>,
}

impl<T> DecimalVisitor<T> {
    /// A visitor whose error messages say it expected `expecting`.
    pub(crate) const fn new(expecting: &'static str) -> Self {
        DecimalVisitor {
            expecting,
            marker: PhantomData,
        }
    }
}

impl<T> serde::de::Visitor<'_> for DecimalVisitor<T>
where
    T: FromStr<Err = NumError>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Show(i128, u32);
    impl fmt::Display for Show {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            format_fixed(self.0, self.1, f)
        }
    }

    #[test]
    fn formats_exactly() {
        assert_eq!(Show(1_500_000, 6).to_string(), "1.5");
        assert_eq!(Show(-1, 6).to_string(), "-0.000001");
        assert_eq!(Show(0, 6).to_string(), "0");
        assert_eq!(Show(12_000_000, 6).to_string(), "12");
        assert_eq!(Show(-12_500_000, 6).to_string(), "-12.5");
        assert_eq!(Show(64_250_500_000_000, 9).to_string(), "64250.5");
        assert_eq!(Show(1, 9).to_string(), "0.000000001");
        assert_eq!(Show(7, 0).to_string(), "7");
        assert_eq!(
            Show(i128::MIN, 6).to_string(),
            "-170141183460469231731687303715884.105728"
        );
        assert_eq!(
            Show(i128::MAX, 9).to_string(),
            "170141183460469231731687303715.884105727"
        );
        assert_eq!(format!("{:>6}", Show(15, 1)), "   1.5");
        assert_eq!(format!("{:+}", Show(15, 1)), "+1.5");
    }

    #[test]
    fn parses_valid() {
        assert_eq!(parse_fixed("12", 6, "x"), Ok(12_000_000));
        assert_eq!(parse_fixed("-12.5", 6, "x"), Ok(-12_500_000));
        assert_eq!(parse_fixed("0.000001", 6, "x"), Ok(1));
        assert_eq!(parse_fixed("-0", 6, "x"), Ok(0));
        assert_eq!(parse_fixed("007.10", 6, "x"), Ok(7_100_000));
        assert_eq!(parse_fixed("1.500000", 6, "x"), Ok(1_500_000));
        assert_eq!(
            parse_fixed("-170141183460469231731687303715884.105728", 6, "x"),
            Ok(i128::MIN)
        );
        assert_eq!(
            parse_fixed("170141183460469231731687303715884.105727", 6, "x"),
            Ok(i128::MAX)
        );
    }

    #[test]
    fn rejects_malformed() {
        let bad = [
            "",
            "+",
            "-",
            "+1",
            "1e5",
            "1E5",
            " 1",
            "1 ",
            "1 000",
            "1.",
            ".5",
            "-.5",
            "--1",
            "1.2.3",
            "1,5",
            "0x10",
            "abc",
            "1.0000001",
            "0.0000000",
            "١٢",
            "１",
            "NaN",
            "inf",
            "-inf",
            "1_000",
            "\u{0}",
            "1-",
            "1.-5",
            "170141183460469231731687303715884.105728",
            "-170141183460469231731687303715884.105729",
            "340282366920938463463374607431768.211456",
            "999999999999999999999999999999999999999999999999",
        ];
        for s in bad {
            match parse_fixed(s, 6, "x") {
                Err(NumError::Parse(msg)) => assert!(!msg.is_empty()),
                other => panic!("{s:?} parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn long_inputs_are_truncated_in_messages() {
        let long = "9".repeat(10_000);
        let Err(NumError::Parse(msg)) = parse_fixed(&long, 6, "x") else {
            panic!("expected a parse error");
        };
        assert!(msg.len() < 200, "{msg}");
        // Leading zeros never overflow.
        let zeros = format!("{}1", "0".repeat(10_000));
        assert_eq!(parse_fixed(&zeros, 6, "x"), Ok(1_000_000));
    }
}

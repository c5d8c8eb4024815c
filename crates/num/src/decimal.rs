//! Exact decimal text for the fixed-point types: formatting, strict parsing
//! and the serde string representation.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use crate::NumError;

/// Longest input echoed back in a parse error message.
const MAX_ECHO_CHARS: usize = 64;

/// Longest text of an `i128` magnitude with a decimal point: 39 digits,
/// the point, and a leading `0` when every digit is fractional.
const MAX_FIXED_CHARS: usize = 48;

/// Writes `raw / 10^decimals` as an exact decimal: no exponent, no trailing
/// fractional zeros, no decimal point for whole numbers, `-` for negatives.
/// Honours the formatter's width, fill, alignment and `+` flags.
///
/// The digits are written into a stack buffer (no intermediate `String`s):
/// the state machine formats every amount it stores this way.
pub(crate) fn format_fixed(raw: i128, decimals: u32, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut buffer = [0u8; MAX_FIXED_CHARS];
    let digits = fixed_digits(raw.unsigned_abs(), decimals, &mut buffer)?;
    f.pad_integral(raw >= 0, "", digits)
}

/// Appends the exact decimal text of `raw / 10^decimals` to `out`: the
/// same text as `Display` without width or flags, without going through a
/// formatter.
pub(crate) fn push_fixed(raw: i128, decimals: u32, out: &mut String) {
    let mut buffer = [0u8; MAX_FIXED_CHARS];
    // Every i128 at every decimals the types use fits the buffer.
    if let Ok(digits) = fixed_digits(raw.unsigned_abs(), decimals, &mut buffer) {
        if raw < 0 {
            out.push('-');
        }
        out.push_str(digits);
    }
}

/// The ASCII digit of `value % 10`.
#[allow(clippy::cast_possible_truncation)] // a remainder modulo 10 fits a u8
fn digit(value: u64) -> u8 {
    b'0' + (value % 10) as u8
}

/// Writes `value`'s decimal digits, zero-padded to at least `min_width`,
/// right-aligned to end before `end`; returns where they start.
fn write_digits(
    mut value: u128,
    min_width: usize,
    buffer: &mut [u8],
    end: usize,
) -> Result<usize, fmt::Error> {
    // Beyond u64, peel 19 digits at a time so the digit loop stays 64-bit.
    const CHUNK: u128 = 10_000_000_000_000_000_000;
    let mut start = end;
    let mut put = |byte: u8| -> Result<(), fmt::Error> {
        start = start.checked_sub(1).ok_or(fmt::Error)?;
        *buffer.get_mut(start).ok_or(fmt::Error)? = byte;
        Ok(())
    };
    let mut written = 0;
    while value > u128::from(u64::MAX) {
        let mut chunk = u64::try_from(value % CHUNK).map_err(|_| fmt::Error)?;
        value /= CHUNK;
        for _ in 0..19 {
            put(digit(chunk))?;
            chunk /= 10;
        }
        written += 19;
    }
    let mut small = u64::try_from(value).map_err(|_| fmt::Error)?;
    loop {
        put(digit(small))?;
        written += 1;
        small /= 10;
        if small == 0 {
            break;
        }
    }
    while written < min_width {
        put(b'0')?;
        written += 1;
    }
    Ok(start)
}

/// The exact decimal text of `magnitude / 10^decimals`, in `buffer`.
fn fixed_digits(magnitude: u128, decimals: u32, buffer: &mut [u8]) -> Result<&str, fmt::Error> {
    let scale = 10u128.checked_pow(decimals).ok_or(fmt::Error)?;
    let (int_part, frac_part) = match (u64::try_from(magnitude), u64::try_from(scale)) {
        // 64-bit division when the value allows (the usual case).
        (Ok(small), Ok(scale)) => (u128::from(small / scale), u128::from(small % scale)),
        _ => (magnitude / scale, magnitude % scale),
    };
    let mut stop = buffer.len();
    let mut int_end = stop;
    if frac_part != 0 {
        let width = usize::try_from(decimals).map_err(|_| fmt::Error)?;
        let frac_start = write_digits(frac_part, width, buffer, stop)?;
        // No trailing fractional zeros (a non-zero digit stops the trim).
        while stop > frac_start && buffer.get(stop - 1) == Some(&b'0') {
            stop -= 1;
        }
        int_end = frac_start.checked_sub(1).ok_or(fmt::Error)?;
        *buffer.get_mut(int_end).ok_or(fmt::Error)? = b'.';
    }
    let start = write_digits(int_part, 1, buffer, int_end)?;
    std::str::from_utf8(buffer.get(start..stop).ok_or(fmt::Error)?).map_err(|_| fmt::Error)
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

    /// The formatting before the stack buffer, kept as the reference: the
    /// stored text must not change by a byte.
    fn reference_format(raw: i128, decimals: u32) -> String {
        let scale = 10u128.pow(decimals);
        let magnitude = raw.unsigned_abs();
        let int_part = magnitude / scale;
        let frac_part = magnitude % scale;
        let digits = if frac_part == 0 {
            int_part.to_string()
        } else {
            let width = usize::try_from(decimals).unwrap();
            let frac = format!("{frac_part:0width$}");
            format!("{int_part}.{}", frac.trim_end_matches('0'))
        };
        if raw < 0 {
            format!("-{digits}")
        } else {
            digits
        }
    }

    fn edge_values() -> Vec<i128> {
        let mut values = vec![0, 1, -1, 9, 10, 11, i128::MIN, i128::MAX, i128::MIN + 1];
        for power in 0..39u32 {
            let p = 10i128.pow(power);
            values.extend([p, p - 1, p + 1, -p, 1 - p, -p - 1, p / 7 * 3]);
        }
        for bits in [63u32, 64, 65, 126] {
            let b = 1i128 << bits;
            values.extend([b - 1, b, b + 1, -b, 1 - b]);
        }
        values
    }

    #[test]
    fn formats_like_the_reference_at_the_edges() {
        for decimals in [0, 1, 6, 9, 18, 19, 20, 38] {
            for raw in edge_values() {
                assert_eq!(
                    Show(raw, decimals).to_string(),
                    reference_format(raw, decimals),
                    "{raw} at {decimals} decimals"
                );
            }
        }
    }

    #[test]
    fn pushes_the_displayed_text() {
        for decimals in [0, 6, 9, 38] {
            for raw in edge_values() {
                let mut pushed = String::from("x");
                push_fixed(raw, decimals, &mut pushed);
                assert_eq!(pushed, format!("x{}", Show(raw, decimals)));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn formats_like_the_reference(raw: i128, small in -10_000_000_000_000i128..10_000_000_000_000, decimals in 0u32..=20) {
            proptest::prop_assert_eq!(Show(raw, decimals).to_string(), reference_format(raw, decimals));
            proptest::prop_assert_eq!(Show(small, decimals).to_string(), reference_format(small, decimals));
            proptest::prop_assert_eq!(Show(small, 6).to_string(), reference_format(small, 6));
            proptest::prop_assert_eq!(Show(small, 9).to_string(), reference_format(small, 9));
        }
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

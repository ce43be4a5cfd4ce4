//! Units in profiles and in output, with exact arithmetic.
//!
//! Sizes: `B`, `KiB`, `MiB`, `GiB`, `TiB` (powers of 2), `KB`, `MB`, `GB`, `TB` (powers of
//! 10), or a bare integer (bytes). Bandwidth: bits per second with `bit`, `Kbit`, `Mbit`,
//! `Gbit`, `Tbit`. Durations: `ns`, `us`, `ms`, `s`. A number may have a fractional part
//! (`1.5GiB`) as long as the result is a whole number of the base unit; nothing goes
//! through floating point.

use std::fmt;

/// A decimal with at most four decimal places, held as ten-thousandths (`1.2` → 12000).
/// `headroom` and `tcp_memory_share` are of this type (exact: ten-thousandths, never floats).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dec4(pub u64);

impl Dec4 {
    pub const ONE: Dec4 = Dec4(10_000);
    pub const SCALE: u128 = 10_000;

    /// Parse `1`, `1.2`, `0.7500`. More than four decimal places is an error.
    pub fn parse(text: &str) -> Result<Dec4, String> {
        let (int, frac) = split_decimal(text.trim())?;
        if frac.len() > 4 {
            return Err(format!(
                "{text:?} has {} decimal places; at most 4 are allowed",
                frac.len()
            ));
        }
        let mut value: u128 = int;
        for i in 0..4 {
            let digit = frac.as_bytes().get(i).map(|b| (b - b'0') as u128).unwrap_or(0);
            // Checked: a 35-digit value wrapped around to a plausible 1.8544.
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(digit))
                .ok_or_else(|| format!("{text:?} is too large"))?;
        }
        u64::try_from(value)
            .map(Dec4)
            .map_err(|_| format!("{text:?} is too large"))
    }

    /// `x × self`, rounded up.
    pub fn mul_ceil(self, x: u128) -> u128 {
        (x * self.0 as u128).div_ceil(Self::SCALE)
    }

    /// `x × self`, rounded down.
    pub fn mul_floor(self, x: u128) -> u128 {
        x * self.0 as u128 / Self::SCALE
    }

    /// The value in percent, for messages (`0.75` → `75%`).
    pub fn percent(self) -> String {
        let hundredths = self.0 as u128;
        let whole = hundredths / 100;
        let rest = hundredths % 100;
        if rest == 0 {
            format!("{whole}%")
        } else {
            let s = format!("{whole}.{rest:02}");
            format!("{}%", s.trim_end_matches('0'))
        }
    }
}

impl serde::Serialize for Dec4 {
    /// As a decimal string (`"1.2"`): exact, unlike a float.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Dec4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 10_000;
        let frac = self.0 % 10_000;
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let s = format!("{frac:04}");
            write!(f, "{whole}.{}", s.trim_end_matches('0'))
        }
    }
}

/// Split `12.5` into (12, "5"); digits only, no sign.
fn split_decimal(text: &str) -> Result<(u128, &str), String> {
    if text.starts_with('-') {
        return Err(format!("{text:?} is negative"));
    }
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) || (text.contains('.') && frac.is_empty()) {
        return Err(format!("{text:?} is not a number"));
    }
    let int: u128 = int.parse().map_err(|_| format!("{text:?} is too large"))?;
    Ok((int, frac))
}

/// `number × unit`, exact: the fractional part must come out whole.
fn scaled(text: &str, number: &str, unit: u128, what: &str) -> Result<u64, String> {
    let (int, frac) = split_decimal(number)?;
    let mut denom: u128 = 1;
    let mut frac_value: u128 = 0;
    for b in frac.bytes() {
        denom = denom
            .checked_mul(10)
            .ok_or_else(|| format!("{text:?} has too many decimal places"))?;
        frac_value = frac_value * 10 + (b - b'0') as u128;
    }
    let total = int
        .checked_mul(unit)
        .and_then(|i| i.checked_add(frac_value * unit / denom))
        .ok_or_else(|| format!("{text:?} is too large"))?;
    if !(frac_value * unit).is_multiple_of(denom) {
        return Err(format!("{text:?} is not a whole number of {what}"));
    }
    u64::try_from(total).map_err(|_| format!("{text:?} is too large"))
}

/// Split `62GiB` / `62 GiB` into ("62", "GiB").
fn number_and_unit(text: &str) -> (&str, &str) {
    let t = text.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(t.len());
    (t[..end].trim(), t[end..].trim())
}

const SIZE_UNITS: &str = "B, KiB, MiB, GiB, TiB (powers of 2) or KB, MB, GB, TB (powers of 10)";

/// A size in bytes from `"43KiB"`, `"62GiB"`, `"1.5 MB"`, `"4096"`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = number_and_unit(text);
    if number.is_empty() {
        return Err(format!(
            "{text:?} is not a size: expected a number with a unit, e.g. \"43KiB\" or \"62GiB\""
        ));
    }
    let factor: u128 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "{text:?}: unknown size unit {other:?}; valid units: {SIZE_UNITS}"
            ));
        }
    };
    scaled(text, number, factor, "bytes")
}

/// Whether `text` is written as a share (`"80%"`), to tell it from a size.
pub fn is_share(text: &str) -> bool {
    text.trim_end().ends_with('%')
}

/// A share of RAM from `"80%"` or `"12.25%"`: at most 2 decimal places, 0 % < share ≤ 100 %,
/// as ten-thousandths of the whole (`"80%"` → 8000, `"12.25%"` → 1225), exact.
pub fn parse_share(text: &str) -> Result<Dec4, String> {
    const VALID: &str =
        "valid: a percentage above 0% and at most 100%, with at most 2 decimal places (\"80%\", \"12.5%\")";
    let Some(number) = text.trim().strip_suffix('%') else {
        return Err(format!("{text:?} is not a share of RAM; {VALID}"));
    };
    let (int, frac) = split_decimal(number.trim()).map_err(|e| format!("{e}; {VALID}"))?;
    if frac.len() > 2 {
        return Err(format!(
            "{text:?} has {} decimal places; a share of RAM has at most 2 ({VALID})",
            frac.len()
        ));
    }
    let mut value = int.min(u64::MAX as u128);
    for i in 0..2 {
        let digit = frac.as_bytes().get(i).map(|b| (b - b'0') as u128).unwrap_or(0);
        value = value.saturating_mul(10).saturating_add(digit);
    }
    if value == 0 {
        return Err(format!("{text:?} is 0% of RAM; {VALID}"));
    }
    if value > 10_000 {
        return Err(format!("{text:?} is more than the whole RAM; {VALID}"));
    }
    Ok(Dec4(value as u64))
}

/// A bandwidth in bits per second from `"10Gbit"`.
pub fn parse_bandwidth(text: &str) -> Result<u64, String> {
    let (number, unit) = number_and_unit(text);
    let factor: u128 = match unit {
        "bit" | "" => 1,
        "Kbit" | "kbit" => 1_000,
        "Mbit" => 1_000_000,
        "Gbit" => 1_000_000_000,
        "Tbit" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "{text:?}: unknown bandwidth unit {other:?}; valid units: bit, Kbit, Mbit, Gbit, Tbit (bits per second)"
            ));
        }
    };
    if number.is_empty() {
        return Err(format!("{text:?} is not a bandwidth: expected e.g. \"10Gbit\""));
    }
    scaled(text, number, factor, "bits per second")
}

/// A duration in nanoseconds from `"20ms"`.
pub fn parse_duration_ns(text: &str) -> Result<u64, String> {
    let (number, unit) = number_and_unit(text);
    let factor: u128 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "" => {
            return Err(format!(
                "{text:?} has no unit; valid units: ns, us, ms, s (e.g. \"20ms\")"
            ));
        }
        other => {
            return Err(format!(
                "{text:?}: unknown duration unit {other:?}; valid units: ns, us, ms, s"
            ));
        }
    };
    if number.is_empty() {
        return Err(format!("{text:?} is not a duration: expected e.g. \"20ms\""));
    }
    scaled(text, number, factor, "nanoseconds")
}

/// Bytes for people: `47.1 GiB`, `150.3 KiB`, `512 B`. One decimal, binary units.
pub fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    // Below 1 KiB, and beyond what the tenths below can hold (no host has that much,
    // but a profile may say so): the bytes as they are.
    if !(1024..=u128::MAX / 16).contains(&bytes) {
        return format!("{bytes} B");
    }
    let mut unit = 0;
    let mut scale: u128 = 1;
    while unit + 1 < UNITS.len() && bytes >= scale * 1024 {
        scale *= 1024;
        unit += 1;
    }
    // one decimal, rounded half up, in integers (saturating: no size is that large)
    let tenths = bytes.saturating_mul(10).saturating_add(scale / 2) / scale;
    if tenths.is_multiple_of(10) {
        format!("{} {}", tenths / 10, UNITS[unit])
    } else {
        format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
    }
}

/// Bytes exactly and for people: `44032 B (43 KiB)`; below 1 KiB only `512 B`.
pub fn sized(bytes: u128) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        format!("{bytes} B ({})", human_bytes(bytes))
    }
}

/// Pages for people: `12358848 pages = 47.1 GiB`.
pub fn human_pages(pages: u64, page: u64) -> String {
    format!("{pages} pages = {}", human_bytes(pages as u128 * page as u128))
}

/// Integers for people: `328 841`.
pub fn grouped(n: u128) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("43KiB").unwrap(), 44032);
        assert_eq!(parse_size("62GiB").unwrap(), 66571993088);
        assert_eq!(parse_size("1.5 KiB").unwrap(), 1536);
        assert_eq!(parse_size("10KB").unwrap(), 10_000);
        assert_eq!(parse_size("0").unwrap(), 0);
        assert!(parse_size("1.3B").unwrap_err().contains("whole number"));
        assert!(parse_size("12 GB/s").unwrap_err().contains("unknown size unit"));
        assert!(parse_size("-5GiB").unwrap_err().contains("negative"));
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("99999999999TiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn shares() {
        assert_eq!(parse_share("80%").unwrap(), Dec4(8000));
        assert_eq!(parse_share(" 12.25 % ").unwrap(), Dec4(1225));
        assert_eq!(parse_share("12.5%").unwrap(), Dec4(1250));
        assert_eq!(parse_share("100%").unwrap(), Dec4(10_000));
        assert_eq!(parse_share("100.00%").unwrap(), Dec4(10_000));
        assert_eq!(parse_share("0.01%").unwrap(), Dec4(1));
        assert!(parse_share("12.345%").unwrap_err().contains("3 decimal places"));
        assert!(parse_share("0%").unwrap_err().contains("is 0%"));
        assert!(parse_share("0.00%").unwrap_err().contains("is 0%"));
        assert!(
            parse_share("100.01%")
                .unwrap_err()
                .contains("more than the whole")
        );
        assert!(
            parse_share("99999999999999999999999999%")
                .unwrap_err()
                .contains("more than")
        );
        assert!(parse_share("-5%").unwrap_err().contains("negative"));
        assert!(parse_share("%").unwrap_err().contains("not a number"));
        assert!(parse_share("80").unwrap_err().contains("not a share"));
        assert!(parse_share("8O%").is_err());
        assert!(is_share("80% ") && !is_share("80GiB"));
        // floor(ram × share): 80% of 62 GiB, 33.33% of 1000 B
        assert_eq!(Dec4(8000).mul_floor(62 << 30), 53257594470);
        assert_eq!(Dec4(3333).mul_floor(1000), 333);
    }

    #[test]
    fn bandwidth_and_duration() {
        assert_eq!(parse_bandwidth("10Gbit").unwrap(), 10_000_000_000);
        assert_eq!(parse_duration_ns("20ms").unwrap(), 20_000_000);
        assert_eq!(parse_duration_ns("0.5ms").unwrap(), 500_000);
        assert!(parse_duration_ns("20").unwrap_err().contains("no unit"));
        assert!(
            parse_bandwidth("10GB")
                .unwrap_err()
                .contains("unknown bandwidth unit")
        );
    }

    #[test]
    fn dec4() {
        assert_eq!(Dec4::parse("1.2").unwrap(), Dec4(12000));
        assert_eq!(Dec4::parse("0.75").unwrap(), Dec4(7500));
        assert_eq!(Dec4::parse("1").unwrap(), Dec4::ONE);
        assert!(Dec4::parse("1.23456").unwrap_err().contains("at most 4"));
        assert!(Dec4::parse("1.").is_err());
        assert_eq!(Dec4(12000).to_string(), "1.2");
        assert_eq!(Dec4(7500).percent(), "75%");
        assert_eq!(Dec4(7525).percent(), "75.25%");
        assert_eq!(Dec4(12000).mul_ceil(7), 9); // 8.4 -> 9
        assert_eq!(Dec4(12000).mul_floor(7), 8);
    }

    #[test]
    fn humans() {
        assert_eq!(human_bytes(12358848 * 4096), "47.1 GiB");
        assert_eq!(human_bytes(153940), "150.3 KiB");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(62 << 30), "62 GiB");
        assert_eq!(grouped(328841), "328 841");
        assert_eq!(grouped(4943539), "4 943 539");
        assert_eq!(grouped(470), "470");
        // beyond what the tenths hold: exact bytes, not a saturated figure
        assert_eq!(human_bytes(u128::MAX), format!("{} B", u128::MAX));
        assert!(human_bytes(u128::MAX / 16).ends_with("PiB"));
        assert_eq!(sized(44032), "44032 B (43 KiB)");
        assert_eq!(sized(512), "512 B");
    }
}

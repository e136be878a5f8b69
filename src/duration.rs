//! Durations as every option writes them (`500ms`, `2s`, `1.5s`, `1m`, `1h`, bare
//! seconds), their range and their one error message. The CLI reads `--probe-timeout`,
//! `--timeout` (status) and `--debounce` with it; the probe reads its own `--timeout` with
//! it too, so a bad value there is a "down" verdict (exit 1), never a usage error.

use std::time::Duration;

/// The shortest duration any option takes: below a millisecond nothing vipcheck waits
/// for can happen, and `0` would make every probe "down" at once.
pub const DURATION_MIN: Duration = Duration::from_millis(1);
/// The longest duration any option takes: a probe or a debounce of more than an hour is a
/// typo, not a setting.
pub const DURATION_MAX: Duration = Duration::from_secs(3600);
/// How to write a duration; the hint of every duration error.
pub const DURATION_HINT: &str = "write it like 500ms, 2s, 1.5s or 1m";

/// Why `text` is not a duration: the one sentence every duration option uses.
pub fn duration_message(text: &str) -> String {
    format!("{text:?} is not a duration from 1ms to 1h")
}

/// Parses a duration as written on the command line: `250ms`, `2s`, `1.5s`, `1m`, `1h`, or
/// a bare number of seconds, from [`DURATION_MIN`] to [`DURATION_MAX`]. Every duration
/// option (`--timeout`, `--probe-timeout`, `--debounce`) is read by this one function.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let secs = num
        .trim()
        .parse::<f64>()
        .ok()
        .map(|v| v * scale)
        .filter(|s| s.is_finite());
    // Compared in seconds before building a Duration: from_secs_f64 panics on huge values.
    match secs {
        Some(s)
            if s >= DURATION_MIN.as_secs_f64() - 1e-12
                && s <= DURATION_MAX.as_secs_f64() + 1e-12 =>
        {
            Ok(Duration::from_secs_f64(s).clamp(DURATION_MIN, DURATION_MAX))
        }
        _ => Err(format!(
            "{} (hint: {DURATION_HINT})",
            duration_message(text)
        )),
    }
}

/// As [`parse_duration`], and `0` (or `0s`, `0ms`) for "never wait": for options whose
/// zero turns a saving off (`--arp-reask 0`: ask on every turn).
pub fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let number = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let zero = matches!(t.get(number.len()..), Some("" | "s" | "ms" | "m" | "h"))
        && number.parse::<f64>() == Ok(0.0);
    if zero {
        return Ok(Duration::ZERO);
    }
    parse_duration(text).map_err(|e| format!("{e}, or 0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_where_it_turns_a_saving_off_and_nowhere_else() {
        for z in ["0", "0s", "0ms", " 0 ", "0.0s"] {
            assert_eq!(parse_duration_or_zero(z), Ok(Duration::ZERO), "{z:?}");
        }
        assert_eq!(parse_duration_or_zero("5s"), Ok(Duration::from_secs(5)));
        let e = parse_duration_or_zero("0x").unwrap_err();
        assert!(
            e.contains("\"0x\" is not a duration") && e.ends_with(", or 0"),
            "{e}"
        );
        assert!(parse_duration_or_zero("-0.5s").is_err());
        assert!(parse_duration("0").is_err(), "elsewhere 0 stays refused");
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn durations_outside_1ms_to_1h_are_refused_with_one_message() {
        assert_eq!(parse_duration("1ms"), Ok(DURATION_MIN));
        assert_eq!(parse_duration("60m"), Ok(DURATION_MAX));
        for bad in [
            "0", "0s", "0ms", "0.5ms", "3601", "61m", "2h", "1e300", "NaN", "inf", "",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.starts_with(&duration_message(bad)) && e.contains(DURATION_HINT),
                "{bad}: {e}"
            );
        }
    }
}

//! Durations as people write them in the inventory and on the command line (`90s`, `15m`,
//! `1h30m`): one parser for both, at the bottom of the crate so that the inventory and the
//! command line can share it without one importing the other.

use std::time::Duration;

/// Parses a duration the way kubectl writes them: a sequence of `<number><unit>` with
/// units h, m, s (e.g. `15m`, `1h30m`, `90s`); a bare number means seconds. Zero is
/// allowed in every spelling; the options that cannot be zero say so themselves.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration `{text}`: use e.g. 90s, 15m or 1h30m");
    let text = text.trim();
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("42"), Ok(Duration::from_secs(42)));
        // Zero is zero however it is written (`packageLockWait: 0s` fails at once, as `0`).
        for zero in ["0", "0s", "0m", "0h0m"] {
            assert_eq!(parse_duration(zero), Ok(Duration::ZERO), "{zero}");
        }
        for bad in ["", "m", "15x", "10m5", "-1m", "1.5m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

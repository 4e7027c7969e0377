//! Prometheus-style durations (`500ms`, `30s`, `1h30m`) and the longest
//! refill window a guard limit may have.

use std::time::Duration;

use super::matcher::quote;

/// A duration as Prometheus prints one: `30s`, `5m`, `2m30s`, `1h30m`,
/// `500ms` (whole milliseconds; `0s` for zero).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in DURATION_UNITS {
        let count = ms / size;
        if count > 0 {
            out.push_str(&format!("{count}{unit}"));
            ms %= size;
        }
    }
    out
}

/// Units a duration may use, largest first, with their size in ms.
const DURATION_UNITS: [(&str, u128); 4] =
    [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Parses a Prometheus-style duration: whole numbers with units `h`, `m`,
/// `s`, `ms`, largest unit first, each at most once (`1h30m`, `500ms`).
/// Parses a Prometheus-style duration (`30s`, `5m`, `1h30m`, `500ms`).
pub fn parse_duration_text(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let malformed = || {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            format!(
                "invalid duration {}: add a unit, like {text}s or {text}m",
                quote(text)
            )
        } else {
            format!(
                "invalid duration {}: expected whole numbers with units h, m, s or ms, largest first, like 30s, 5m, 1h30m or 500ms",
                quote(text)
            )
        }
    };
    let mut rest = text;
    let mut total: u128 = 0;
    let mut next_unit = 0;
    if rest.is_empty() {
        return Err(malformed());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(malformed());
        }
        if digits > 12 {
            return Err(format!("invalid duration {}: too large", quote(text)));
        }
        let count: u128 = rest[..digits].parse().map_err(|_| malformed())?;
        rest = &rest[digits..];
        // "ms" before "m", or "5ms" would read as 5 minutes and a stray "s".
        let Some(u) = (next_unit..DURATION_UNITS.len())
            .filter(|&u| rest.starts_with(DURATION_UNITS[u].0))
            .max_by_key(|&u| DURATION_UNITS[u].0.len())
        else {
            return Err(malformed());
        };
        let (unit, size) = DURATION_UNITS[u];
        rest = &rest[unit.len()..];
        total += count * size;
        next_unit = u + 1;
    }
    if total == 0 {
        return Err(format!(
            "invalid duration {}: must be more than zero",
            quote(text)
        ));
    }
    let millis = u64::try_from(total).map_err(|_| malformed())?;
    Ok(Duration::from_millis(millis))
}

/// The longest a guard limit may take to refill a full burst (period /
/// count × burst). The rate limiters (governor) hold that window in u64
/// nanoseconds (584 years at most) and add it to the clock's nanoseconds
/// since the Unix epoch: a longer window panics when `serve` builds the
/// guard. A century is far past any useful limit and keeps that sum in
/// range until the 2450s.
const MAX_LIMIT_WINDOW: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Refuses a guard limit whose refill window the rate limiters cannot
/// count, as `(which limit, reason)`.
pub(super) fn check_limit_windows(
    guard: &crate::core::guard::GuardConfig,
) -> Result<(), (&'static str, String)> {
    let limits = [
        ("workload", guard.workload_limit),
        ("namespace", guard.namespace_limit),
        ("cluster", guard.cluster_limit),
    ];
    for (what, limit) in limits {
        let Some(limit) = limit else { continue };
        let window = limit
            .per
            .checked_div(limit.count)
            .and_then(|cell| cell.checked_mul(limit.burst));
        if window.is_none_or(|w| w > MAX_LIMIT_WINDOW) {
            return Err((
                what,
                format!(
                    "guard.limits.{what}: invalid limit {}: a full burst must refill within 100 years (period / count × burst)",
                    quote(&limit.to_string())
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // --- durations ------------------------------------------------------

    #[test]
    fn durations_read_and_print_prometheus_style() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("1m", 60_000),
            ("2m30s", 150_000),
            ("1h30m", 5_400_000),
            ("1h1m1s1ms", 3_661_001),
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(d, Duration::from_millis(ms), "{text}");
            assert_eq!(format_duration(d), text);
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
    }

    #[test]
    fn malformed_durations_are_refused() {
        for text in [
            "", "30", "5 min", "1.5m", "30s1m", "1m1m", "-1s", "1d", "s", "0s",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?} accepted");
        }
        assert_eq!(
            parse_duration("30").unwrap_err(),
            "invalid duration \"30\": add a unit, like 30s or 30m"
        );
        assert_eq!(
            parse_duration("0m").unwrap_err(),
            "invalid duration \"0m\": must be more than zero"
        );
    }
}

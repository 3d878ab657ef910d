//! Time spans as tables show them and as token flags read them: how long ago an RFC 3339 instant was (`3m12s`,
//! kubectl's short forms), how long until one is, and the lifetimes of `token create --ttl` (the shared duration
//! syntax of `edge_proto::quantity`, which reads days too: a join token commonly lives for a week).
//!
//! Everything takes "now" as an argument, so the tables that use it render deterministically under test.

use std::time::Duration;

use edge_proto::quantity::{format_duration, parse_duration_ms};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The age of an RFC 3339 instant at `now`, e.g. `45s`, `3m12s`, `5h2m`, `3d4h`. A string that is not RFC 3339
/// is shown as it came (better than hiding what the controller said); an instant in the future (clock skew) is
/// `0s`.
pub fn since(instant: &str, now: OffsetDateTime) -> String {
    match OffsetDateTime::parse(instant, &Rfc3339) {
        Ok(t) => human((now - t).try_into().unwrap_or(Duration::ZERO)),
        Err(_) => instant.to_string(),
    }
}

/// How long from `now` until an RFC 3339 instant, or `expired` once it has passed.
pub fn until(instant: &str, now: OffsetDateTime) -> String {
    match OffsetDateTime::parse(instant, &Rfc3339) {
        Ok(t) if t <= now => "expired".to_string(),
        Ok(t) => human((t - now).try_into().unwrap_or(Duration::ZERO)),
        Err(_) => instant.to_string(),
    }
}

/// kubectl's `HumanDuration`: precise while a span is short, coarser as it grows, never more than two units.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let (mins, hours, days) = (secs / 60, secs / 3600, secs / 86_400);
    let two = |big: u64, bu: &str, small: u64, su: &str| {
        if small == 0 {
            format!("{big}{bu}")
        } else {
            format!("{big}{bu}{small}{su}")
        }
    };
    if secs < 120 {
        format!("{secs}s")
    } else if mins < 10 {
        two(mins, "m", secs % 60, "s")
    } else if hours < 3 {
        format!("{mins}m")
    } else if hours < 8 {
        two(hours, "h", mins % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if days < 8 {
        two(days, "d", hours % 24, "h")
    } else if days < 365 * 2 {
        format!("{days}d")
    } else if days < 365 * 8 {
        two(days / 365, "y", days % 365, "d")
    } else {
        format!("{}y", days / 365)
    }
}

/// Parses a token lifetime: `500ms`, `30s`, `5m`, `24h`, `7d` (or bare seconds). Zero is refused: such a token
/// could never be used.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let ms = parse_duration_ms(s)?;
    if ms == 0 {
        return Err(format!("a lifetime of {s:?} would never let a node join (at least 1ms)"));
    }
    Ok(Duration::from_millis(ms))
}

/// Formats a lifetime the way [`parse_ttl`] reads it (`7d`, `24h`, `90s`, `500ms`): whole days from two days on
/// (a day stays `24h`, the default's spelling).
pub fn format_ttl(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 2 * 86_400_000 && ms.is_multiple_of(86_400_000) {
        format!("{}d", ms / 86_400_000)
    } else {
        format_duration(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    #[test]
    fn human_is_kubectl_short_form() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (192, "3m12s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (5 * 3600 + 2 * 60, "5h2m"),
            (30 * 3600, "30h"),
            (3 * 86_400 + 4 * 3600, "3d4h"),
            (7 * 86_400, "7d"),
            (100 * 86_400, "100d"),
            (3 * 365 * 86_400 + 5 * 86_400, "3y5d"),
            (10 * 365 * 86_400, "10y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human(Duration::from_secs(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn since_and_until_take_now() {
        let now = at("2025-06-01T12:03:12Z");
        assert_eq!(since("2025-06-01T12:00:00Z", now), "3m12s");
        assert_eq!(since("2025-06-01T12:00:00+05:00", now), "5h3m");
        assert_eq!(since("2025-06-01T10:00:00Z", now), "123m");
        assert_eq!(since("2025-06-01T13:00:00Z", now), "0s", "skew is not a negative age");
        assert_eq!(since("yesterday", now), "yesterday");
        assert_eq!(until("2025-06-02T12:03:12Z", now), "24h");
        assert_eq!(until("2025-06-01T12:03:12Z", now), "expired");
        assert_eq!(until("2025-06-01T11:00:00Z", now), "expired");
    }

    #[test]
    fn ttl_reads_days_and_the_shared_syntax() {
        assert_eq!(parse_ttl("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_ttl("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_ttl("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("xd").is_err());
        assert!(parse_ttl("-1d").is_err());
        assert!(parse_ttl("soon").is_err());
        assert_eq!(format_ttl(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(format_ttl(Duration::from_secs(2 * 86_400)), "2d");
        assert_eq!(format_ttl(Duration::from_secs(86_400)), "24h");
        assert_eq!(format_ttl(Duration::from_secs(3600)), "1h");
        assert_eq!(format_ttl(Duration::from_millis(500)), "500ms");
    }
}

//! Wall-clock helpers: Unix milliseconds and RFC 3339 text.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// RFC 3339 in UTC with exactly three fractional digits, e.g. `2026-11-28T19:27:19.120Z`: every timestamp the
/// controller hands out has the same width, so columns and log lines align.
pub fn rfc3339_ms(ms: u64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_rfc3339() {
        assert_eq!(super::rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(super::rfc3339_ms(1_700_000_000_100), "2023-11-14T22:13:20.100Z", "trailing zeros kept");
        assert_eq!(super::rfc3339_ms(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
    }
}

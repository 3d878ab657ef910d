//! The text parsers of quantities and durations, on every binary: `edge_proto::quantity` (CPU, memory,
//! durations, volumes), broker URLs, names, and where durations are read beyond it: `edgectl`'s token
//! lifetimes (`edgectl::age`) and instants from the controller, and the agent's intervals (its config file).
//!
//! Invariants: what parses prints back to text that parses to the same value (`format_*` are documented as
//! what the parsers read back); a parsed volume name is a valid name and its size not 0; a parsed broker
//! address rebuilds to the same host and port; an accepted name is a DNS label; an interval is in (0, 1h].

use std::time::Duration;

use edge_proto::quantity::{
    format_cpu, format_duration, format_memory, format_memory_exact, parse_cpu, parse_duration, parse_duration_ms,
    parse_memory, parse_volume,
};
use edge_proto::{parse_broker_url, validate_name};
use edgectl::age;

use super::{text, Target};
use crate::agent_config_file::interval;

pub const TARGET: Target = Target {
    name: "quantity",
    about: "CPU, memory, duration, volume, broker URL, name, ttl and interval parsers",
    run,
    dict: &[
        b"m",
        b"Mi",
        b"Gi",
        b"Ki",
        b"Ei",
        b"E",
        b"k",
        b"ms",
        b"s",
        b"h",
        b"d",
        b".",
        b"e",
        b"-",
        b"+",
        b":",
        b"mqtt://",
        b"tcp://",
        b"[::1]",
        b"T",
        b"Z",
        b"2025-06-01T12:00:00Z",
        b"+05:00",
    ],
    max_len: 128,
};

fn run(data: &[u8]) -> bool {
    let s = text(data);
    let s = s.as_ref();
    let mut accepted = false;
    if let Ok(m) = parse_cpu(s) {
        assert_eq!(parse_cpu(&format_cpu(m)), Ok(m), "cpu {s:?}");
        accepted = true;
    }
    if let Ok(n) = parse_memory(s) {
        assert_eq!(parse_memory(&format_memory_exact(n)), Ok(n), "memory {s:?}");
        assert!(!format_memory(n).is_empty());
        accepted = true;
    }
    if let Ok(ms) = parse_duration_ms(s) {
        let d = Duration::from_millis(ms);
        assert_eq!(parse_duration(s), Ok(d));
        assert_eq!(parse_duration(&format_duration(d)), Ok(d), "duration {s:?} → {}", format_duration(d));
        accepted = true;
    }
    if let Ok(v) = parse_volume(s) {
        assert!(validate_name(&v.name).is_ok() && v.size_bytes > 0, "volume {s:?}");
        let again = format!("{}:{}", v.name, format_memory_exact(v.size_bytes));
        assert_eq!(parse_volume(&again), Ok(v), "volume {s:?}");
        accepted = true;
    }
    if let Ok((host, port)) = parse_broker_url(s) {
        assert!(!host.is_empty() && !host.contains('/'), "broker {s:?}");
        assert_eq!(parse_broker_url(&format!("mqtt://[{host}]:{port}")), Ok((host, port)), "broker {s:?}");
        accepted = true;
    }
    if validate_name(s).is_ok() {
        let label = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-';
        assert!(s.len() <= 63 && s.bytes().all(label) && !s.starts_with('-') && !s.ends_with('-'), "{s:?}");
        accepted = true;
    }
    if let Ok(ttl) = age::parse_ttl(s) {
        assert!(!ttl.is_zero());
        assert_eq!(age::parse_ttl(&age::format_ttl(ttl)), Ok(ttl), "ttl {s:?}");
        accepted = true;
    }
    if let Ok(every) = interval(s) {
        assert!(!every.is_zero() && every <= Duration::from_secs(3600), "interval {s:?}");
        accepted = true;
    }
    // Instants the controller sends, shown as ages: anything that is not RFC 3339 comes back as it was.
    let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let (since, until) = (age::since(s, now), age::until(s, now));
    assert!(!since.is_empty() || s.is_empty());
    assert!(!until.is_empty() || s.is_empty());
    accepted
}

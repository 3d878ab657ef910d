//! Lifecycle events as people read them: `Started`, `Exited with code 0`, `Back-off 2s before restarting`,
//! `Rejected: …`, each with kubectl's type (`Normal` or `Warning`) and the object it is about (`instance/ID`, or
//! `node/NAME` for a node-level event whose instance is empty). Pure: no I/O, no clock.
//!
//! The cluster keeps recent events as bounded rings of one-line strings (per node and per workload, see
//! `uplink.rs`); [`Record::line`] writes such a line and [`Record::parse`] reads it back, so the events API
//! (`api/events.rs`) can hand out structured events without a second store. The line is
//!
//! ```text
//! 2025-06-01T12:00:00.120Z #12 Warning instance/tick-x7k2p on dev-1: Exited with code 3
//! ```
//!
//! **Invariant:** a line holds no control characters and at most [`MAX_MESSAGE`] characters of message (remote
//! text is cleaned before it is stored), so every ring stays bounded and a line is always one line.

use edge_proto::{Event, EventKind};
use time::OffsetDateTime;

/// Most characters of a message kept (reasons come from agents).
pub const MAX_MESSAGE: usize = 300;

/// kubectl's event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Normal => "Normal",
            Severity::Warning => "Warning",
        }
    }

    fn parse(s: &str) -> Option<Severity> {
        match s {
            "Normal" => Some(Severity::Normal),
            "Warning" => Some(Severity::Warning),
            _ => None,
        }
    }
}

/// One event as shown: when (the agent's clock), its number on its node, its type, what it is about, the node
/// that reported it, and the sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub at_ms: u64,
    pub seq: u64,
    pub severity: Severity,
    /// `instance/ID` or `node/NAME`.
    pub object: String,
    pub node: String,
    pub message: String,
}

impl Record {
    /// The record of an event `node` reported.
    pub fn of(node: &str, e: &Event) -> Record {
        let (severity, message) = describe(&e.kind);
        let object = if e.instance.is_empty() {
            format!("node/{node}")
        } else {
            format!("instance/{}", clean(&e.instance, 128).replace(' ', "_"))
        };
        Record { at_ms: e.at_ms, seq: e.seq, severity, object, node: node.to_string(), message }
    }

    /// The instance it is about, if any.
    pub fn instance(&self) -> Option<&str> {
        self.object.strip_prefix("instance/")
    }

    /// The stored one-line form (see the module doc).
    pub fn line(&self) -> String {
        format!(
            "{} #{} {} {} on {}: {}",
            timestamp(self.at_ms),
            self.seq,
            self.severity.as_str(),
            self.object,
            self.node,
            self.message
        )
    }

    /// Reads back what [`Record::line`] wrote; `None` for anything else (a line of an older format).
    pub fn parse(line: &str) -> Option<Record> {
        let mut words = line.splitn(6, ' ');
        let at_ms = parse_timestamp(words.next()?)?;
        let seq = words.next()?.strip_prefix('#')?.parse().ok()?;
        let severity = Severity::parse(words.next()?)?;
        let object = words.next()?.to_string();
        if words.next()? != "on" {
            return None;
        }
        let (node, message) = words.next()?.split_once(": ")?;
        Some(Record { at_ms, seq, severity, object, node: node.to_string(), message: message.to_string() })
    }
}

/// The type and sentence of an event kind.
pub fn describe(kind: &EventKind) -> (Severity, String) {
    use Severity::{Normal, Warning};
    match kind {
        EventKind::Starting => (Normal, "Starting".into()),
        EventKind::Started { .. } => (Normal, "Started".into()),
        EventKind::Exited { code: 0 } => (Normal, "Exited with code 0".into()),
        EventKind::Exited { code } => (Warning, format!("Exited with code {code}")),
        EventKind::Trapped { reason } => (Warning, trapped(reason)),
        EventKind::Failed { reason } => (Warning, format!("Failed: {}", clean(reason, MAX_MESSAGE))),
        EventKind::BackOff { delay_ms } => (Warning, format!("Back-off {} before restarting", span(*delay_ms))),
        EventKind::Stopped => (Normal, "Stopped".into()),
        EventKind::Rejected { reason } => (Warning, format!("Rejected: {}", clean(reason, MAX_MESSAGE))),
    }
}

/// A trap the agent caused by enforcing a limit reads as kubectl's kill (`Killed: memory limit exceeded (limit
/// 16Mi)`), without the wasm trap it surfaced as (the instance's reason keeps the whole text); any other trap
/// is the guest's own.
fn trapped(reason: &str) -> String {
    if reason.starts_with("memory limit exceeded") || reason.starts_with("deadline exceeded") {
        let head = reason.split_once(": trapped:").map_or(reason, |(head, _)| head);
        return format!("Killed: {}", clean(head, MAX_MESSAGE));
    }
    format!("Trapped: {}", clean(reason, MAX_MESSAGE))
}

/// A back-off delay as the duration flags write it: `500ms`, `1.5s`, `2s`, `1m30s`.
fn span(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 && !ms.is_multiple_of(1000) {
        return format!("{:.1}s", ms as f64 / 1000.0);
    }
    let s = ms / 1000;
    match (s / 60, s % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

/// Remote text made safe for one line: control characters become spaces, at most `max` characters.
fn clean(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// The controller's timestamps, always three fractional digits (`2025-06-01T12:00:00.120Z`).
pub use crate::clock::rfc3339_ms as timestamp;

/// Reads a [`timestamp`] back.
fn parse_timestamp(s: &str) -> Option<u64> {
    let t = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(instance: &str, kind: EventKind) -> Event {
        Event { seq: 12, at_ms: 1_748_779_200_120, instance: instance.into(), restarts: 0, kind }
    }

    #[test]
    fn kinds_read_as_sentences() {
        let cases = [
            (EventKind::Starting, "Normal", "Starting"),
            (EventKind::Started { started_at_ms: 5 }, "Normal", "Started"),
            (EventKind::Exited { code: 0 }, "Normal", "Exited with code 0"),
            (EventKind::Exited { code: 3 }, "Warning", "Exited with code 3"),
            (
                EventKind::Trapped { reason: "wasm trap: out of bounds".into() },
                "Warning",
                "Trapped: wasm trap: out of bounds",
            ),
            (
                EventKind::Trapped {
                    reason: "memory limit exceeded (limit 16Mi): trapped: wasm trap: unreachable".into(),
                },
                "Warning",
                "Killed: memory limit exceeded (limit 16Mi)",
            ),
            (
                EventKind::Trapped { reason: "deadline exceeded: still running after its timeout of 2s".into() },
                "Warning",
                "Killed: deadline exceeded: still running after its timeout of 2s",
            ),
            (EventKind::Failed { reason: "module missing".into() }, "Warning", "Failed: module missing"),
            (EventKind::BackOff { delay_ms: 2000 }, "Warning", "Back-off 2s before restarting"),
            (EventKind::BackOff { delay_ms: 500 }, "Warning", "Back-off 500ms before restarting"),
            (EventKind::BackOff { delay_ms: 1500 }, "Warning", "Back-off 1.5s before restarting"),
            (EventKind::BackOff { delay_ms: 90_000 }, "Warning", "Back-off 1m30s before restarting"),
            (EventKind::BackOff { delay_ms: 300_000 }, "Warning", "Back-off 5m before restarting"),
            (EventKind::Stopped, "Normal", "Stopped"),
            (EventKind::Rejected { reason: "unsigned spec".into() }, "Warning", "Rejected: unsigned spec"),
        ];
        for (kind, severity, message) in cases {
            let (s, m) = describe(&kind);
            assert_eq!((s.as_str(), m.as_str()), (severity, message), "{kind:?}");
            assert!(!m.contains('{'), "{m}");
        }
    }

    #[test]
    fn a_line_reads_back() {
        let r = Record::of("dev-1", &event("tick-x7k2p", EventKind::Exited { code: 3 }));
        let line = r.line();
        assert_eq!(line, "2025-06-01T12:00:00.120Z #12 Warning instance/tick-x7k2p on dev-1: Exited with code 3");
        assert_eq!(Record::parse(&line), Some(r.clone()));
        assert_eq!(r.instance(), Some("tick-x7k2p"));
        // A message with ": " and spaces of its own survives.
        let r = Record::of("dev-1", &event("a", EventKind::Trapped { reason: "wasm trap: out of bounds".into() }));
        assert_eq!(Record::parse(&r.line()).unwrap().message, "Trapped: wasm trap: out of bounds");
        assert_eq!(Record::parse("2025-06-01T12:00:00Z #3 a Started {x}"), None, "an older line is not misread");
    }

    #[test]
    fn node_events_are_about_the_node() {
        let r = Record::of("pi-1", &event("", EventKind::Rejected { reason: "spec for another node".into() }));
        assert_eq!(r.object, "node/pi-1");
        assert_eq!(r.instance(), None);
        assert_eq!(r.line(), "2025-06-01T12:00:00.120Z #12 Warning node/pi-1 on pi-1: Rejected: spec for another node");
    }

    #[test]
    fn remote_text_stays_one_bounded_line() {
        let reason = format!("line one\nline two\r{}", "x".repeat(1_000));
        let r = Record::of("n", &event("i d\n", EventKind::Trapped { reason }));
        let line = r.line();
        assert_eq!(line.lines().count(), 1);
        assert!(line.chars().count() < MAX_MESSAGE + 100, "{}", line.len());
        assert!(line.contains("instance/i_d_ "), "{line}");
        assert_eq!(Record::parse(&line), Some(r));
    }

    #[test]
    fn timestamps_keep_three_digits() {
        assert_eq!(timestamp(1_748_779_200_000), "2025-06-01T12:00:00.000Z");
        assert_eq!(timestamp(1_748_779_200_100), "2025-06-01T12:00:00.100Z");
        assert_eq!(parse_timestamp("2025-06-01T12:00:00.100Z"), Some(1_748_779_200_100));
    }
}

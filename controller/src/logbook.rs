//! Recent log lines per workload, in memory, bounded: what `edgectl logs` reads.
//!
//! Each line gets a controller-wide sequence number; readers pass the last one they saw (`since`) to follow.
//! Lines beyond [`LINES_PER_WORKLOAD`] push out the oldest. Logs are not persisted: they are a window, not a record.

use std::collections::{HashMap, VecDeque};

use edge_proto::{LogLine, LogStream};

use crate::api::types::LogLineView;
use crate::clock::rfc3339_ms;

/// Lines kept per workload.
pub const LINES_PER_WORKLOAD: usize = 5_000;

#[derive(Debug, Clone)]
struct Stored {
    seq: u64,
    node: String,
    line: LogLine,
}

#[derive(Debug, Default)]
pub struct LogBook {
    next_seq: u64,
    by_workload: HashMap<String, VecDeque<Stored>>,
}

impl LogBook {
    pub fn push(&mut self, workload: &str, node: &str, line: LogLine) {
        self.next_seq += 1;
        let ring = self.by_workload.entry(workload.to_string()).or_default();
        if ring.len() == LINES_PER_WORKLOAD {
            ring.pop_front();
        }
        ring.push_back(Stored { seq: self.next_seq, node: node.to_string(), line });
    }

    /// Lines of `workload` with a sequence number above `since`, oldest first, at most `limit`.
    pub fn read(&self, workload: &str, since: u64, limit: usize) -> (Vec<LogLineView>, u64) {
        let Some(ring) = self.by_workload.get(workload) else { return (Vec::new(), since) };
        let start = ring.partition_point(|s| s.seq <= since);
        let lines: Vec<LogLineView> = ring
            .iter()
            .skip(start)
            .take(limit)
            .map(|s| LogLineView {
                seq: s.seq,
                instance: s.line.instance.clone(),
                node: s.node.clone(),
                stream: match s.line.stream {
                    LogStream::Stdout => "stdout".into(),
                    LogStream::Stderr => "stderr".into(),
                },
                at: rfc3339_ms(s.line.at_ms),
                line: s.line.line.clone(),
            })
            .collect();
        let next = lines.last().map_or(since, |l| l.seq);
        (lines, next)
    }

    pub fn forget(&mut self, workload: &str) {
        self.by_workload.remove(workload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> LogLine {
        LogLine { instance: "i".into(), stream: LogStream::Stdout, at_ms: 0, line: text.into() }
    }

    #[test]
    fn follows_with_a_cursor_and_stays_bounded() {
        let mut book = LogBook::default();
        book.push("ns/a", "n1", line("one"));
        book.push("ns/b", "n1", line("other"));
        book.push("ns/a", "n2", line("two"));
        let (lines, next) = book.read("ns/a", 0, 100);
        assert_eq!(lines.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(), ["one", "two"]);
        assert_eq!(book.read("ns/a", next, 100).0.len(), 0);
        for i in 0..LINES_PER_WORKLOAD + 10 {
            book.push("ns/a", "n1", line(&i.to_string()));
        }
        let (lines, _) = book.read("ns/a", 0, usize::MAX);
        assert_eq!(lines.len(), LINES_PER_WORKLOAD);
        assert_eq!(lines[0].line, "10");
        assert_eq!(book.read("ns/none", 7, 1), (vec![], 7));
    }
}

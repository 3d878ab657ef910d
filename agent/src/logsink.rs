//! Guest stdout/stderr: bytes are split into lines and forwarded as [`LogLine`]s through a bounded channel.
//!
//! **Invariants:** a guest can never make the agent buffer more than one partial line ([`MAX_LINE`]) per stream
//! plus the channel's capacity; when the channel is full, lines are dropped and counted, and the guest is not
//! slowed down or failed. Each instance's output is also rate-limited ([`OutputRate`]: [`LINES_PER_SEC`] lines
//! and [`BYTES_PER_SEC`] bytes a second, with bursts of twice that), so one flooding guest cannot crowd out the
//! others' lines or the broker; what it loses is counted, and a line saying how many were dropped precedes the
//! next line that gets through.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use edge_proto::{LogLine, LogStream};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line forwarded; longer output is cut into lines of this size.
pub const MAX_LINE: usize = 4096;

/// Sustained output allowed per instance (stdout and stderr together).
pub const LINES_PER_SEC: f64 = 100.0;
pub const BYTES_PER_SEC: f64 = 32.0 * 1024.0;

/// A token bucket over lines and bytes. Pure: the caller passes the time.
#[derive(Debug)]
pub struct OutputRate {
    lines: f64,
    bytes: f64,
    last: Instant,
    /// Lines refused since the last one admitted.
    pub suppressed: u64,
    /// Lines refused in total.
    pub dropped_total: u64,
}

impl OutputRate {
    pub fn new(now: Instant) -> OutputRate {
        OutputRate {
            lines: 2.0 * LINES_PER_SEC,
            bytes: 2.0 * BYTES_PER_SEC,
            last: now,
            suppressed: 0,
            dropped_total: 0,
        }
    }

    /// Whether a line of `len` bytes may pass at `now`. On `Some(n)`, `n` lines were refused just before it.
    pub fn admit(&mut self, now: Instant, len: usize) -> Option<u64> {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.lines = (self.lines + dt * LINES_PER_SEC).min(2.0 * LINES_PER_SEC);
        self.bytes = (self.bytes + dt * BYTES_PER_SEC).min(2.0 * BYTES_PER_SEC);
        let cost = len as f64 + 1.0;
        if self.lines >= 1.0 && self.bytes >= cost {
            self.lines -= 1.0;
            self.bytes -= cost;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            self.dropped_total += 1;
            None
        }
    }
}

/// Splits a byte stream into lines. Pure.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `emit` for every complete line (without its newline).
    pub fn feed(&mut self, mut bytes: &[u8], mut emit: impl FnMut(String)) {
        while !bytes.is_empty() {
            match bytes.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.push(&bytes[..i], &mut emit);
                    let line = std::mem::take(&mut self.partial);
                    emit(to_text(&line));
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.push(bytes, &mut emit);
                    bytes = &[];
                }
            }
        }
    }

    fn push(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(String)) {
        while self.partial.len() + bytes.len() > MAX_LINE {
            let take = MAX_LINE - self.partial.len();
            self.partial.extend_from_slice(&bytes[..take]);
            emit(to_text(&std::mem::take(&mut self.partial)));
            bytes = &bytes[take..];
        }
        self.partial.extend_from_slice(bytes);
    }

    /// Whatever is left without a newline (at exit).
    pub fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| to_text(&std::mem::take(&mut self.partial)))
    }
}

fn to_text(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    s.strip_suffix('\r').unwrap_or(&s).to_string()
}

/// One instance's stdout or stderr.
#[derive(Clone)]
pub struct LogSink {
    instance: Arc<str>,
    stream: LogStream,
    splitter: Arc<Mutex<LineSplitter>>,
    tx: mpsc::Sender<LogLine>,
    dropped: Arc<AtomicU64>,
    /// Shared by the instance's stdout and stderr.
    rate: Arc<Mutex<OutputRate>>,
}

impl LogSink {
    pub fn new(
        instance: &str,
        stream: LogStream,
        tx: mpsc::Sender<LogLine>,
        dropped: Arc<AtomicU64>,
        rate: Arc<Mutex<OutputRate>>,
    ) -> LogSink {
        LogSink { instance: instance.into(), stream, splitter: Arc::default(), tx, dropped, rate }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut splitter = self.splitter.lock().unwrap_or_else(|e| e.into_inner());
        splitter.feed(bytes, |line| self.send(line));
    }

    fn send(&self, line: String) {
        let admitted = self.rate.lock().unwrap_or_else(|e| e.into_inner()).admit(Instant::now(), line.len());
        match admitted {
            None => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Some(0) => {}
            Some(n) => {
                let note = format!("[edge-agent] {n} lines dropped by the output rate limit");
                self.forward(LogStream::Stderr, note);
            }
        }
        self.forward(self.stream, line);
    }

    fn forward(&self, stream: LogStream, line: String) {
        let line = LogLine { instance: self.instance.to_string(), stream, at_ms: crate::clock::now_ms(), line };
        if self.tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forwards a trailing partial line, if any.
    pub fn finish(&self) {
        let rest = self.splitter.lock().unwrap_or_else(|e| e.into_inner()).finish();
        if let Some(line) = rest {
            self.send(line);
        }
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogSink {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for LogSink {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl AsyncWrite for LogSink {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> (Vec<String>, Option<String>) {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |l| out.push(l));
        }
        (out, s.finish())
    }

    #[test]
    fn splits_lines_across_writes() {
        let (lines, rest) = split(&[b"tick 1\ntic", b"k 2\r\n\nhalf"]);
        assert_eq!(lines, ["tick 1", "tick 2", ""]);
        assert_eq!(rest.as_deref(), Some("half"));
    }

    #[test]
    fn cuts_overlong_lines() {
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        let (lines, rest) = split(&[&long]);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.len() == MAX_LINE));
        assert_eq!(rest.map(|r| r.len()), Some(5));
    }

    #[test]
    fn a_full_channel_drops_and_counts() {
        let (tx, mut rx) = mpsc::channel(2);
        let dropped = Arc::new(AtomicU64::new(0));
        let rate = Arc::new(Mutex::new(OutputRate::new(Instant::now())));
        let sink = LogSink::new("i", LogStream::Stdout, tx, dropped.clone(), rate);
        sink.write_bytes(b"a\nb\nc\nd\n");
        assert_eq!(rx.try_recv().unwrap().line, "a");
        assert_eq!(rx.try_recv().unwrap().line, "b");
        assert!(rx.try_recv().is_err());
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_flood_is_held_to_the_rate_and_the_loss_is_announced() {
        let t0 = Instant::now();
        let mut r = OutputRate::new(t0);
        // The burst: 200 short lines pass at once, then everything is refused.
        let passed = (0..1000).filter(|_| r.admit(t0, 10).is_some()).count();
        assert_eq!(passed, 200);
        assert_eq!(r.dropped_total, 800);
        // A second later about 100 more pass, the first of them reporting the 800 refused.
        let t1 = t0 + std::time::Duration::from_secs(1);
        assert_eq!(r.admit(t1, 10), Some(800));
        let more = 1 + (0..1000).filter(|_| r.admit(t1, 10).is_some()).count();
        assert_eq!(more, 100);
        // Bytes are bounded too: 4 KiB lines pass 16 at a burst (64 KiB), then wait.
        let mut r = OutputRate::new(t0);
        let big = (0..100).filter(|_| r.admit(t0, 4095).is_some()).count();
        assert_eq!(big, 16);
    }
}

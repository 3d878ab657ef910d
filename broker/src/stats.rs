//! Counters: lock-free, updated where the event happens, read as one [`Stats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the broker's counters. All are totals since bind except `connections_open`,
/// `sessions`, `retained` and `retained_bytes` (current values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// TCP connections accepted.
    pub connections_accepted: u64,
    /// TCP connections open now (including ones that have not sent CONNECT yet).
    pub connections_open: u64,
    /// Sessions held now (online and offline persistent, local links included).
    pub sessions: u64,
    /// Retained messages held now.
    pub retained: u64,
    /// Bytes (topics and payloads) of the retained messages held now, local links' included.
    pub retained_bytes: u64,
    /// CONNECTs refused (by the policy, a revocation, a takeover rule, a bound).
    pub connect_refused: u64,
    /// Live connections replaced by a new one with the same client id.
    pub takeovers: u64,
    /// Connections closed by `disconnect`/`revoke`.
    pub kicked: u64,
    /// PUBLISHes accepted from clients and local links.
    pub messages_in: u64,
    /// Messages handed to clients and local links (QoS 1 re-sends included).
    pub messages_out: u64,
    /// PUBLISHes dropped because the policy refused the topic.
    pub publish_refused: u64,
    /// SUBSCRIBE filters answered with 0x80 (policy, invalid filter, per-session bound).
    pub subscribe_refused: u64,
    /// Messages not queued because a session's queue was full (QoS 0 and 1, online and offline).
    pub dropped_queue_full: u64,
    /// Clients disconnected because their QoS 1 queue overflowed.
    pub slow_consumers_disconnected: u64,
    /// Retained messages not stored because of a bound (a budget, or too many topic levels).
    pub retained_refused: u64,
    /// Times a network connection stopped reading because it was over its inbound rate
    /// ([`crate::Config::inbound_bytes`], [`crate::Config::inbound_packets`]).
    pub inbound_throttled: u64,
    /// Connections closed for a malformed, oversize or out-of-order packet, or a missing CONNECT.
    pub protocol_errors: u64,
    /// TLS handshakes that failed or timed out (a TLS listener only): the socket is closed before any MQTT.
    pub tls_handshakes_failed: u64,
    /// Connections closed for keep-alive expiry (no packet for 1.5 × keep alive).
    pub keep_alive_expired: u64,
    /// Last Will messages published.
    pub wills_published: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub connections_accepted: AtomicU64,
    pub connections_open: AtomicU64,
    pub connect_refused: AtomicU64,
    pub takeovers: AtomicU64,
    pub kicked: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub publish_refused: AtomicU64,
    pub subscribe_refused: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub slow_consumers_disconnected: AtomicU64,
    pub retained_refused: AtomicU64,
    pub inbound_throttled: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub tls_handshakes_failed: AtomicU64,
    pub keep_alive_expired: AtomicU64,
    pub wills_published: AtomicU64,
}

/// Adds `n` to a counter. Relaxed: counters order nothing else.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn bump(counter: &AtomicU64) {
    add(counter, 1);
}

impl Counters {
    /// The counters, with the router's current sizes (`sessions`, `retained` messages and their bytes).
    pub(crate) fn snapshot(&self, sessions: usize, retained: usize, retained_bytes: usize) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            connections_accepted: get(&self.connections_accepted),
            connections_open: get(&self.connections_open),
            sessions: sessions as u64,
            retained: retained as u64,
            retained_bytes: retained_bytes as u64,
            connect_refused: get(&self.connect_refused),
            takeovers: get(&self.takeovers),
            kicked: get(&self.kicked),
            messages_in: get(&self.messages_in),
            messages_out: get(&self.messages_out),
            publish_refused: get(&self.publish_refused),
            subscribe_refused: get(&self.subscribe_refused),
            dropped_queue_full: get(&self.dropped_queue_full),
            slow_consumers_disconnected: get(&self.slow_consumers_disconnected),
            retained_refused: get(&self.retained_refused),
            inbound_throttled: get(&self.inbound_throttled),
            protocol_errors: get(&self.protocol_errors),
            tls_handshakes_failed: get(&self.tls_handshakes_failed),
            keep_alive_expired: get(&self.keep_alive_expired),
            wills_published: get(&self.wills_published),
        }
    }
}

//! Broker configuration: the listen address, every bound on what peers can make the broker hold, and the
//! takeover rule.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::retained::RetainedSink;

/// What happens when a CONNECT names a client id whose session is connected right now.
///
/// MQTT 3.1.1 says the new connection wins. With authenticated clients that lets anyone who can log in knock a
/// node off the broker by reusing its id, so the default only lets the *same* identity take over (a node
/// reconnecting over a half-open socket); another identity is refused with `NotAuthorized` and the live
/// connection is untouched. A local link's client id is never taken over by a network client (`BadClientId`).
///
/// The rule covers live connections. An offline persistent session whose identity differs from the new one's
/// is discarded, not resumed: its subscriptions and queued messages were granted to someone else. (Binding a
/// client id to an identity at all is the policy's job, in [`crate::Policy::connect`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Takeover {
    /// The new connection takes over only if its identity equals the live one's (the default).
    #[default]
    SameIdentity,
    /// Plain MQTT: the newest connection always wins.
    Always,
    /// The live connection always stays; the new one is refused.
    Never,
}

/// Broker settings. [`Config::new`] gives defaults sized for a controller with about 10,000 nodes.
#[derive(Clone)]
pub struct Config {
    /// Where to listen; port 0 picks a free port ([`crate::Broker::local_addr`] tells which).
    pub addr: SocketAddr,
    /// Largest packet accepted, counting from the variable header (the remaining length). A bigger packet
    /// closes its connection. Default 1 MiB (module chunks are about 64 KiB).
    pub max_packet_size: usize,
    /// Open TCP connections beyond this are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Sessions held (online, plus offline persistent ones). A CONNECT that needs a new session beyond this gets
    /// `ServiceUnavailable`.
    pub max_sessions: usize,
    /// Messages queued per session, waiting to be written (online) or for the client to return (offline
    /// persistent session). See the crate docs for what happens when it is full.
    pub max_queued_messages: usize,
    /// Bytes (topics and payloads) queued per session.
    pub max_queued_bytes: usize,
    /// QoS 1 messages sent to one client and not yet acknowledged; more wait in the queue. Clamped to 1..=4096.
    pub max_inflight: u16,
    /// Queue bound for local links ([`crate::BrokerHandle::local_client`]); they are never disconnected for
    /// being slow, so their overflow drops messages (counted) instead.
    pub max_local_queued_messages: usize,
    /// Subscriptions one session may hold; a filter beyond this gets 0x80.
    pub max_subscriptions_per_session: usize,
    /// Retained messages held, by count and by bytes (topics and payloads).
    pub max_retained_messages: usize,
    pub max_retained_bytes: usize,
    /// Time a new socket gets to send its CONNECT.
    pub connect_timeout: Duration,
    /// Who may take over a live client id.
    pub takeover: Takeover,
    /// Optional hook to persist retained messages.
    pub retained_sink: Option<Arc<dyn RetainedSink>>,
}

impl Config {
    pub fn new(addr: SocketAddr) -> Config {
        Config {
            addr,
            max_packet_size: 1024 * 1024,
            max_connections: 20_000,
            max_sessions: 50_000,
            max_queued_messages: 1_000,
            max_queued_bytes: 16 * 1024 * 1024,
            max_inflight: 64,
            max_local_queued_messages: 200_000,
            max_subscriptions_per_session: 256,
            max_retained_messages: 100_000,
            max_retained_bytes: 256 * 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            takeover: Takeover::default(),
            retained_sink: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("max_packet_size", &self.max_packet_size)
            .field("max_connections", &self.max_connections)
            .field("max_sessions", &self.max_sessions)
            .field("max_queued_messages", &self.max_queued_messages)
            .field("max_queued_bytes", &self.max_queued_bytes)
            .field("max_inflight", &self.max_inflight)
            .field("max_local_queued_messages", &self.max_local_queued_messages)
            .field("max_subscriptions_per_session", &self.max_subscriptions_per_session)
            .field("max_retained_messages", &self.max_retained_messages)
            .field("max_retained_bytes", &self.max_retained_bytes)
            .field("connect_timeout", &self.connect_timeout)
            .field("takeover", &self.takeover)
            .field("retained_sink", &self.retained_sink.as_ref().map(|_| "<sink>"))
            .finish()
    }
}

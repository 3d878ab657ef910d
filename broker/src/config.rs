//! Broker configuration: the listen address, every bound on what peers can make the broker hold, how fast a
//! connection may send, and the takeover rule.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::rate::Rate;
use crate::retained::{Caps, Limit, RetainedSink};

/// 1 MiB.
const MIB: usize = 1024 * 1024;

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
    /// Retained messages held for network clients, all of them together, by count and by bytes (topics and
    /// payloads). Default 100,000 and 64 MiB: ten times a 10,000-node fleet's retained `status` messages by
    /// count, and what the clients' share of the controller's memory may grow by at most.
    pub max_retained_messages: usize,
    pub max_retained_bytes: usize,
    /// Retained messages held for one network client: per principal when the policy named one (all its
    /// connections together), else per client id. Default 100 and 1 MiB: a node retains one `status` topic
    /// of a few bytes; room for one message of the largest packet the controller's broker accepts (576 KiB). A retain beyond a budget is refused (the
    /// message is still delivered, and QoS 1 acknowledged: MQTT 3.1.1 has no negative PUBACK), counted in
    /// [`crate::Stats::retained_refused`] and logged at most once per 10 s.
    pub max_retained_messages_per_client: usize,
    pub max_retained_bytes_per_client: usize,
    /// Retained messages held for local links (the embedding program), on a budget of their own outside the
    /// clients': no network client can use it up. Default unlimited: the controller retains one spec per node
    /// (10,000 nodes take 20 MiB at 2 KiB each, 5 GiB at the 512 KiB a spec may reach) and bounds that itself.
    pub max_local_retained_messages: usize,
    pub max_local_retained_bytes: usize,
    /// Bytes per second one network connection may send (whole packets, headers included), with a burst: past
    /// it the broker stops reading that socket until the rate allows the next packet (back-pressure; the
    /// client is not disconnected, and its keep-alive does not expire while it waits). `None`: no limit.
    /// Default 16 MiB/s with a 16 MiB burst: five times an agent's worst sustained output (100 instances at
    /// their 32 KiB/s log limit); the burst covers its worst reconnect (2,048 log lines of 4 KiB, then its
    /// re-sent events).
    pub inbound_bytes: Option<Rate>,
    /// Packets per second one network connection may send, with a burst; like [`Config::inbound_bytes`].
    /// Default 10,000/s with a burst of 10,000: the simulator's busiest connection (100 nodes offering 4,000
    /// heartbeats/s in the `control-plane` bench) passes, a flood of tiny packets is held to it.
    pub inbound_packets: Option<Rate>,
    /// Time a new socket gets to send its CONNECT.
    pub connect_timeout: Duration,
    /// Who may take over a live client id.
    pub takeover: Takeover,
    /// Optional hook to persist retained messages.
    pub retained_sink: Option<Arc<dyn RetainedSink>>,
    /// Speak MQTT over TLS on the listener (every socket, no plain fallback): the handshake must finish within
    /// `connect_timeout`, and counts against `max_connections` while it runs. `None`: plain TCP.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
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
            max_retained_bytes: 64 * MIB,
            max_retained_messages_per_client: 100,
            max_retained_bytes_per_client: MIB,
            max_local_retained_messages: usize::MAX,
            max_local_retained_bytes: usize::MAX,
            inbound_bytes: Some(Rate::new(16 * MIB as u64, 16 * MIB as u64)),
            inbound_packets: Some(Rate::new(10_000, 10_000)),
            connect_timeout: Duration::from_secs(10),
            takeover: Takeover::default(),
            retained_sink: None,
            tls: None,
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
            .field("max_retained_messages_per_client", &self.max_retained_messages_per_client)
            .field("max_retained_bytes_per_client", &self.max_retained_bytes_per_client)
            .field("max_local_retained_messages", &self.max_local_retained_messages)
            .field("max_local_retained_bytes", &self.max_local_retained_bytes)
            .field("inbound_bytes", &self.inbound_bytes)
            .field("inbound_packets", &self.inbound_packets)
            .field("connect_timeout", &self.connect_timeout)
            .field("takeover", &self.takeover)
            .field("retained_sink", &self.retained_sink.as_ref().map(|_| "<sink>"))
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Config {
    /// The retained store's budgets.
    pub(crate) fn retained_caps(&self) -> Caps {
        Caps {
            per_client: Limit {
                messages: self.max_retained_messages_per_client,
                bytes: self.max_retained_bytes_per_client,
            },
            clients: Limit { messages: self.max_retained_messages, bytes: self.max_retained_bytes },
            local: Limit { messages: self.max_local_retained_messages, bytes: self.max_local_retained_bytes },
        }
    }
}

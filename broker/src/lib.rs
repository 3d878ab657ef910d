//! `edge-broker`: a small embeddable MQTT 3.1.1 broker for the controller, built on the packet codec that
//! `rumqttc` already ships (`rumqttc::mqttbytes::v4`).
//!
//! It exists for what rumqttd 0.20 lacks: per-topic authorisation through a [`Policy`] the controller
//! implements, `TCP_NODELAY` on every accepted socket, subscription matching through a trie (work per publish
//! follows the topic's levels, not the number of subscriptions), bounds on everything a peer can make it hold,
//! and a takeover rule that stops one authenticated client from knocking another off by reusing its client id.
//!
//! # Layout
//! - [`broker`](Broker): bind, accept loop, [`BrokerHandle`] (disconnect, revoke, local links, stats,
//!   shutdown).
//! - `connection`: one task per socket — CONNECT handshake, then reads, writes, wake-ups and keep-alive in one
//!   `select!` loop.
//! - `router`: all shared state behind one lock — sessions, the subscription trie, the retained store; pure
//!   synchronous operations, unit-tested without sockets.
//! - `session`: per-client state and the bounded outbox with its QoS 1 in-flight window (pure).
//! - `trie`: the subscription trie (pure). `retained`: the retained store, also a trie, and [`RetainedSink`].
//! - `rate`: the inbound pace of a connection (token buckets on bytes and packets) and the sampler that
//!   rate-limits repeated warnings (pure).
//! - `topic`: name and filter validation (pure). [`policy`](Policy), [`config`](Config), [`stats`](Stats),
//!   [`local`](LocalSender): the public surface. `message`: [`Message`].
//!
//! # Semantics and choices
//! - **QoS**: 0 and 1. A QoS 2 PUBLISH gets its PUBREC/PUBREL/PUBCOMP handshake but is routed as QoS 1
//!   (at-least-once: a client's re-send before PUBREC can be delivered twice); QoS 2 subscriptions are granted
//!   QoS 1; a QoS 2 Last Will is stored as QoS 1. A subscriber whose filters overlap gets each message once, at
//!   the highest QoS its matching filters grant.
//! - **Authorisation** (see [`Policy`]): refused CONNECT → CONNACK with the 3.1.1 code, then close; a refused
//!   PUBLISH is dropped and counted, QoS 1 still acknowledged (3.1.1 has no negative PUBACK, and an
//!   unacknowledged client would re-send forever); a refused filter → 0x80 in the SUBACK. `$share/` filters
//!   are refused (no shared subscriptions). Local links bypass the policy.
//! - **Client id takeover**: decided by [`Takeover`] (default: only the same [`Identity`] may replace a live
//!   connection; others get `NotAuthorized`). A takeover publishes the old connection's Last Will before the
//!   new CONNACK.
//! - **Revocation**: [`BrokerHandle::disconnect`] closes a client now; [`BrokerHandle::revoke`] also drops its
//!   session and refuses its id until [`BrokerHandle::reinstate`].
//! - **Last Will**: published whenever a connection ends without a DISCONNECT packet — socket closed or
//!   failed, protocol error, keep-alive expiry (no packet for 1.5 × keep alive), takeover, `disconnect`/
//!   `revoke`, slow-consumer disconnect — but not on broker shutdown. Its topic must pass `may_publish` at
//!   CONNECT or the CONNECT is refused.
//! - **Slow consumers**: each session's queue is bounded by count and bytes ([`Config`]); at most
//!   `max_inflight` QoS 1 messages await PUBACK. When a queue is full: a QoS 0 message is dropped (counted); a
//!   QoS 1 message is dropped and its online network client disconnected (its will published); an offline
//!   persistent session drops it (counted). Retained messages sent for a new subscription beyond the queue's
//!   room are dropped without disconnecting. Local links drop, never disconnect.
//! - **Sessions**: clean sessions end with their connection. `clean_session = false` keeps subscriptions and
//!   queued QoS 1 messages (not QoS 0) while offline, within the same bounds, and re-sends unacknowledged
//!   messages with DUP and their original packet ids on resume; an offline session is resumed only by the same
//!   identity. Sessions live in memory only.
//! - **Retained**: in memory, keyed by a trie so a new subscription walks only matching branches;
//!   [`RetainedSink`] hears every change so the embedder can persist them (restore by publishing with
//!   `retain` through a local link). Each message is charged to its publisher: a network client has a budget
//!   of its own (per principal, else per client id) and all of them one together; local links have their own,
//!   unlimited by default, so no client can crowd out the controller's node specs. A retain over a budget is
//!   refused (the message is still delivered; QoS 1 is still acknowledged, since 3.1.1 has no negative
//!   PUBACK and this broker does not speak MQTT 5), the topic's older message removed, the refusal counted
//!   and logged at most once per 10 s. Clearing always works.
//! - **Inbound pace**: each network connection may send so many bytes and packets per second, with a burst
//!   ([`Config::inbound_bytes`], [`Config::inbound_packets`]). Past that the broker stops reading that
//!   socket until the buckets refill (back-pressure: the client slows down, nobody is disconnected, and
//!   every other connection is served meanwhile).
//! - **Bounds**: packets above `max_packet_size` close the connection (3.1.1 cannot say why); filters and
//!   retained topics have at most [`MAX_LEVELS`] levels; client ids at most 256 bytes; sessions, connections
//!   and subscriptions per session are capped; a socket has `connect_timeout` to send CONNECT.
//!
//! # Invariants
//! - Bad input never panics: the codec returns errors, every count on wire values is checked or saturating,
//!   and a malformed packet ends only its own connection.
//! - The router lock is never held across an await or a policy call; the policy never sees the lock.
//! - Work per PUBLISH is O(levels × wildcard branches on the path + matching subscribers); work per
//!   SUBSCRIBE is O(filter levels + matching retained messages, capped by the queue's room).
//! - No `process::exit`, no `unsafe`; shutdown closes the listener and every connection and waits for every
//!   task ([`Broker::shutdown`]).

mod broker;
mod config;
mod connection;
mod error;
mod local;
mod message;
mod policy;
mod rate;
mod retained;
mod router;
mod session;
mod stats;
mod topic;
mod trie;

pub use broker::{Broker, BrokerHandle};
pub use config::{Config, Takeover};
pub use error::{BindError, LocalError};
pub use local::{LocalReceiver, LocalSender};
pub use message::Message;
pub use policy::{AllowAll, Credentials, Identity, Policy, Refusal};
pub use rate::Rate;
pub use retained::RetainedSink;
pub use rumqttc::mqttbytes::QoS;
pub use stats::Stats;
pub use topic::MAX_LEVELS;

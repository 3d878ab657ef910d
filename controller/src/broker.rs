//! The embedded MQTT broker (`edge-broker`), the zero-setup default.
//!
//! It runs inside the controller on the controller's runtime, enforcing [`BrokerPolicy`]: anonymous clients
//! are refused (unless `--mqtt-allow-anonymous`), each node logs in as itself and touches only its own topics,
//! and a joining node only its join topics. The controller talks to it through an in-process link (no socket,
//! no policy: it is the authority). Retained messages live in memory, which is why the controller re-publishes
//! every node's spec whenever its link comes up (the broker holds nothing we depend on). Accepted sockets get
//! `TCP_NODELAY` (see BENCHMARKS.md for what Nagle's algorithm cost with rumqttd).
//!
//! Limits are the broker's defaults (SECURITY.md, "Broker limits"): each network client may retain 100
//! messages and 1 MiB, all of them together 64 MiB, and send 16 MiB/s and 10,000 packets/s before it is read
//! more slowly. The controller's own link is a local link, on a retained budget of its own that no client can
//! use up and that has no bound (one spec per node, at most `edge_proto::MAX_PAYLOAD` each).

use std::net::SocketAddr;
use std::sync::Arc;

use edge_broker::{Broker, Config};

use crate::registry::BrokerPolicy;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen for MQTT on {addr}")]
    Bind { addr: SocketAddr, source: edge_broker::BindError },
}

/// Starts the broker listening on `listen` (MQTT 3.1.1, over TLS with `tls`); it accepts connections when
/// this returns.
pub async fn start_embedded(
    listen: SocketAddr,
    policy: BrokerPolicy,
    tls: Option<Arc<edge_tls::rustls::ServerConfig>>,
) -> Result<Broker, BrokerError> {
    let mut config = Config::new(listen);
    config.tls = tls;
    // Room for module chunks inside the envelope, plus MQTT framing.
    config.max_packet_size = edge_proto::MAX_PAYLOAD + 64 * 1024;
    Broker::bind(config, policy).await.map_err(|source| BrokerError::Bind { addr: listen, source })
}

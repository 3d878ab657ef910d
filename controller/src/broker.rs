//! The embedded MQTT broker (`edge-broker`), the zero-setup default.
//!
//! It runs inside the controller on the controller's runtime, enforcing [`BrokerPolicy`]: anonymous clients
//! are refused (unless `--mqtt-allow-anonymous`), each node logs in as itself and touches only its own topics,
//! and a joining node only its join topics. The controller talks to it through an in-process link (no socket,
//! no policy: it is the authority). Retained messages live in memory, which is why the controller re-publishes
//! every node's spec whenever its link comes up (the broker holds nothing we depend on). Accepted sockets get
//! `TCP_NODELAY` (see BENCHMARKS.md for what Nagle's algorithm cost with rumqttd).

use std::net::SocketAddr;

use edge_broker::{Broker, Config};

use crate::registry::BrokerPolicy;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen for MQTT on {addr}")]
    Bind { addr: SocketAddr, source: edge_broker::BindError },
}

/// Starts the broker listening on `listen` (MQTT 3.1.1); it accepts connections when this returns.
pub async fn start_embedded(listen: SocketAddr, policy: BrokerPolicy) -> Result<Broker, BrokerError> {
    let mut config = Config::new(listen);
    // Room for module chunks inside the envelope, plus MQTT framing.
    config.max_packet_size = edge_proto::MAX_PAYLOAD + 64 * 1024;
    Broker::bind(config, policy).await.map_err(|source| BrokerError::Bind { addr: listen, source })
}

//! The embedded MQTT broker (rumqttd), the zero-setup default.
//!
//! rumqttd runs its router and listener on threads of its own and offers no way to stop them: the broker lives
//! until the process exits. Its retained messages live only in memory, which is why the controller re-publishes
//! every node's spec whenever its own connection comes up (the broker holds nothing we depend on).
//!
//! The controller talks to its embedded broker through rumqttd's in-process link, not a socket: rumqttd never
//! sets `TCP_NODELAY` on the sockets it accepts, and Nagle's algorithm on the broker's side of a controller
//! socket added about 40 ms to every agent → controller exchange (see BENCHMARKS.md).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen for MQTT on {addr}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the embedded MQTT broker did not start listening on {addr} within 5 s")]
    NotListening { addr: SocketAddr },
    #[error("cannot start the embedded MQTT broker: {0}")]
    Start(String),
}

/// Starts the broker listening on `listen` (MQTT 3.1.1) and returns once it accepts connections, with an
/// in-process link for the controller's own traffic.
pub fn start_embedded(listen: SocketAddr) -> Result<(LinkTx, LinkRx), BrokerError> {
    // rumqttd only logs a failed bind from its own thread; probe first to give the user a real error.
    drop(TcpListener::bind(listen).map_err(|source| BrokerError::Bind { addr: listen, source })?);
    let connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        // Room for module chunks inside the envelope, plus MQTT framing.
        max_payload_size: edge_proto::MAX_PAYLOAD + 64 * 1024,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings { name: "edge-v4".into(), listen, tls: None, next_connection_delay_ms: 0, connections };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 100_000,
            max_outgoing_packet_count: 1_000,
            // rumqttd keeps a log per subscription filter of up to size × count bytes. Heartbeats from a big
            // fleet fill the controller's filters to that cap: keep it small (a segment must still hold the
            // largest message, a module chunk).
            max_segment_size: 2 * 1024 * 1024,
            max_segment_count: 2,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("edge".to_string(), server)])),
        ..Default::default()
    };
    let mut broker = Broker::new(config);
    let link = broker.link("edge-controller").map_err(|e| BrokerError::Start(e.to_string()))?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| BrokerError::Start(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let probe = if listen.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), listen.port())
    } else {
        listen
    };
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&probe, Duration::from_millis(200)).is_ok() {
            return Ok(link);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(BrokerError::NotListening { addr: listen })
}

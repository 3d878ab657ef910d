//! The embedded MQTT broker (rumqttd), the zero-setup default.
//!
//! rumqttd runs its router and listener on threads of its own and offers no way to stop them: the broker lives
//! until the process exits. Its retained messages live only in memory, which is why the controller re-publishes
//! every node's spec whenever its own connection comes up (the broker holds nothing we depend on).
//!
//! The controller talks to its embedded broker through rumqttd's in-process links, not a socket: rumqttd never
//! sets `TCP_NODELAY` on the sockets it accepts, and Nagle's algorithm on the broker's side of a controller
//! socket added about 40 ms to every agent → controller exchange (see BENCHMARKS.md).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::protocol::v4::V4;
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen for MQTT on {addr}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the embedded MQTT broker did not start listening on {addr} within 5 s")]
    NotListening { addr: SocketAddr },
    #[error("cannot start the embedded MQTT broker: {0}")]
    Start(String),
}

/// A running embedded broker: it can hand out in-process links at any time (the controller takes a new one
/// whenever its link closes, for whatever reason).
pub struct EmbeddedBroker {
    new_link: Box<LinkFactory>,
}

/// Makes a link with a client id (the error is the reason, as text: rumqttd's is large).
type LinkFactory = dyn Fn(&str) -> Result<(LinkTx, LinkRx), String> + Send + Sync;

impl EmbeddedBroker {
    /// A new in-process link with client id `client_id`.
    pub fn link(&self, client_id: &str) -> Result<(LinkTx, LinkRx), BrokerError> {
        (self.new_link)(client_id).map_err(BrokerError::Start)
    }
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedBroker")
    }
}

/// Starts the broker listening on `listen` (MQTT 3.1.1) and returns once it accepts connections.
///
/// rumqttd's `Broker` can make links only before it is started (its `start` blocks, holding it), so the router
/// and the listener are assembled here from rumqttd's public parts instead, keeping the router's sender for
/// links made later.
pub fn start_embedded(listen: SocketAddr) -> Result<EmbeddedBroker, BrokerError> {
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
    let router = RouterConfig {
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
    };
    let router_tx = Router::new(0, router).spawn();
    let mut server = Server::new(server, router_tx.clone(), V4);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => return tracing::error!(error = %e, "embedded MQTT broker cannot start"),
            };
            if let Err(e) = runtime.block_on(server.start(LinkType::Remote)) {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| BrokerError::Start(e.to_string()))?;
    let broker = EmbeddedBroker {
        new_link: Box::new(move |id| {
            let link = LinkBuilder::new(id, router_tx.clone()).dynamic_filters(true).build();
            link.map(|(tx, rx, _ack)| (tx, rx)).map_err(|e| e.to_string())
        }),
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let probe = if listen.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), listen.port())
    } else {
        listen
    };
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&probe, Duration::from_millis(200)).is_ok() {
            return Ok(broker);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(BrokerError::NotListening { addr: listen })
}

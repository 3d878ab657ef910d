//! The connect options, written once: [`LinkOptions`] says what differs between clients (client id, broker,
//! inflight window, request queue, Last Will); [`connect`] applies everything that must not differ.

use std::time::Duration;

use std::sync::Arc;

use rumqttc::{AsyncClient, EventLoop, LastWill, MqttOptions, TlsConfiguration, Transport};

/// Room for MQTT framing (fixed header, topic, packet id) around the largest envelope.
pub const FRAMING: usize = 4096;
/// The largest MQTT packet sent or accepted: the largest payload plus its framing. A larger outgoing publish
/// would make rumqttc drop the connection, so publishers must refuse it first.
pub const MAX_PACKET: usize = edge_proto::MAX_PAYLOAD + FRAMING;
/// How long a TCP connect plus the MQTT handshake may take before the attempt counts as failed.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// QoS 1 publishes in flight before rumqttc waits for acknowledgements (rumqttc's own default).
pub const INFLIGHT: u16 = 100;
/// Requests (publishes, subscriptions) queued in the client before `try_publish` refuses and `publish` waits.
pub const CAPACITY: usize = 1024;

/// What one client's link looks like. Built with [`LinkOptions::new`] and the builder methods; the values
/// every client shares ([`edge_proto::timing::KEEP_ALIVE`], `TCP_NODELAY`, [`MAX_PACKET`]) are not options.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    client_id: String,
    host: String,
    port: u16,
    keep_alive: Duration,
    connection_timeout: Duration,
    inflight: u16,
    capacity: usize,
    last_will: Option<LastWill>,
    clean_session: bool,
    /// MQTT username and password; `None` connects anonymously.
    credentials: Option<Login>,
    /// MQTT over TLS, trusting what this config trusts (`edge_tls::client_config`: the cluster's key).
    pub(crate) tls: Option<Arc<edge_tls::rustls::ClientConfig>>,
}

/// A username and password; `Debug` never shows the password.
#[derive(Clone)]
struct Login {
    username: String,
    password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({:?}, <redacted>)", self.username)
    }
}

impl LinkOptions {
    /// A clean-session link for `client_id` to the broker at `host:port`, without a Last Will.
    pub fn new(client_id: impl Into<String>, host: impl Into<String>, port: u16) -> LinkOptions {
        LinkOptions {
            client_id: client_id.into(),
            host: host.into(),
            port,
            keep_alive: edge_proto::timing::KEEP_ALIVE,
            connection_timeout: CONNECTION_TIMEOUT,
            inflight: INFLIGHT,
            capacity: CAPACITY,
            last_will: None,
            clean_session: true,
            credentials: None,
            tls: None,
        }
    }

    /// Logs in with `username` and `password` (a broker that enforces identities refuses anonymous clients).
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> LinkOptions {
        self.credentials = Some(Login { username: username.into(), password: password.into() });
        self
    }

    /// The message the broker publishes for us when the connection is lost without a DISCONNECT.
    pub fn last_will(mut self, will: LastWill) -> LinkOptions {
        self.last_will = Some(will);
        self
    }

    /// QoS 1 publishes in flight at once (default [`INFLIGHT`]); at least 1.
    pub fn inflight(mut self, inflight: u16) -> LinkOptions {
        self.inflight = inflight.max(1);
        self
    }

    /// Capacity of the client's request queue (default [`CAPACITY`]); at least 1.
    pub fn capacity(mut self, capacity: usize) -> LinkOptions {
        self.capacity = capacity.max(1);
        self
    }

    /// How long one connection attempt may take (default [`CONNECTION_TIMEOUT`]); whole seconds, at least 1.
    pub fn connection_timeout(mut self, timeout: Duration) -> LinkOptions {
        self.connection_timeout = timeout.max(Duration::from_secs(1));
        self
    }

    /// Keep-alive interval (default [`edge_proto::timing::KEEP_ALIVE`]); at least 1 s. Tests shorten it.
    pub fn keep_alive(mut self, keep_alive: Duration) -> LinkOptions {
        self.keep_alive = keep_alive.max(Duration::from_secs(1));
        self
    }

    /// Whether the broker forgets our session on disconnect (default true: every subscription is made again
    /// on ConnAck, and what was queued while away is sent again by its owner).
    pub fn clean_session(mut self, clean: bool) -> LinkOptions {
        self.clean_session = clean;
        self
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The broker's host and port (also what [`crate::Reconnect`] probes).
    pub fn broker(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// MQTT over TLS to a server of the cluster whose key has this fingerprint, whatever its name or address.
    pub fn tls_pinned(mut self, fingerprint: [u8; 16]) -> Result<LinkOptions, edge_tls::TlsError> {
        self.tls = Some(edge_tls::client_config(fingerprint, &[])?);
        Ok(self)
    }

    /// The rumqttc options these stand for.
    pub fn mqtt_options(&self) -> MqttOptions {
        let mut options = MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
        options.set_keep_alive(self.keep_alive);
        options.set_clean_session(self.clean_session);
        options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        options.set_inflight(self.inflight);
        if let Some(will) = &self.last_will {
            options.set_last_will(will.clone());
        }
        if let Some(login) = &self.credentials {
            options.set_credentials(login.username.clone(), login.password.clone());
        }
        if let Some(tls) = &self.tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls.clone())));
        }
        options
    }
}

/// Opens the client and its event loop; nothing goes over the network until the event loop is polled.
pub fn connect(options: &LinkOptions) -> (AsyncClient, EventLoop) {
    let (client, mut eventloop) = AsyncClient::new(options.mqtt_options(), options.capacity);
    let mut net = eventloop.network_options();
    // Nagle on a connection that both publishes QoS 1 and receives costs ~44 ms per exchange.
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(options.connection_timeout.as_secs().max(1));
    eventloop.set_network_options(net);
    (client, eventloop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::QoS;

    #[test]
    fn defaults_are_the_shared_ones_and_builders_override_what_may_differ() {
        let o = LinkOptions::new("n1", "broker", 1883);
        let (_, eventloop) = connect(&o);
        let m = &eventloop.mqtt_options;
        assert_eq!(m.client_id(), "n1");
        assert_eq!(m.broker_address(), ("broker".to_string(), 1883));
        assert_eq!(m.keep_alive(), edge_proto::timing::KEEP_ALIVE);
        assert!(m.clean_session());
        assert_eq!(m.max_packet_size(), edge_proto::MAX_PAYLOAD + FRAMING);
        assert_eq!(m.inflight(), INFLIGHT);
        assert!(m.last_will().is_none());
        assert_eq!(eventloop.network_options().connection_timeout(), 5);

        let will = LastWill::new("edge/v1/nodes/n1/status", b"offline".to_vec(), QoS::AtLeastOnce, true);
        let o = o
            .last_will(will.clone())
            .inflight(0)
            .capacity(4096)
            .connection_timeout(Duration::from_millis(10))
            .keep_alive(Duration::from_secs(2))
            .clean_session(false);
        assert_eq!(o.broker(), ("broker", 1883));
        let (_, eventloop) = connect(&o);
        let m = &eventloop.mqtt_options;
        assert_eq!(m.last_will(), Some(will));
        assert_eq!(m.inflight(), 1, "an inflight window of 0 would never send");
        assert_eq!(m.keep_alive(), Duration::from_secs(2));
        assert!(!m.clean_session());
        assert_eq!(eventloop.network_options().connection_timeout(), 1);
    }
}

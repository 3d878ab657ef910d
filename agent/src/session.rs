//! The agent's MQTT session: outbound only (works behind NAT), with a Last Will that marks the node offline.
//!
//! On every ConnAck it resubscribes (rumqttc does not), publishes `online` (retained) and tells the core, which
//! re-announces the node and flushes queued events. Incoming payloads are decoded here; undecodable ones are
//! logged and dropped.
//!
//! Reconnecting: MQTT connection attempts back off with jitter from 1 s to 30 s ([`edge_proto::backoff`]), which
//! protects a broker that is up but refusing or dropping us. While the broker is plainly unreachable (its port
//! refuses or times out), the wait is cut short by a bare TCP probe about once a second, so a node is back
//! within a second or so of its broker's return instead of up to 30 s later.

use std::time::Duration;

use edge_proto::backoff::Backoff;
use edge_proto::{Channel, Message, NodeStatus, Topics};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use crate::core::Input;

pub fn connect(host: &str, port: u16, node: &str, topics: &Topics) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(node, host, port);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_clean_session(true);
    options.set_max_packet_size(edge_proto::MAX_PAYLOAD + 4096, edge_proto::MAX_PAYLOAD + 4096);
    options.set_last_will(LastWill::new(
        topics.node(node, Channel::Status),
        edge_proto::encode(&Message::Status(NodeStatus { online: false })),
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    // Nagle on a connection that both publishes QoS 1 and receives costs ~44 ms per exchange.
    let mut net = eventloop.network_options();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(5);
    eventloop.set_network_options(net);
    (client, eventloop)
}

pub async fn run(
    mut eventloop: EventLoop,
    client: AsyncClient,
    topics: Topics,
    node: String,
    broker: (String, u16),
    inputs: UnboundedSender<Input>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    let mut connected = false;
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                connected = true;
                tracing::info!("connected to the MQTT broker");
                for channel in Channel::DOWNLINK {
                    let _ = client.try_subscribe(topics.node(&node, channel), QoS::AtLeastOnce);
                }
                let online = edge_proto::encode(&Message::Status(NodeStatus { online: true }));
                let _ = client.try_publish(topics.node(&node, Channel::Status), QoS::AtLeastOnce, true, online);
                let _ = inputs.send(Input::Connected);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => match topics.parse(&p.topic) {
                Some((n, channel)) if n == node && Channel::DOWNLINK.contains(&channel) => {
                    match edge_proto::decode(&p.payload) {
                        Ok(envelope) => {
                            let _ = inputs.send(Input::Message(envelope.message));
                        }
                        Err(e) => tracing::warn!(topic = %p.topic, error = %e, "undecodable message ignored"),
                    }
                }
                _ => tracing::debug!(topic = %p.topic, "message on an unexpected topic ignored"),
            },
            Ok(_) => {}
            Err(e) => {
                if connected {
                    connected = false;
                    let _ = inputs.send(Input::Disconnected);
                }
                let wait = backoff.next_delay(rand::random());
                let probe = unreachable(&e);
                if probe {
                    tracing::warn!(error = %e, "broker unreachable; reconnecting as soon as it answers");
                } else {
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "MQTT connection failed");
                }
                tokio::select! {
                    _ = wait_or_reachable(&broker, wait, probe) => {}
                    _ = shutdown.wait_for(|s| *s) => break,
                }
            }
        }
    }
    let _ = client.try_disconnect();
}

/// True when the error says the broker could not be reached at all (nothing listening, no route, timeout),
/// as opposed to a broker that answered and refused or dropped us.
fn unreachable(e: &ConnectionError) -> bool {
    use std::io::ErrorKind::*;
    match e {
        ConnectionError::Io(io) => {
            matches!(io.kind(), ConnectionRefused | TimedOut | HostUnreachable | NetworkUnreachable | AddrNotAvailable)
        }
        ConnectionError::NetworkTimeout => true,
        _ => false,
    }
}

/// Waits `wait`; when `probe`, returns early once a TCP connection to the broker succeeds.
async fn wait_or_reachable(broker: &(String, u16), wait: Duration, probe: bool) {
    let deadline = tokio::time::Instant::now() + wait;
    if !probe {
        tokio::time::sleep_until(deadline).await;
        return;
    }
    loop {
        let step = Duration::from_millis(700 + rand::random::<u64>() % 600);
        let next = (tokio::time::Instant::now() + step).min(deadline);
        tokio::time::sleep_until(next).await;
        if next >= deadline {
            return;
        }
        let attempt = tokio::net::TcpStream::connect((broker.0.as_str(), broker.1));
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), attempt).await {
            return;
        }
    }
}

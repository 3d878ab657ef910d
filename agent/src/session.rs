//! The agent's MQTT session: outbound only (works behind NAT), with a Last Will that marks the node offline.
//!
//! On every ConnAck it resubscribes (rumqttc does not), publishes `online` (retained) and tells the core, which
//! re-announces the node and flushes queued events. Connection errors back off with jitter from 1 s to 30 s.
//! Incoming payloads are decoded here; undecodable ones are logged and dropped.

use std::time::Duration;

use edge_proto::{Channel, Message, NodeStatus, Topics};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
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
    inputs: UnboundedSender<Input>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut delay = Duration::from_secs(1);
    let mut connected = false;
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                delay = Duration::from_secs(1);
                connected = true;
                for channel in [Channel::Spec, Channel::ModuleChunk] {
                    let _ = client.try_subscribe(topics.node(&node, channel), QoS::AtLeastOnce);
                }
                let online = edge_proto::encode(&Message::Status(NodeStatus { online: true }));
                let _ = client.try_publish(topics.node(&node, Channel::Status), QoS::AtLeastOnce, true, online);
                let _ = inputs.send(Input::Connected);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => match topics.parse(&p.topic) {
                Some((n, Channel::Spec | Channel::ModuleChunk)) if n == node => match edge_proto::decode(&p.payload) {
                    Ok(envelope) => {
                        let _ = inputs.send(Input::Message(envelope.message));
                    }
                    Err(e) => tracing::warn!(topic = %p.topic, error = %e, "undecodable message ignored"),
                },
                _ => tracing::debug!(topic = %p.topic, "message on an unexpected topic ignored"),
            },
            Ok(_) => {}
            Err(e) => {
                if connected {
                    connected = false;
                    let _ = inputs.send(Input::Disconnected);
                }
                use rand::Rng;
                let ms = delay.as_millis() as u64;
                let wait = Duration::from_millis(rand::rng().random_range(ms / 2..=ms));
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "MQTT connection failed");
                delay = (delay * 2).min(Duration::from_secs(30));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.wait_for(|s| *s) => break,
                }
            }
        }
    }
    let _ = client.try_disconnect();
}

//! The agent's MQTT session: outbound only (works behind NAT), with a Last Will that marks the node offline. It
//! is the only task that writes to MQTT: the core and the log forwarder hand it [`Outgoing`] messages.
//!
//! One task, two halves polled together and never cancelled by each other (rumqttc's `poll` is not safe to
//! drop halfway):
//! - the event loop: polls the connection; on every ConnAck resubscribes (rumqttc does not), publishes
//!   `online` (retained) and tells the core, which re-announces the node and flushes queued events; decodes
//!   incoming payloads (undecodable ones are logged and dropped); on an error tells the core and waits as
//!   [`edge_link::Reconnect`] says (jittered back-off, cut short by a TCP probe while the broker is plainly
//!   unreachable) before the next poll reconnects;
//! - the publisher: takes the core's messages before the log forwarder's, encodes them and hands them to the
//!   client, waiting when its request queue is full. Only this half waits: the core's queue is bounded and the
//!   core never waits on it.

use edge_link::{LinkOptions, Reconnect, Waited};
use edge_proto::{Channel, Message, NodeStatus, Topics};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, Packet, QoS};
use tokio::sync::mpsc;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use crate::mail::{Input, Outgoing, Qos};

/// Messages queued from the core to the session; beyond it the core drops (and logs) what it sends.
pub const CORE_QUEUE: usize = 1024;
/// Log batches queued from the forwarder; beyond it the forwarder waits (and guests' lines are dropped and
/// counted upstream).
pub const LOG_QUEUE: usize = 16;

/// The agent's link: client id = node name, Last Will = `offline` on its status topic (retained, QoS 1). With
/// the `password` of a joined node it logs in as itself (username = node name); without, anonymously.
pub fn link_options(node: &str, host: &str, port: u16, topics: &Topics, password: Option<&str>) -> LinkOptions {
    let will = LastWill::new(
        topics.node(node, Channel::Status),
        edge_proto::encode(&Message::Status(NodeStatus { online: false })),
        QoS::AtLeastOnce,
        true,
    );
    let link = LinkOptions::new(node, host, port).last_will(will);
    // Without an identity the node still names itself (username = its name, no password): a broker that admits
    // unjoined nodes confines it to its own topics; an open broker ignores the username.
    link.credentials(node, password.unwrap_or(""))
}

/// The two queues into the session.
pub struct Mailboxes {
    /// From the core (hellos, heartbeats, events, module requests): served first.
    pub core: mpsc::Receiver<Outgoing>,
    /// From the log forwarder.
    pub logs: mpsc::Receiver<Outgoing>,
}

/// Runs the session until `shutdown` turns true (or its sender is dropped), or both queues close.
pub async fn run(
    link: LinkOptions,
    topics: Topics,
    inputs: UnboundedSender<Input>,
    mailboxes: Mailboxes,
    tagger: Option<crate::tagger::Tagger>,
    mut shutdown: watch::Receiver<bool>,
) {
    let node = link.client_id().to_string();
    let (client, eventloop) = edge_link::connect(&link);
    let reconnect = Reconnect::new(&link);
    let events = drive(eventloop, reconnect, &client, &topics, &node, &inputs, &mut shutdown);
    let publisher = publish(&client, &topics, &node, mailboxes, tagger);
    tokio::select! {
        _ = events => {}
        _ = publisher => {}
    }
    let _ = client.try_disconnect();
}

async fn drive(
    mut eventloop: EventLoop,
    mut reconnect: Reconnect,
    client: &AsyncClient,
    topics: &Topics,
    node: &str,
    inputs: &UnboundedSender<Input>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let mut connected = false;
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = edge_link::stopped(shutdown) => return,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                reconnect.connected();
                connected = true;
                tracing::info!("connected to the MQTT broker");
                for channel in Channel::DOWNLINK {
                    let _ = client.try_subscribe(topics.node(node, channel), QoS::AtLeastOnce);
                }
                let online = edge_proto::encode(&Message::Status(NodeStatus { online: true }));
                let _ = client.try_publish(topics.node(node, Channel::Status), QoS::AtLeastOnce, true, online);
                let _ = inputs.send(Input::Connected);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => match topics.parse(&p.topic) {
                Some((n, channel)) if n == node && Channel::DOWNLINK.contains(&channel) => {
                    match edge_proto::decode(&p.payload) {
                        Ok(envelope) => {
                            let _ = inputs.send(Input::Message(envelope.message, envelope.auth));
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
                if reconnect.wait(&e, shutdown).await == Waited::Shutdown {
                    return;
                }
            }
        }
    }
}

/// Encodes and publishes the queued messages; with a `tagger` (a joined node) each report carries its tag in
/// the envelope's `auth` (see [`crate::tagger`]: `status` is never tagged, nor anything of an unjoined node).
async fn publish(
    client: &AsyncClient,
    topics: &Topics,
    node: &str,
    mut mailboxes: Mailboxes,
    mut tagger: Option<crate::tagger::Tagger>,
) {
    loop {
        let out = tokio::select! {
            biased;
            Some(out) = mailboxes.core.recv() => out,
            Some(out) = mailboxes.logs.recv() => out,
            else => return,
        };
        let auth = tagger.as_mut().and_then(|t| t.auth(out.channel, &out.message));
        let payload = edge_proto::encode_with_auth(&out.message, auth.as_ref().map(|a| a.as_slice()));
        if payload.len() > edge_proto::MAX_PAYLOAD {
            // rumqttc would refuse the packet by closing the connection: drop the message instead.
            tracing::error!(
                channel = out.channel.as_str(),
                bytes = payload.len(),
                "message over the payload limit dropped"
            );
            continue;
        }
        let qos = match out.qos {
            Qos::AtMostOnce => QoS::AtMostOnce,
            Qos::AtLeastOnce => QoS::AtLeastOnce,
        };
        if client.publish(topics.node(node, out.channel), qos, out.retain, payload).await.is_err() {
            tracing::warn!("MQTT client closed; the session's publisher stops");
            return;
        }
    }
}

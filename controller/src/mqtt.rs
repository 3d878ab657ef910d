//! The controller's MQTT shell: one rumqttc connection (to the embedded broker or an external one).
//!
//! Two tasks: the event loop task polls the connection, subscribes to every node's uplink channels on each
//! ConnAck (rumqttc does not resubscribe by itself), re-publishes every spec (the broker may have lost its
//! retained messages), and hands incoming messages to the [`Cluster`]; the publisher task drains the
//! cluster's outgoing channel into the client. Reconnects back off with jitter from 1 s to 30 s.
//!
//! With the embedded broker, [`run_link`] does the same over rumqttd's in-process link (no socket, no reconnects).
//! Local links publish at QoS 0; specs stay retained, and every hello gets its node's spec again, so a spec lost
//! on an agent's broken connection is delivered again when it reconnects.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use edge_proto::{Channel, Topics};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{Packet as LinkPacket, Publish as LinkPublish};
use rumqttd::Notification;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

use crate::cluster::{Cluster, Publish};

/// Opens the client; nothing is sent until [`run_event_loop`] polls.
pub fn connect(host: &str, port: u16, client_id: &str) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_clean_session(true);
    options.set_max_packet_size(edge_proto::MAX_PAYLOAD + 4096, edge_proto::MAX_PAYLOAD + 4096);
    options.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 4096);
    // Nagle on a connection that both publishes QoS 1 and receives costs ~44 ms per exchange.
    let mut net = eventloop.network_options();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(5);
    eventloop.set_network_options(net);
    (client, eventloop)
}

pub async fn run_event_loop(
    mut eventloop: EventLoop,
    client: AsyncClient,
    topics: Topics,
    cluster: Arc<Mutex<Cluster>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                tracing::info!("connected to the MQTT broker");
                for channel in Channel::UPLINK {
                    if let Err(e) = client.try_subscribe(topics.all_nodes(channel), QoS::AtLeastOnce) {
                        tracing::error!(error = %e, "cannot queue a subscription");
                    }
                }
                lock(&cluster).republish_all();
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = p.topic.as_str();
                if let Some((node, channel)) = topics.parse(topic) {
                    lock(&cluster).on_uplink(node, channel, &p.payload);
                }
            }
            Ok(_) => {}
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "MQTT connection lost");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait_for(|s| *s) => break,
                }
            }
        }
    }
    let _ = client.try_disconnect();
}

pub async fn run_publisher(client: AsyncClient, mut outgoing: UnboundedReceiver<Publish>) {
    while let Some(p) = outgoing.recv().await {
        if let Err(e) = client.publish(p.topic, QoS::AtLeastOnce, p.retain, p.payload).await {
            tracing::warn!(error = %e, "MQTT client closed; stopping the publisher");
            return;
        }
    }
}

/// The controller's traffic over the embedded broker's in-process link, until shutdown.
pub async fn run_link(
    mut tx: LinkTx,
    mut rx: LinkRx,
    topics: Topics,
    cluster: Arc<Mutex<Cluster>>,
    mut outgoing: UnboundedReceiver<Publish>,
    mut shutdown: watch::Receiver<bool>,
) {
    for channel in Channel::UPLINK {
        if let Err(e) = tx.subscribe(topics.all_nodes(channel)) {
            tracing::error!(error = %e, "cannot subscribe on the embedded broker");
        }
    }
    lock(&cluster).republish_all();
    loop {
        tokio::select! {
            n = rx.next() => match n {
                Ok(Some(Notification::Forward(f))) => {
                    let Ok(topic) = std::str::from_utf8(&f.publish.topic) else { continue };
                    if let Some((node, channel)) = topics.parse(topic) {
                        lock(&cluster).on_uplink(node, channel, &f.publish.payload);
                    }
                }
                // The router pauses a link whose queue is full; ask for the rest.
                Ok(Some(Notification::Unschedule)) => {
                    if rx.wake().await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "the embedded broker's link closed");
                    break;
                }
            },
            p = outgoing.recv() => {
                let Some(p) = p else { break };
                let publish = LinkPublish::new(bytes::Bytes::from(p.topic), bytes::Bytes::from(p.payload), p.retain);
                if let Err(e) = tx.send(LinkPacket::Publish(publish, None)).await {
                    tracing::error!(error = %e, "cannot publish on the embedded broker");
                    break;
                }
            }
            // The guard `wait_for` returns must not live across the other branches' awaits (it is not Send).
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
        }
    }
}

fn lock(cluster: &Mutex<Cluster>) -> std::sync::MutexGuard<'_, Cluster> {
    // A panic while holding the lock would be a bug; keep serving with the state as it is rather than dying.
    cluster.lock().unwrap_or_else(|e| e.into_inner())
}

/// Jittered exponential back-off: 1 s doubling to 30 s, each delay drawn from [d/2, d].
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Duration::from_secs(1) }
    }
}

impl Backoff {
    pub const MAX: Duration = Duration::from_secs(30);

    pub fn reset(&mut self) {
        self.next = Duration::from_secs(1);
    }

    pub fn next_delay(&mut self) -> Duration {
        use rand::Rng;
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        let ms = d.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_thirty_seconds_with_jitter() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(500) && delays[0] <= Duration::from_secs(1));
        assert!(delays[7] >= Duration::from_secs(15) && delays[7] <= Backoff::MAX);
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }
}

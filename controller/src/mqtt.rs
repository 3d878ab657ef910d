//! The controller's MQTT shell: one rumqttc connection (to the embedded broker or an external one).
//!
//! Two tasks: the event loop task polls the connection, subscribes to every node's uplink channels on each
//! ConnAck (rumqttc does not resubscribe by itself), re-publishes every spec (the broker may have lost its
//! retained messages), and hands incoming messages to the [`Cluster`]; the publisher task drains the
//! cluster's outgoing channel into the client. Reconnects back off with jitter from 1 s to 30 s; while the
//! broker's port is plainly unreachable a bare TCP probe about once a second cuts the wait short (as agents do,
//! see `edge_agent::session`), so the controller is back within a second or so of its broker.
//!
//! With the embedded broker, [`run_link`] does the same over rumqttd's in-process link (no socket). Local links
//! publish at QoS 0; specs stay retained, and every hello gets its node's spec again, so a spec lost on an
//! agent's broken connection is delivered again when it reconnects. A link that closes (for any reason: the
//! router dropped it, a client took over its id) is replaced by a new one with a fresh random client id.
//!
//! Both report the link's state on a watch channel (`/healthz` answers 503 while it is down), and hand
//! incoming messages to the cluster's owner, awaiting room in its queue (backpressure, never a blocked thread).

use std::sync::Arc;
use std::time::Duration;

use edge_proto::backoff::Backoff;
use edge_proto::{Channel, Topics};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS};
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{Packet as LinkPacket, Publish as LinkPublish};
use rumqttd::Notification;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

use crate::broker::EmbeddedBroker;
use crate::cluster::Publish;
use crate::owner::ClusterHandle;

/// Whether the controller has its broker link, and if not, why.
pub type LinkState = watch::Sender<Result<(), String>>;

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
    broker: (String, u16),
    cluster: ClusterHandle,
    link: LinkState,
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
                let _ = link.send(Ok(()));
                let _ = cluster.call(|c| c.republish_all()).await;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = p.topic.as_str();
                if let Some((node, channel)) = topics.parse(topic) {
                    if cluster.uplink(node, channel, p.payload.clone()).await.is_err() {
                        break;
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                let _ = link.send(Err(e.to_string()));
                let delay = backoff.next_delay(rand::random());
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "MQTT connection lost");
                let deadline = tokio::time::Instant::now() + delay;
                let unreachable = matches!(&e, ConnectionError::Io(_) | ConnectionError::NetworkTimeout);
                loop {
                    let step = tokio::time::Instant::now() + Duration::from_millis(700 + rand::random::<u64>() % 600);
                    tokio::select! {
                        _ = tokio::time::sleep_until(step.min(deadline)) => {}
                        _ = shutdown.wait_for(|s| *s) => return,
                    }
                    let probe = tokio::net::TcpStream::connect((broker.0.as_str(), broker.1));
                    let reachable =
                        unreachable && matches!(tokio::time::timeout(Duration::from_secs(1), probe).await, Ok(Ok(_)));
                    if reachable || tokio::time::Instant::now() >= deadline {
                        break;
                    }
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

/// The controller's traffic over the embedded broker's in-process links, until shutdown: a link that closes is
/// replaced (after a short pause), re-subscribed, and every spec re-published.
pub async fn run_link(
    broker: Arc<EmbeddedBroker>,
    topics: Topics,
    cluster: ClusterHandle,
    mut outgoing: UnboundedReceiver<Publish>,
    link: LinkState,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    loop {
        // A fresh, unguessable client id every time: a client that connects with the id of a link closes it.
        let id = format!("edge-controller-{:032x}", rand::random::<u128>());
        match broker.link(&id) {
            Ok((tx, rx)) => match serve_link(tx, rx, &topics, &cluster, &mut outgoing, &link, &mut shutdown).await {
                LinkEnd::Shutdown => return,
                LinkEnd::Lost(why) => {
                    tracing::error!(reason = %why, "the embedded broker's link closed; opening a new one");
                    let _ = link.send(Err(why));
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot open a link to the embedded broker");
                let _ = link.send(Err(e.to_string()));
            }
        }
        // Short: the broker is in this process, a new link is normally granted at once.
        let delay = backoff.next_delay(rand::random()).min(Duration::from_secs(2));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

enum LinkEnd {
    Shutdown,
    Lost(String),
}

async fn serve_link(
    mut tx: LinkTx,
    mut rx: LinkRx,
    topics: &Topics,
    cluster: &ClusterHandle,
    outgoing: &mut UnboundedReceiver<Publish>,
    link: &LinkState,
    shutdown: &mut watch::Receiver<bool>,
) -> LinkEnd {
    for channel in Channel::UPLINK {
        if let Err(e) = tx.subscribe(topics.all_nodes(channel)) {
            return LinkEnd::Lost(format!("cannot subscribe on the embedded broker: {e}"));
        }
    }
    let _ = link.send(Ok(()));
    if cluster.call(|c| c.republish_all()).await.is_err() {
        return LinkEnd::Shutdown;
    }
    loop {
        tokio::select! {
            n = rx.next() => match n {
                Ok(Some(Notification::Forward(f))) => {
                    let Ok(topic) = std::str::from_utf8(&f.publish.topic) else { continue };
                    if let Some((node, channel)) = topics.parse(topic) {
                        if cluster.uplink(node, channel, f.publish.payload.clone()).await.is_err() {
                            return LinkEnd::Shutdown;
                        }
                    }
                }
                // The router pauses a link whose queue is full; ask for the rest.
                Ok(Some(Notification::Unschedule)) => {
                    if let Err(e) = rx.wake().await {
                        return LinkEnd::Lost(e.to_string());
                    }
                }
                Ok(Some(Notification::Disconnect(..))) => return LinkEnd::Lost("disconnected by the broker".into()),
                Ok(_) => {}
                Err(e) => return LinkEnd::Lost(e.to_string()),
            },
            p = outgoing.recv() => {
                let Some(p) = p else { return LinkEnd::Shutdown };
                let publish = LinkPublish::new(bytes::Bytes::from(p.topic), bytes::Bytes::from(p.payload), p.retain);
                if let Err(e) = tx.send(LinkPacket::Publish(publish, None)).await {
                    return LinkEnd::Lost(format!("cannot publish on the embedded broker: {e}"));
                }
            }
            // The guard `wait_for` returns must not live across the other branches' awaits (it is not Send).
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return LinkEnd::Shutdown,
        }
    }
}

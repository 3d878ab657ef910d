//! The controller's MQTT shell: one connection, to the embedded broker or an external one.
//!
//! External broker ([`run_event_loop`]): the connection, its options and its reconnect pacing are `edge-link`'s,
//! the same as every agent's (jittered back-off 1 s → 30 s, cut short by a TCP probe while the port is plainly
//! unreachable). On each ConnAck it subscribes to every node's uplink channels (rumqttc does not resubscribe by
//! itself) and re-publishes every spec (the broker may have lost its retained messages); a publisher task
//! drains the cluster's outgoing channel into the client.
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

use edge_link::rumqttc::{Event, Packet, QoS};
use edge_link::{LinkOptions, Reconnect, Waited};
use edge_proto::backoff::Backoff;
use edge_proto::{Channel, Topics};
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

/// The options of the controller's connection to an external broker: those every client of ours uses
/// (`edge-link`: `TCP_NODELAY`, keep-alive, packet size), with a deep request queue and inflight window.
pub fn options(host: &str, port: u16, client_id: &str) -> LinkOptions {
    LinkOptions::new(client_id, host, port).inflight(1000).capacity(4096)
}

pub async fn run_event_loop(
    options: LinkOptions,
    topics: Topics,
    cluster: ClusterHandle,
    link: LinkState,
    mut outgoing: UnboundedReceiver<Publish>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (client, mut eventloop) = edge_link::connect(&options);
    let mut reconnect = Reconnect::new(&options);
    let publisher = tokio::spawn({
        let client = client.clone();
        async move {
            while let Some(p) = outgoing.recv().await {
                if let Err(e) = client.publish(p.topic, QoS::AtLeastOnce, p.retain, p.payload).await {
                    tracing::warn!(error = %e, "MQTT client closed; stopping the publisher");
                    return;
                }
            }
        }
    });
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = edge_link::stopped(&mut shutdown) => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                reconnect.connected();
                tracing::info!("connected to the MQTT broker");
                // rumqttc does not resubscribe by itself.
                for channel in Channel::UPLINK {
                    if let Err(e) = client.try_subscribe(topics.all_nodes(channel), QoS::AtLeastOnce) {
                        tracing::error!(error = %e, "cannot queue a subscription");
                    }
                }
                let _ = link.send(Ok(()));
                let _ = cluster.call(|c| c.republish_all()).await;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if let Some((node, channel)) = topics.parse(p.topic.as_str()) {
                    if cluster.uplink(node, channel, p.payload.clone()).await.is_err() {
                        break;
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "MQTT connection lost");
                let _ = link.send(Err(e.to_string()));
                if reconnect.wait(&e, &mut shutdown).await == Waited::Shutdown {
                    break;
                }
            }
        }
    }
    let _ = client.try_disconnect();
    publisher.abort();
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

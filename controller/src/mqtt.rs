//! The controller's MQTT shell: one connection, to the embedded broker or an external one.
//!
//! External broker ([`run_event_loop`]): the connection, its options and its reconnect pacing are `edge-link`'s,
//! the same as every agent's (jittered back-off 1 s → 30 s, cut short by a TCP probe while the port is plainly
//! unreachable). On each ConnAck it subscribes to every node's uplink channels (rumqttc does not resubscribe by
//! itself) and re-publishes every spec (the broker may have lost its retained messages); a publisher task
//! drains the cluster's outgoing channel into the client.
//!
//! With the embedded broker, [`run_link`] does the same over `edge-broker`'s in-process link (no socket, no
//! policy). Specs stay retained, and every hello gets its node's spec again, so a spec lost on an agent's
//! broken connection is delivered again when it reconnects. A link that closes is replaced by a new one with a
//! fresh random client id. Join requests (`{p}/join/+/request`) go to the cluster's owner like uplink messages.
//!
//! Both report the link's state on a watch channel (`/healthz` answers 503 while it is down), and hand
//! incoming messages to the cluster's owner, awaiting room in its queue (backpressure, never a blocked thread).

use std::time::Duration;

use edge_broker::{BrokerHandle, LocalReceiver, LocalSender};
use edge_link::rumqttc::{Event, Packet, QoS};
use edge_link::{LinkOptions, Reconnect, Waited};
use edge_proto::backoff::Backoff;
use edge_proto::join;
use edge_proto::{Channel, Topics};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

use crate::cluster::Publish;
use crate::owner::{ClusterHandle, Gone};

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
                for filter in uplink_filters(&topics) {
                    if let Err(e) = client.try_subscribe(filter, QoS::AtLeastOnce) {
                        tracing::error!(error = %e, "cannot queue a subscription");
                    }
                }
                let _ = link.send(Ok(()));
                let _ = cluster.call(|c| c.republish_all()).await;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if route(&topics, &cluster, p.topic.as_str(), p.payload.clone()).await.is_err() {
                    break;
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

/// The controller's traffic over the embedded broker's in-process link, until shutdown: a link that closes is
/// replaced (after a short pause), re-subscribed, and every spec re-published.
pub async fn run_link(
    broker: BrokerHandle,
    topics: Topics,
    cluster: ClusterHandle,
    mut outgoing: UnboundedReceiver<Publish>,
    link: LinkState,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    loop {
        // A fresh, unguessable client id every time (no network client may take over a local link's id anyway).
        let id = format!("edge-controller-{:032x}", rand::random::<u128>());
        match broker.local_client(&id) {
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
    tx: LocalSender,
    mut rx: LocalReceiver,
    topics: &Topics,
    cluster: &ClusterHandle,
    outgoing: &mut UnboundedReceiver<Publish>,
    link: &LinkState,
    shutdown: &mut watch::Receiver<bool>,
) -> LinkEnd {
    for filter in uplink_filters(topics) {
        if let Err(e) = tx.subscribe(&filter, QoS::AtLeastOnce) {
            return LinkEnd::Lost(format!("cannot subscribe on the embedded broker: {e}"));
        }
    }
    let _ = link.send(Ok(()));
    if cluster.call(|c| c.republish_all()).await.is_err() {
        return LinkEnd::Shutdown;
    }
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) => {
                    if route(topics, cluster, &m.topic, m.payload).await.is_err() {
                        return LinkEnd::Shutdown;
                    }
                }
                None => return LinkEnd::Lost("the embedded broker closed the link".into()),
            },
            p = outgoing.recv() => {
                let Some(p) = p else { return LinkEnd::Shutdown };
                if let Err(e) = tx.publish(&p.topic, p.payload, QoS::AtLeastOnce, p.retain) {
                    return LinkEnd::Lost(format!("cannot publish on the embedded broker: {e}"));
                }
            }
            // The guard `wait_for` returns must not live across the other branches' awaits (it is not Send).
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return LinkEnd::Shutdown,
        }
    }
}

/// Every filter the controller subscribes to: each uplink channel of every node, and every join request.
pub fn uplink_filters(topics: &Topics) -> Vec<String> {
    let mut filters: Vec<String> = Channel::UPLINK.iter().map(|c| topics.all_nodes(*c)).collect();
    filters.push(join::all_requests(topics.prefix()));
    filters
}

/// Hands one incoming message to the cluster's owner; `Err` once the owner is gone.
async fn route(topics: &Topics, cluster: &ClusterHandle, topic: &str, payload: bytes::Bytes) -> Result<(), Gone> {
    if let Some((node, channel)) = topics.parse(topic) {
        return cluster.uplink(node, channel, payload).await;
    }
    if let Some((id, "request")) = join::parse_topic(topics.prefix(), topic) {
        let id = id.to_string();
        return cluster.call(move |c| c.on_join(&id, &payload)).await;
    }
    Ok(())
}

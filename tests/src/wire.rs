//! A test-side MQTT peer speaking the controller's half of the protocol for one node: it publishes specs,
//! serves module chunks from bytes it was given, and collects the node's heartbeats. For tests that drive an
//! agent with exact specs (e.g. crash-during-apply trials), over a real broker.

use std::collections::HashMap;
use std::time::Duration;

use edge_proto::{Channel, Heartbeat, Message, ModuleChunk, ModuleReply, NodeSpec, Sha256, Topics};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;

pub struct Peer {
    client: AsyncClient,
    topics: Topics,
    node: String,
    heartbeats: watch::Receiver<Option<Heartbeat>>,
    task: tokio::task::JoinHandle<()>,
}

impl Peer {
    /// Connects to the broker at `127.0.0.1:port` and waits until subscribed.
    pub async fn connect(port: u16, node: &str, modules: HashMap<Sha256, Vec<u8>>) -> Peer {
        let topics = Topics::default();
        let mut options = MqttOptions::new(format!("peer-{node}-{}", std::process::id()), "127.0.0.1", port);
        options.set_max_packet_size(edge_proto::MAX_PAYLOAD + 4096, edge_proto::MAX_PAYLOAD + 4096);
        let (client, mut eventloop) = AsyncClient::new(options, 256);
        let (hb_tx, heartbeats) = watch::channel(None);
        let (ready_tx, mut ready) = watch::channel(false);
        let (c, t, n) = (client.clone(), topics.clone(), node.to_string());
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for ch in [Channel::Heartbeat, Channel::ModuleRequest] {
                            let _ = c.subscribe(t.node(&n, ch), QoS::AtLeastOnce).await;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        ready_tx.send_replace(true);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let Ok(env) = edge_proto::decode(&p.payload) else { continue };
                        match env.message {
                            Message::Heartbeat(h) => {
                                hb_tx.send_replace(Some(h));
                            }
                            Message::ModuleRequest(r) => {
                                let reply = match modules.get(&r.module) {
                                    Some(b) => {
                                        let start = (r.offset as usize).min(b.len());
                                        let end = (start + r.max_len as usize).min(b.len());
                                        ModuleReply::Chunk(ModuleChunk {
                                            module: r.module,
                                            offset: start as u64,
                                            total: b.len() as u64,
                                            data: b[start..end].to_vec(),
                                        })
                                    }
                                    None => ModuleReply::NotFound { module: r.module },
                                };
                                let payload = edge_proto::encode(&Message::ModuleReply(reply));
                                let _ =
                                    c.publish(t.node(&n, Channel::ModuleChunk), QoS::AtLeastOnce, false, payload).await;
                            }
                            _ => {}
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|r| *r))
            .await
            .expect("test peer subscribed within 10 s")
            .expect("peer task alive");
        Peer { client, topics, node: node.to_string(), heartbeats, task }
    }

    /// Publishes `spec` to the node (retained or not).
    pub async fn publish_spec(&self, spec: &NodeSpec, retain: bool) {
        let payload = edge_proto::encode(&Message::Spec(spec.clone()));
        self.client
            .publish(self.topics.node(&self.node, Channel::Spec), QoS::AtLeastOnce, retain, payload)
            .await
            .expect("publish spec");
    }

    /// Waits for a heartbeat satisfying `pred`; panics after `timeout` with the last one seen.
    pub async fn heartbeat_where(&mut self, timeout: Duration, pred: impl Fn(&Heartbeat) -> bool) -> Heartbeat {
        let found = tokio::time::timeout(timeout, self.heartbeats.wait_for(|h| h.as_ref().is_some_and(&pred)))
            .await
            .map(|r| r.map(|h| h.clone()));
        match found {
            Ok(Ok(Some(h))) => h,
            _ => panic!("no matching heartbeat within {timeout:?}; last: {:?}", self.heartbeats.borrow()),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

//! A test-side MQTT peer speaking the controller's half of the protocol for one node: it publishes specs,
//! serves modules (precompiled for the profile the agent asks for, like the controller) and collects the
//! node's heartbeats and events. For tests that drive an agent with exact specs (e.g. crash-during-apply
//! trials) or with deliberately bad artifacts ([`Serve`]), over a real broker.
//!
//! It speaks protocol 4 by default, or protocol 3 ([`Peer::speak`]): everything it publishes is written with
//! `edge_proto::encode_for` for that version, and it records the version of every message it receives
//! ([`Peer::versions_seen`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edge_proto::{
    Channel, EngineProfile, EngineTarget, Event, Heartbeat, Message, ModuleChunk, ModuleReply, NodeSpec, Sha256, Topics,
};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use tokio::sync::watch;

/// The issuer id of every spec a test peer publishes (a controller's store would pick a random one).
pub const PEER_ISSUER: u64 = 0x7e57;

/// How the peer answers artifact requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serve {
    /// Like the controller.
    Honest,
    /// Announces a hash that does not match the bytes.
    WrongHash,
    /// Sends the first half of the artifact as if it were whole (its announced hash matches the half).
    Truncated,
    /// Sends code compiled for another target, labelled as the agent's own profile.
    WrongTarget,
    /// Labels the chunks with another profile than the one asked for.
    OtherProfile,
}

pub struct Peer {
    client: AsyncClient,
    topics: Topics,
    node: String,
    heartbeats: watch::Receiver<Option<Heartbeat>>,
    events: watch::Receiver<Vec<Event>>,
    /// The protocol version the peer writes in.
    version: Arc<AtomicU16>,
    /// Versions of the envelopes received.
    seen: Arc<Mutex<BTreeSet<u16>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Peer {
    /// Connects to the broker at `127.0.0.1:port` and waits until subscribed.
    pub async fn connect(port: u16, node: &str, modules: HashMap<Sha256, Vec<u8>>) -> Peer {
        Peer::connect_serving(port, node, modules, Serve::Honest).await
    }

    /// [`Peer::connect`], answering artifact requests as `serve` says.
    pub async fn connect_serving(port: u16, node: &str, modules: HashMap<Sha256, Vec<u8>>, serve: Serve) -> Peer {
        let compiler = edge_engine::Compiler::new();
        let mut artifacts: HashMap<(Sha256, EngineProfile), Vec<u8>> = HashMap::new();
        let topics = Topics::default();
        let mut options = MqttOptions::new(format!("peer-{node}-{}", std::process::id()), "127.0.0.1", port);
        options.set_max_packet_size(edge_proto::MAX_PAYLOAD + 4096, edge_proto::MAX_PAYLOAD + 4096);
        let (client, mut eventloop) = AsyncClient::new(options, 256);
        let (hb_tx, heartbeats) = watch::channel(None);
        let (ev_tx, events) = watch::channel(Vec::new());
        let (ready_tx, mut ready) = watch::channel(false);
        let (c, t, n) = (client.clone(), topics.clone(), node.to_string());
        let version = Arc::new(AtomicU16::new(edge_proto::PROTOCOL_VERSION));
        let seen: Arc<Mutex<BTreeSet<u16>>> = Arc::default();
        let (v, seen_by_task) = (version.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        for ch in [Channel::Heartbeat, Channel::ModuleRequest, Channel::Events] {
                            let _ = c.subscribe(t.node(&n, ch), QoS::AtLeastOnce).await;
                        }
                    }
                    Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                        ready_tx.send_replace(true);
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                        let Ok(env) = edge_proto::decode(&p.payload) else { continue };
                        seen_by_task.lock().expect("lock").insert(env.version);
                        match env.message {
                            Message::Heartbeat(h) => {
                                hb_tx.send_replace(Some(h));
                            }
                            Message::Events(batch) => {
                                ev_tx.send_modify(|all| all.extend(batch));
                            }
                            Message::ModuleRequest(r) => {
                                let payload = match (modules.get(&r.module), r.artifact) {
                                    (None, _) => None,
                                    (Some(wasm), None) => Some((wasm.clone(), r.module, None)),
                                    (Some(wasm), Some(profile)) => {
                                        let built = artifacts.entry((r.module, profile)).or_insert_with(|| {
                                            let target = match serve {
                                                Serve::WrongTarget => EngineProfile {
                                                    target: if profile.target == EngineTarget::Aarch64 {
                                                        EngineTarget::X86_64
                                                    } else {
                                                        EngineTarget::Aarch64
                                                    },
                                                    ..profile
                                                },
                                                _ => profile,
                                            };
                                            let mut b = compiler.precompile(&target, wasm).expect("precompile");
                                            if serve == Serve::Truncated {
                                                b.truncate(b.len() / 2);
                                            }
                                            b
                                        });
                                        let mut hash = sha256(built);
                                        if serve == Serve::WrongHash {
                                            hash[0] ^= 0xff;
                                        }
                                        let label = match serve {
                                            Serve::OtherProfile => EngineProfile {
                                                memory_reservation: profile.memory_reservation * 2,
                                                ..profile
                                            },
                                            _ => profile,
                                        };
                                        Some((built.clone(), hash, Some(label)))
                                    }
                                };
                                let reply = match payload {
                                    Some((b, hash, artifact)) => {
                                        let start = (r.offset as usize).min(b.len());
                                        let end = (start + r.max_len as usize).min(b.len());
                                        ModuleReply::Chunk(ModuleChunk {
                                            module: r.module,
                                            artifact,
                                            sha256: hash,
                                            offset: start as u64,
                                            total: b.len() as u64,
                                            data: b[start..end].to_vec(),
                                        })
                                    }
                                    None => ModuleReply::NotFound { module: r.module },
                                };
                                let speak = v.load(Ordering::Relaxed);
                                let payload = edge_proto::encode_for(speak, &Message::ModuleReply(reply));
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
        Peer { client, topics, node: node.to_string(), heartbeats, events, version, seen, task }
    }

    /// Writes everything from now on in protocol `version` (3 or 4), as a controller of that version would.
    pub fn speak(&self, version: u16) {
        self.version.store(version, Ordering::Relaxed);
    }

    /// The protocol versions of the messages received so far (a current agent writes only the current one).
    pub fn versions_seen(&self) -> BTreeSet<u16> {
        self.seen.lock().expect("lock").clone()
    }

    /// Waits for an event satisfying `pred`; panics after `timeout` with every event seen.
    pub async fn event_where(&mut self, timeout: Duration, pred: impl Fn(&Event) -> bool) -> Event {
        let found = tokio::time::timeout(timeout, self.events.wait_for(|all| all.iter().any(&pred)))
            .await
            .map(|r| r.map(|all| all.iter().find(|e| pred(e)).cloned()));
        match found {
            Ok(Ok(Some(e))) => e,
            _ => panic!("no matching event within {timeout:?}; seen: {:?}", self.events.borrow()),
        }
    }

    /// Publishes `spec` to the node (retained or not).
    pub async fn publish_spec(&self, spec: &NodeSpec, retain: bool) {
        let payload = edge_proto::encode_for(self.version.load(Ordering::Relaxed), &Message::Spec(spec.clone()));
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

fn sha256(bytes: &[u8]) -> Sha256 {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

//! A fake agent: one node's half of the protocol over a real broker, with nothing behind it (no store, no
//! wasmtime). It sends exactly the hellos, heartbeats, events and module requests a test writes, in protocol 4
//! or protocol 3 (every message goes through `edge_proto::encode_for(version, …)`), and records what the
//! controller sends it with the protocol version of each envelope ([`Inbox`]). For version-skew tests (an
//! agent one protocol behind) and for hostile-but-well-formed input (extreme values, see [`crate::hostile`]).
//!
//! Once [`FakeNode::set_heartbeat`] has been called it heartbeats every [`BEAT`] (QoS 0, as agents do) so it
//! stays Ready, and it answers `HelloRequest` with its hello unless told not to ([`FakeNode::answer_hello_requests`]:
//! a hello lost again).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edge_proto::{
    Channel, EngineProfile, EngineTarget, Event, EventKind, EventsAck, Heartbeat, Hello, InstanceState, InstanceStatus,
    Message, ModuleReply, NodeSpec, Resources, Topics,
};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use tokio::sync::watch;

/// How often a fake node repeats its heartbeat.
pub const BEAT: Duration = Duration::from_millis(500);

/// Everything the controller sent the node, in arrival order, each with the version of its envelope.
#[derive(Debug, Clone, Default)]
pub struct Inbox {
    pub specs: Vec<(u16, NodeSpec)>,
    pub acks: Vec<(u16, EventsAck)>,
    pub hello_requests: usize,
    pub replies: Vec<(u16, ModuleReply)>,
    /// Payloads that did not decode (a controller must never send one).
    pub undecodable: usize,
}

impl Inbox {
    /// The highest acknowledged sequence number for `store_id` (protocol 3 acks carry store id 0).
    pub fn acked(&self, store_id: u64) -> Option<u64> {
        self.acks.iter().filter(|(_, a)| a.store_id == store_id).map(|(_, a)| a.up_to).max()
    }
}

pub struct FakeNode {
    pub name: String,
    /// The protocol version the node writes in and expects to be answered in.
    pub version: u16,
    client: AsyncClient,
    topics: Topics,
    hello: Arc<Mutex<Hello>>,
    beat: Arc<Mutex<Option<Heartbeat>>>,
    answer_hellos: Arc<AtomicBool>,
    inbox: watch::Receiver<Inbox>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Distinguishes the MQTT client ids of fake nodes in one test process.
static CLIENTS: AtomicU64 = AtomicU64::new(0);

impl FakeNode {
    /// Connects to the broker at `host:port` as node `name` speaking `version`, and waits until subscribed to
    /// the node's downlink channels. Nothing is announced yet: see [`FakeNode::say_hello`].
    pub async fn connect(host: &str, port: u16, name: &str, version: u16) -> FakeNode {
        let n = CLIENTS.fetch_add(1, Ordering::Relaxed);
        let mut options = MqttOptions::new(format!("fake-{n}-{}", std::process::id()), host, port);
        options.set_max_packet_size(edge_proto::MAX_PAYLOAD + 4096, edge_proto::MAX_PAYLOAD + 4096);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        let topics = Topics::default();
        let hello = Arc::new(Mutex::new(hello(name, 1)));
        let answer_hellos = Arc::new(AtomicBool::new(true));
        let (inbox_tx, inbox) = watch::channel(Inbox::default());
        let (subscribed_tx, mut subscribed) = watch::channel(0usize);
        let poller = {
            let (c, t, node, hello, answer) =
                (client.clone(), topics.clone(), name.to_string(), hello.clone(), answer_hellos.clone());
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                            for ch in Channel::DOWNLINK {
                                let _ = c.subscribe(t.node(&node, ch), QoS::AtLeastOnce).await;
                            }
                        }
                        Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                            subscribed_tx.send_modify(|n| *n += 1);
                        }
                        Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                            let Ok(env) = edge_proto::decode(&p.payload) else {
                                inbox_tx.send_modify(|i| i.undecodable += 1);
                                continue;
                            };
                            let v = env.version;
                            match env.message {
                                Message::Spec(s) => inbox_tx.send_modify(|i| i.specs.push((v, s))),
                                Message::EventsAck(a) => inbox_tx.send_modify(|i| i.acks.push((v, a))),
                                Message::ModuleReply(r) => inbox_tx.send_modify(|i| i.replies.push((v, r))),
                                Message::HelloRequest => {
                                    inbox_tx.send_modify(|i| i.hello_requests += 1);
                                    if answer.load(Ordering::Relaxed) {
                                        let h = Message::Hello(hello.lock().expect("lock").clone());
                                        let payload = edge_proto::encode_for(version, &h);
                                        let _ = c.try_publish(
                                            t.node(&node, Channel::Hello),
                                            QoS::AtLeastOnce,
                                            false,
                                            payload,
                                        );
                                    }
                                }
                                _ => {}
                            }
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
        };
        let beat: Arc<Mutex<Option<Heartbeat>>> = Arc::default();
        let beater = {
            let (c, topic, beat) = (client.clone(), topics.node(name, Channel::Heartbeat), beat.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(BEAT);
                loop {
                    every.tick().await;
                    let Some(mut hb) = beat.lock().expect("lock").clone() else { continue };
                    hb.at_ms = edge_agent::clock::now_ms();
                    let payload = edge_proto::encode_for(version, &Message::Heartbeat(hb));
                    let _ = c.publish(topic.clone(), QoS::AtMostOnce, false, payload).await;
                }
            })
        };
        let downlinks = Channel::DOWNLINK.len();
        tokio::time::timeout(Duration::from_secs(10), subscribed.wait_for(|n| *n >= downlinks))
            .await
            .unwrap_or_else(|_| panic!("fake node {name:?} not subscribed within 10 s"))
            .expect("fake node task alive");
        FakeNode {
            name: name.to_string(),
            version,
            client,
            topics,
            hello,
            beat,
            answer_hellos,
            inbox,
            tasks: vec![poller, beater],
        }
    }

    /// The hello this node says (and answers `HelloRequest` with), to adjust before [`FakeNode::say_hello`].
    pub fn hello_mut(&self) -> std::sync::MutexGuard<'_, Hello> {
        self.hello.lock().expect("lock")
    }

    pub fn engine(&self) -> EngineProfile {
        self.hello.lock().expect("lock").engine
    }

    /// Publishes the node's hello.
    pub async fn say_hello(&self) {
        let h = Message::Hello(self.hello.lock().expect("lock").clone());
        self.send(Channel::Hello, &h).await;
    }

    /// Whether a `HelloRequest` is answered with the hello (default yes).
    pub fn answer_hello_requests(&self, yes: bool) {
        self.answer_hellos.store(yes, Ordering::Relaxed);
    }

    /// Publishes `message` on the node's `channel` in the node's protocol version (QoS 1).
    pub async fn send(&self, channel: Channel, message: &Message) {
        let payload = edge_proto::encode_for(self.version, message);
        self.send_raw(channel, payload).await;
    }

    /// Publishes raw bytes on the node's `channel` (QoS 1).
    pub async fn send_raw(&self, channel: Channel, payload: Vec<u8>) {
        let topic = self.topics.node(&self.name, channel);
        self.client.publish(topic, QoS::AtLeastOnce, false, payload).await.expect("publish");
    }

    /// Sends `hb` now and then every [`BEAT`] (its `at_ms` refreshed), until replaced.
    pub async fn set_heartbeat(&self, hb: Heartbeat) {
        *self.beat.lock().expect("lock") = Some(hb.clone());
        self.send(Channel::Heartbeat, &Message::Heartbeat(hb)).await;
    }

    /// Stops heartbeating (the node goes silent).
    pub fn stop_heartbeats(&self) {
        *self.beat.lock().expect("lock") = None;
    }

    pub async fn events(&self, events: Vec<Event>) {
        self.send(Channel::Events, &Message::Events(events)).await;
    }

    /// A copy of everything received so far.
    pub fn inbox(&self) -> Inbox {
        self.inbox.borrow().clone()
    }

    /// Waits until `check` finds what it looks for in the inbox; panics with the inbox after `timeout`.
    pub async fn wait<T>(&mut self, timeout: Duration, what: &str, mut check: impl FnMut(&Inbox) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(v) = check(&self.inbox.borrow_and_update()) {
                return v;
            }
            match tokio::time::timeout_at(deadline, self.inbox.changed()).await {
                Ok(Ok(())) => {}
                _ => panic!("{}: timed out after {timeout:?} waiting for {what}; inbox: {:?}", self.name, self.inbox()),
            }
        }
    }

    /// Waits for the latest spec to satisfy `check`; returns it with its envelope's version.
    pub async fn spec_where(&mut self, timeout: Duration, check: impl Fn(&NodeSpec) -> bool) -> (u16, NodeSpec) {
        self.wait(timeout, "a matching spec", |i| i.specs.last().filter(|(_, s)| check(s)).cloned()).await
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A plausible hello: an aarch64 board with 4 GiB and 4 cores, store `store_id`, nothing applied yet.
pub fn hello(name: &str, store_id: u64) -> Hello {
    Hello {
        agent_version: format!("fake-{name}"),
        board: "fake".into(),
        arch: "aarch64".into(),
        engine: edge_engine::profile_for(EngineTarget::Aarch64, 4 << 30),
        capacity: Resources { cpu_millis: 4000, memory_bytes: 4 << 30 },
        labels: vec![("fake".into(), "yes".into())],
        applied_generation: 0,
        store_id,
        reserved: Resources::ZERO,
    }
}

/// A heartbeat reporting `instances` with an empty outbox and nothing dropped.
pub fn heartbeat(store_id: u64, applied_generation: u64, instances: Vec<InstanceStatus>) -> Heartbeat {
    Heartbeat {
        at_ms: edge_agent::clock::now_ms(),
        applied_generation,
        instances,
        events_dropped: 0,
        last_event_seq: 0,
        oldest_unacked_seq: 0,
        last_outage: None,
        store_id,
    }
}

/// An instance `id` in `state`, started now, never restarted.
pub fn status(id: &str, state: InstanceState) -> InstanceStatus {
    InstanceStatus {
        id: id.to_string(),
        state,
        restarts: 0,
        started_at_ms: Some(edge_agent::clock::now_ms()),
        exit_code: None,
        reason: None,
    }
}

/// Event `seq` about `instance`, happening now.
pub fn event(seq: u64, instance: &str, kind: EventKind) -> Event {
    Event { seq, at_ms: edge_agent::clock::now_ms(), instance: instance.to_string(), restarts: 0, kind }
}

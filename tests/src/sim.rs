//! A fleet simulator: N lightweight nodes that speak the agent's protocol (protocol 4: hello, heartbeats, specs)
//! without running anything, multiplexed over a few MQTT connections, so 1,000 or 10,000 nodes load a controller
//! from one small machine. A simulated node announces itself, reports every instance of its spec as Running, and
//! heartbeats at a fixed interval. It keeps no store and sends no events: it measures the control plane, not
//! agents.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edge_proto::{Channel, EngineTarget, Heartbeat, Hello, InstanceState, InstanceStatus, Message, Resources, Topics};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;

/// The store id every simulated node announces (in hellos and heartbeats, protocol 4): it never changes, so its
/// (absent) event numbering is never reset.
const STORE_ID: u64 = 1;

/// Per simulated node: the generation and instance ids of its last spec.
type NodeSpecs = HashMap<String, (u64, Vec<String>)>;

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub host: String,
    pub port: u16,
    pub nodes: usize,
    /// Nodes per MQTT connection.
    pub per_connection: usize,
    pub heartbeat: Duration,
    /// Node names are `{prefix}-{index:05}`.
    pub prefix: String,
    pub capacity: Resources,
    /// Labels every node announces besides its zone.
    pub labels: Vec<(String, String)>,
}

impl SimConfig {
    pub fn new(host: &str, port: u16, nodes: usize) -> SimConfig {
        SimConfig {
            host: host.to_string(),
            port,
            nodes,
            per_connection: 100,
            heartbeat: Duration::from_secs(2),
            prefix: "sim".into(),
            capacity: Resources { cpu_millis: 4000, memory_bytes: 4 << 30 },
            labels: Vec::new(),
        }
    }
}

/// Counters of a running simulation.
#[derive(Debug, Default)]
pub struct SimStats {
    pub heartbeats_sent: AtomicU64,
    pub specs_received: AtomicU64,
}

/// Runs the simulated fleet until `shutdown` turns true.
pub async fn run(cfg: SimConfig, stats: Arc<SimStats>, shutdown: watch::Receiver<bool>) {
    let names: Vec<String> = (0..cfg.nodes).map(|i| format!("{}-{i:05}", cfg.prefix)).collect();
    let mut tasks = Vec::new();
    for (k, chunk) in names.chunks(cfg.per_connection.max(1)).enumerate() {
        tasks.push(tokio::spawn(connection(cfg.clone(), k, chunk.to_vec(), stats.clone(), shutdown.clone())));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn connection(
    cfg: SimConfig,
    k: usize,
    nodes: Vec<String>,
    stats: Arc<SimStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let topics = Topics::default();
    let mut options = MqttOptions::new(format!("{}-conn-{k}-{}", cfg.prefix, std::process::id()), &cfg.host, cfg.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(edge_proto::MAX_PAYLOAD + 4096, edge_proto::MAX_PAYLOAD + 4096);
    options.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    // Spec instances per node, reported back as Running.
    let specs: Arc<Mutex<NodeSpecs>> = Arc::default();
    let (connected_tx, mut connected) = watch::channel(false);
    let poller = {
        let (client, topics, nodes, specs, stats, cfg) =
            (client.clone(), topics.clone(), nodes.clone(), specs.clone(), stats.clone(), cfg.clone());
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for n in &nodes {
                            let _ = client.subscribe(topics.node(n, Channel::Spec), QoS::AtLeastOnce).await;
                            let _ = client.subscribe(topics.node(n, Channel::Ack), QoS::AtLeastOnce).await;
                        }
                        connected_tx.send_replace(true);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let Some((node, _)) = topics.parse(&p.topic) else { continue };
                        match edge_proto::decode(&p.payload).map(|e| e.message) {
                            Ok(Message::Spec(spec)) => {
                                stats.specs_received.fetch_add(1, Ordering::Relaxed);
                                let ids = spec.instances.into_iter().map(|i| i.id).collect();
                                specs.lock().expect("lock").insert(node.to_string(), (spec.generation, ids));
                            }
                            // The controller missed this node's Hello (dropped under load): say it again.
                            Ok(Message::HelloRequest) => {
                                let hello = edge_proto::encode(&hello(&cfg, k));
                                let topic = topics.node(node, Channel::Hello);
                                let _ = client.try_publish(topic, QoS::AtLeastOnce, false, hello);
                            }
                            _ => {}
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        })
    };
    if connected.wait_for(|c| *c).await.is_err() {
        return;
    }
    for n in &nodes {
        let payload = edge_proto::encode(&hello(&cfg, k));
        let _ = client.publish(topics.node(n, Channel::Hello), QoS::AtLeastOnce, false, payload).await;
    }
    let started = edge_agent::clock::now_ms();
    let mut tick = tokio::time::interval(cfg.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
        for n in &nodes {
            let (generation, ids) = specs.lock().expect("lock").get(n).cloned().unwrap_or_default();
            let instances = ids
                .into_iter()
                .map(|id| InstanceStatus {
                    id,
                    state: InstanceState::Running,
                    restarts: 0,
                    started_at_ms: Some(started),
                    exit_code: None,
                    reason: None,
                })
                .collect();
            let hb = Heartbeat {
                at_ms: edge_agent::clock::now_ms(),
                applied_generation: generation,
                instances,
                events_dropped: 0,
                last_event_seq: 0,
                oldest_unacked_seq: 0,
                last_outage: None,
                store_id: STORE_ID,
            };
            let payload = edge_proto::encode(&Message::Heartbeat(hb));
            if client.publish(topics.node(n, Channel::Heartbeat), QoS::AtMostOnce, false, payload).await.is_err() {
                break;
            }
            stats.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
    poller.abort();
}

/// A simulated node's hello; nodes of connection `k` are in zone `z{k % 3}`.
fn hello(cfg: &SimConfig, k: usize) -> Message {
    let mut labels = vec![("zone".to_string(), format!("z{}", k % 3))];
    labels.extend(cfg.labels.iter().cloned());
    Message::Hello(Hello {
        agent_version: "sim".into(),
        board: "sim".into(),
        arch: "sim".into(),
        engine: edge_engine::profile_for(EngineTarget::Aarch64, 4 << 30),
        capacity: cfg.capacity,
        labels,
        applied_generation: 0,
        store_id: STORE_ID,
        reserved: Resources::ZERO,
    })
}

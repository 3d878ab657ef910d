//! The edge agent: the kubelet of this system. It runs on a board, keeps its desired state in a local redb
//! store, runs WebAssembly workloads in wasmtime, and reports over MQTT. It keeps running its last spec when
//! the controller or the broker is unreachable.
//!
//! Layout:
//! - [`config`]: configuration and the node identity it announces (capacity, engine target, labels).
//! - [`session`]: the MQTT connection (Last Will, resubscribe on every ConnAck, jittered back-off).
//! - [`core`]: the single task that owns the node's state: specs, instances, events, module downloads.
//! - [`supervisor`]: pure restart-policy and back-off decisions per instance.
//! - [`runtime`]: the wasmtime engine for the node's profile, loaded-module cache, running one instance.
//! - [`limits`]: memory limiter and CPU throttle per instance.
//! - [`volume`]: per-instance volume directories and their quotas.
//! - [`logsink`]: guest stdout/stderr split into bounded log lines.
//! - [`store`]: the agent's redb file (spec, artifact cache, event outbox, restart counters).
//! - [`manifest`]: local manifests for standalone mode (no controller).

pub mod clock;
pub mod config;
pub mod core;
pub mod error;
pub mod limits;
pub mod logsink;
pub mod manifest;
pub mod runtime;
pub mod session;
pub mod store;
pub mod supervisor;
pub mod volume;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use edge_proto::{Channel, LogLine, Message, Topics};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::{mpsc, watch};

pub use config::AgentConfig;
pub use error::AgentError;

/// Log lines buffered between guests and the forwarder.
const LOG_QUEUE: usize = 4096;
/// Log lines per published batch.
const LOG_BATCH: usize = 256;
/// Recent log lines kept while disconnected, sent on reconnect.
const LOG_RING: usize = 2048;

/// Runs the agent until `shutdown` turns true (or its sender is dropped). On return every instance is stopped.
pub async fn run(config: AgentConfig, shutdown: watch::Receiver<bool>) -> Result<(), AgentError> {
    let topics = Topics::new(&config.prefix);
    let (client, eventloop) = session::connect(&config.broker_host, config.broker_port, &config.node, &topics);
    let mut node = Node::open(&config, Some(client.clone()))?;
    node.core.boot()?;
    let session = tokio::spawn(session::run(
        eventloop,
        client.clone(),
        topics.clone(),
        config.node.clone(),
        (config.broker_host.clone(), config.broker_port),
        node.inputs_tx.clone(),
        shutdown.clone(),
    ));
    let logs = node.logs_rx.take().expect("taken once");
    let forwarder = tokio::spawn(forward_logs(
        logs,
        Some((client, topics.node(&config.node, Channel::Logs))),
        node.connected.subscribe(),
        node.log_stats.clone(),
    ));
    node.serve(config.heartbeat, shutdown).await;
    forwarder.abort();
    let _ = session.await;
    Ok(())
}

/// Runs the workloads of a local manifest with no broker and no controller, until `shutdown`.
/// Same store, runtime and restart policies as [`run`]; events and guest output go to the agent's log.
pub async fn run_standalone(
    config: AgentConfig,
    manifest: &Path,
    shutdown: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let loaded = manifest::load(manifest).map_err(|e| AgentError::Config(e.to_string()))?;
    let mut node = Node::open(&config, None)?;
    let runtime = node.runtime.clone();
    for (sha, bytes) in &loaded.modules {
        // Load now so an invalid module is an error naming it, before anything runs.
        runtime
            .load(*sha, Arc::new(bytes.clone()))
            .await
            .map_err(|e| AgentError::Config(format!("manifest {}: {e}", manifest.display())))?;
        node.core.put_local_module(sha, bytes)?;
    }
    node.core.boot()?;
    node.core.apply_local(loaded.instances);
    let logs = node.logs_rx.take().expect("taken once");
    let forwarder = tokio::spawn(forward_logs(logs, None, node.connected.subscribe(), node.log_stats.clone()));
    node.serve(config.heartbeat, shutdown).await;
    forwarder.abort();
    Ok(())
}

/// The parts of a running agent shared by both modes.
struct Node {
    core: core::Core,
    runtime: runtime::Runtime,
    inputs: mpsc::UnboundedReceiver<core::Input>,
    inputs_tx: mpsc::UnboundedSender<core::Input>,
    connected: watch::Sender<bool>,
    logs_rx: Option<mpsc::Receiver<LogLine>>,
    log_stats: Arc<core::LogStats>,
}

impl Node {
    fn open(config: &AgentConfig, client: Option<AsyncClient>) -> Result<Node, AgentError> {
        let identity = config::NodeIdentity::resolve(config)?;
        let store = store::Store::open(&config.data_dir)?;
        store.use_engine(&edge_engine::fingerprint(&identity.engine))?;
        let runtime = runtime::Runtime::new(identity.engine, &config.data_dir)?;
        let (inputs_tx, inputs) = mpsc::unbounded_channel();
        let (connected, _) = watch::channel(false);
        let (logs_tx, logs_rx) = mpsc::channel(LOG_QUEUE);
        let log_stats = Arc::new(core::LogStats::default());
        let core = core::Core::new(
            config.node.clone(),
            identity,
            Topics::new(&config.prefix),
            store,
            runtime.clone(),
            client,
            inputs_tx.clone(),
            connected.clone(),
            config.limits,
            logs_tx,
            Arc::new(AtomicU64::new(0)),
            log_stats.clone(),
        )?;
        Ok(Node { core, runtime, inputs, inputs_tx, connected, logs_rx: Some(logs_rx), log_stats })
    }

    async fn serve(&mut self, heartbeat: std::time::Duration, mut shutdown: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(input) = self.inputs.recv() => self.core.handle(input),
                _ = ticks.tick() => self.core.tick(),
                r = shutdown.wait_for(|s| *s) => {
                    let _ = r;
                    break;
                }
            }
        }
        self.core.shutdown();
    }
}

/// Echoes guest output to the agent's log and publishes it as soon as it exists, batching what is queued.
/// While disconnected the most recent [`LOG_RING`] lines are kept (older ones dropped and counted) and sent on
/// reconnect. `mqtt` is `None` in standalone mode.
async fn forward_logs(
    mut rx: mpsc::Receiver<LogLine>,
    mqtt: Option<(AsyncClient, String)>,
    mut connected: watch::Receiver<bool>,
    stats: Arc<core::LogStats>,
) {
    let mut ring: VecDeque<LogLine> = VecDeque::new();
    let keep = |line: LogLine, ring: &mut VecDeque<LogLine>, online: bool| {
        tracing::info!(target: "guest", instance = %line.instance, "{}", line.line);
        if mqtt.is_none() {
            return;
        }
        if !online {
            stats.buffered.fetch_add(1, Ordering::Relaxed);
        }
        ring.push_back(line);
        if ring.len() > LOG_RING {
            ring.pop_front();
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    };
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(l) => {
                    let online = *connected.borrow();
                    keep(l, &mut ring, online);
                }
                None => return,
            },
            changed = connected.changed() => if changed.is_err() { return },
        }
        let online = *connected.borrow();
        while let Ok(l) = rx.try_recv() {
            keep(l, &mut ring, online);
        }
        let Some((client, topic)) = &mqtt else { continue };
        while online && !ring.is_empty() {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while batch.len() < LOG_BATCH && bytes < edge_proto::MAX_PAYLOAD / 2 {
                let Some(l) = ring.pop_front() else { break };
                bytes += l.line.len() + l.instance.len() + 16;
                batch.push(l);
            }
            let payload = edge_proto::encode(&Message::Logs(batch));
            if client.publish(topic.clone(), QoS::AtMostOnce, false, payload).await.is_err() {
                return;
            }
        }
    }
}

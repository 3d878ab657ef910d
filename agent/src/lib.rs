//! The edge agent: the kubelet of this system. It runs on a board, keeps its desired state in a local redb
//! store, runs WebAssembly workloads in wasmtime, and reports over MQTT. It keeps running its last spec when
//! the controller or the broker is unreachable.
//!
//! Layout:
//! - [`config`]: configuration and the node identity it announces (capacity, engine target, labels).
//! - [`session`]: the MQTT connection (Last Will, resubscribe on every ConnAck, jittered back-off).
//! - [`core`]: the single task that owns the node's state: specs, instances, events, module downloads.
//! - [`supervisor`]: pure restart-policy and back-off decisions per instance.
//! - [`runtime`]: the wasmtime engine, compiled-module cache, and running one instance.
//! - [`logsink`]: guest stdout/stderr split into bounded log lines.
//! - [`store`]: the agent's redb file.

pub mod clock;
pub mod config;
pub mod core;
pub mod error;
pub mod logsink;
pub mod runtime;
pub mod session;
pub mod store;
pub mod supervisor;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use edge_proto::{Channel, LogLine, Message, Topics};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::{mpsc, watch};

pub use config::AgentConfig;
pub use error::AgentError;

/// Log lines buffered between guests and the MQTT connection.
const LOG_QUEUE: usize = 4096;
/// Log lines per published batch.
const LOG_BATCH: usize = 256;

/// Runs the agent until `shutdown` turns true (or its sender is dropped). On return every instance is stopped.
pub async fn run(config: AgentConfig, mut shutdown: watch::Receiver<bool>) -> Result<(), AgentError> {
    let identity = config::NodeIdentity::resolve(&config)?;
    let store = store::Store::open(&config.data_dir)?;
    let runtime = runtime::Runtime::new()?;
    let topics = Topics::new(&config.prefix);
    let (client, eventloop) = session::connect(&config.broker_host, config.broker_port, &config.node, &topics);
    let (inputs_tx, mut inputs) = mpsc::unbounded_channel();
    let connected = Arc::new(AtomicBool::new(false));
    let (logs_tx, logs_rx) = mpsc::channel(LOG_QUEUE);
    let lines_dropped = Arc::new(AtomicU64::new(0));

    let mut core = core::Core::new(
        config.node.clone(),
        identity,
        topics.clone(),
        store,
        runtime,
        client.clone(),
        inputs_tx.clone(),
        connected.clone(),
        logs_tx,
        lines_dropped,
    )?;
    core.boot()?;

    let session = tokio::spawn(session::run(
        eventloop,
        client.clone(),
        topics.clone(),
        config.node.clone(),
        inputs_tx,
        shutdown.clone(),
    ));
    let forwarder = tokio::spawn(forward_logs(logs_rx, client, topics.node(&config.node, Channel::Logs), connected));

    let mut heartbeat = tokio::time::interval(config.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(input) = inputs.recv() => core.handle(input),
            _ = heartbeat.tick() => core.tick(),
            r = shutdown.wait_for(|s| *s) => {
                let _ = r;
                break;
            }
        }
    }
    core.shutdown();
    forwarder.abort();
    let _ = session.await;
    Ok(())
}

/// Publishes guest log lines as soon as they exist, batching whatever is already queued.
async fn forward_logs(mut rx: mpsc::Receiver<LogLine>, client: AsyncClient, topic: String, connected: Arc<AtomicBool>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut bytes = batch[0].line.len();
        while batch.len() < LOG_BATCH && bytes < edge_proto::MAX_PAYLOAD / 2 {
            match rx.try_recv() {
                Ok(l) => {
                    bytes += l.line.len() + l.instance.len();
                    batch.push(l);
                }
                Err(_) => break,
            }
        }
        if !connected.load(Ordering::Relaxed) {
            continue; // A bounded ring of recent logs for offline periods is future work; drop meanwhile.
        }
        let payload = edge_proto::encode(&Message::Logs(batch));
        if client.publish(topic.clone(), QoS::AtMostOnce, false, payload).await.is_err() {
            return;
        }
    }
}

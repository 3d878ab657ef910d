//! The parts of a running agent shared by both modes (connected and standalone): the store, the runtime, the
//! core and the channels around it, and the loop that feeds the core its inputs and heartbeat ticks.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use edge_proto::LogLine;
use tokio::sync::{mpsc, watch};

use crate::config::{AgentConfig, NodeIdentity};
use crate::core::{Core, LogStats, Wiring};
use crate::error::AgentError;
use crate::logring::LOG_QUEUE;
use crate::mail::{Input, Outgoing};
use crate::runtime::Runtime;
use crate::store::Store;
use crate::verify::Verifier;

pub(crate) struct Node {
    pub core: Core,
    pub runtime: Runtime,
    inputs: mpsc::UnboundedReceiver<Input>,
    pub inputs_tx: mpsc::UnboundedSender<Input>,
    pub connected: watch::Sender<bool>,
    /// Guest output, taken once by the log forwarder.
    pub logs_rx: Option<mpsc::Receiver<LogLine>>,
    pub log_stats: Arc<LogStats>,
}

impl Node {
    /// Opens the store and the runtime for `config`; `outgoing` is the queue to the session (`None` standalone).
    /// `verifier` holds the cluster key a joined node checks specs and artifacts against.
    pub fn open(
        config: &AgentConfig,
        outgoing: Option<mpsc::Sender<Outgoing>>,
        verifier: Verifier,
    ) -> Result<Node, AgentError> {
        let identity = NodeIdentity::resolve(config)?;
        let store = Store::open(&config.data_dir)?;
        store.use_engine(&edge_engine::fingerprint(&identity.engine))?;
        let runtime = Runtime::new(identity.engine, &config.data_dir)?;
        let (inputs_tx, inputs) = mpsc::unbounded_channel();
        let (connected, _) = watch::channel(false);
        let (logs_tx, logs_rx) = mpsc::channel(LOG_QUEUE);
        let log_stats = Arc::new(LogStats::default());
        let wiring = Wiring {
            outgoing,
            inputs: inputs_tx.clone(),
            connected: connected.clone(),
            logs: logs_tx,
            lines_dropped: Arc::new(AtomicU64::new(0)),
            log_stats: log_stats.clone(),
        };
        let core = Core::new(identity, store, runtime.clone(), config.limits, wiring, verifier)?;
        Ok(Node { core, runtime, inputs, inputs_tx, connected, logs_rx: Some(logs_rx), log_stats })
    }

    /// Feeds the core until `shutdown` turns true (or its sender is dropped), then stops every instance.
    pub async fn serve(&mut self, heartbeat: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(heartbeat.min(edge_proto::timing::TICK));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(input) = self.inputs.recv() => self.core.handle(input),
                _ = ticks.tick() => self.core.tick(heartbeat),
                _ = edge_link::stopped(&mut shutdown) => break,
            }
        }
        self.core.shutdown();
    }
}

#[cfg(test)]
mod tests;

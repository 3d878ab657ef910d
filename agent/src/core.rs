//! The agent's core: one task owning the node's state. Everything that happens arrives as an [`Input`]:
//! MQTT connection changes and messages (from the session), instance starts and exits (from instance tasks),
//! due restarts (from back-off timers), and heartbeat ticks.
//!
//! **Invariants:**
//! - A spec is applied only if its generation is newer than the persisted one, and it is persisted first.
//! - An instance id that is already running is never restarted by a spec: ids change with their template.
//! - A disconnection alone never starts or stops anything.
//! - Event sequence numbers strictly increase across restarts (blocks are reserved in the store).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_proto::{
    Channel, Event, EventKind, Heartbeat, Hello, InstanceSpec, LogLine, Message, ModuleReply, ModuleRequest, NodeSpec,
    Sha256, Topics,
};
use rumqttc::{AsyncClient, QoS};
use sha2::Digest;
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::task::JoinHandle;

use crate::clock::now_ms;
use crate::config::NodeIdentity;
use crate::runtime::Runtime;
use crate::store::{Store, SEQ_BLOCK};
use crate::supervisor::{Decision, Exit, Supervisor};

/// Events kept while disconnected; beyond this the oldest are dropped and counted.
pub const OUTBOX_LIMIT: usize = 10_000;
/// A module download with no chunk for this long is asked for again.
pub const FETCH_STALL: Duration = Duration::from_secs(10);
/// Largest module the agent downloads.
pub const MAX_MODULE: u64 = 64 * 1024 * 1024;

#[derive(Debug)]
pub enum Input {
    Connected,
    Disconnected,
    Message(Message),
    Started { id: String, run: u64, at_ms: u64 },
    Exited { id: String, run: u64, exit: Exit, ran_for: Duration },
    RestartDue { id: String, run: u64 },
}

struct Instance {
    spec: InstanceSpec,
    sup: Supervisor,
    /// Counts runs, so reports from an aborted run are told apart from the current one.
    run: u64,
    task: Option<JoinHandle<()>>,
    /// Waiting for its module to arrive.
    waiting_module: bool,
}

struct Fetch {
    buf: Vec<u8>,
    last_activity: Instant,
}

pub struct Core {
    node: String,
    identity: NodeIdentity,
    topics: Topics,
    store: Store,
    runtime: Runtime,
    client: AsyncClient,
    inputs: UnboundedSender<Input>,
    connected: Arc<AtomicBool>,
    generation: u64,
    instances: HashMap<String, Instance>,
    fetches: HashMap<Sha256, Fetch>,
    outbox: VecDeque<Event>,
    events_dropped: u64,
    seq_next: u64,
    seq_ceiling: u64,
    logs: mpsc::Sender<LogLine>,
    lines_dropped: Arc<AtomicU64>,
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: String,
        identity: NodeIdentity,
        topics: Topics,
        store: Store,
        runtime: Runtime,
        client: AsyncClient,
        inputs: UnboundedSender<Input>,
        connected: Arc<AtomicBool>,
        logs: mpsc::Sender<LogLine>,
        lines_dropped: Arc<AtomicU64>,
    ) -> Result<Core, crate::store::StoreError> {
        let seq_next = store.reserve_seq_block()?;
        Ok(Core {
            node,
            identity,
            topics,
            store,
            runtime,
            client,
            inputs,
            connected,
            generation: 0,
            instances: HashMap::new(),
            fetches: HashMap::new(),
            outbox: VecDeque::new(),
            events_dropped: 0,
            seq_next,
            seq_ceiling: seq_next + SEQ_BLOCK,
            logs,
            lines_dropped,
        })
    }

    /// Starts the instances of the persisted spec: a node runs its last desired state with no broker at all.
    pub fn boot(&mut self) -> Result<(), crate::store::StoreError> {
        if let Some(spec) = self.store.spec()? {
            tracing::info!(generation = spec.generation, instances = spec.instances.len(), "resuming persisted spec");
            self.generation = spec.generation;
            self.converge(spec.instances);
        }
        Ok(())
    }

    pub fn handle(&mut self, input: Input) {
        match input {
            Input::Connected => {
                self.connected.store(true, Ordering::Relaxed);
                self.publish(Channel::Hello, QoS::AtLeastOnce, &Message::Hello(self.hello()));
                self.flush_events();
                self.heartbeat();
                let pending: Vec<Sha256> = self.fetches.keys().copied().collect();
                for sha in pending {
                    self.request_chunk(sha);
                }
            }
            Input::Disconnected => self.connected.store(false, Ordering::Relaxed),
            Input::Message(Message::Spec(spec)) => self.apply_spec(spec),
            Input::Message(Message::ModuleReply(reply)) => self.on_module_reply(reply),
            Input::Message(other) => tracing::debug!(?other, "unexpected message kind ignored"),
            Input::Started { id, run, at_ms } => {
                let Some(inst) = self.instances.get_mut(&id).filter(|i| i.run == run) else { return };
                inst.sup.started(at_ms);
                let restarts = inst.sup.restarts;
                self.event(&id, restarts, EventKind::Started { started_at_ms: at_ms });
            }
            Input::Exited { id, run, exit, ran_for } => self.on_exit(id, run, exit, ran_for),
            Input::RestartDue { id, run } => {
                let Some(inst) = self.instances.get_mut(&id).filter(|i| i.run == run && i.task.is_none()) else {
                    return;
                };
                inst.sup.restarting();
                self.start(&id);
            }
        }
    }

    /// Periodic: heartbeat, and re-asking for stalled module downloads.
    pub fn tick(&mut self) {
        self.heartbeat();
        let stalled: Vec<Sha256> =
            self.fetches.iter().filter(|(_, f)| f.last_activity.elapsed() >= FETCH_STALL).map(|(s, _)| *s).collect();
        for sha in stalled {
            self.request_chunk(sha);
        }
    }

    pub fn shutdown(&mut self) {
        for inst in self.instances.values_mut() {
            if let Some(t) = inst.task.take() {
                t.abort();
            }
        }
        self.runtime.shutdown();
    }

    fn hello(&self) -> Hello {
        Hello {
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            board: self.identity.board.clone(),
            arch: self.identity.arch.clone(),
            engine: self.identity.engine,
            capacity: self.identity.capacity,
            labels: self.identity.labels.clone(),
            applied_generation: self.generation,
        }
    }

    fn heartbeat(&mut self) {
        if !self.connected.load(Ordering::Relaxed) {
            return;
        }
        let mut instances: Vec<_> = self.instances.values().map(|i| i.sup.status()).collect();
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        let hb = Heartbeat {
            at_ms: now_ms(),
            applied_generation: self.generation,
            instances,
            events_dropped: self.events_dropped,
        };
        self.publish(Channel::Heartbeat, QoS::AtMostOnce, &Message::Heartbeat(hb));
    }

    fn publish(&self, channel: Channel, qos: QoS, message: &Message) {
        let topic = self.topics.node(&self.node, channel);
        // Never block the core on a full client queue: drop and say so (heartbeats and hellos are repeated).
        if let Err(e) = self.client.try_publish(topic, qos, false, edge_proto::encode(message)) {
            tracing::warn!(channel = channel.as_str(), error = %e, "MQTT publish dropped");
        }
    }

    // ---- spec ------------------------------------------------------------------------------------------------

    fn apply_spec(&mut self, spec: NodeSpec) {
        if spec.generation <= self.generation {
            return; // Already applied (a re-delivery after a reconnect or a controller restart).
        }
        if let Err(e) = self.store.put_spec(&spec) {
            tracing::error!(error = %e, "cannot persist the new spec; not applying it");
            return;
        }
        tracing::info!(generation = spec.generation, instances = spec.instances.len(), "applying spec");
        self.generation = spec.generation;
        self.converge(spec.instances);
        self.heartbeat();
    }

    /// Stops what the spec no longer holds and starts what is new; leaves running instances alone.
    fn converge(&mut self, desired: Vec<InstanceSpec>) {
        let keep: std::collections::HashSet<&str> = desired.iter().map(|s| s.id.as_str()).collect();
        let gone: Vec<String> = self.instances.keys().filter(|id| !keep.contains(id.as_str())).cloned().collect();
        for id in gone {
            if let Some(mut inst) = self.instances.remove(&id) {
                if let Some(t) = inst.task.take() {
                    t.abort();
                }
                self.event(&id, inst.sup.restarts, EventKind::Stopped);
            }
        }
        for spec in desired {
            if self.instances.contains_key(&spec.id) {
                continue;
            }
            let id = spec.id.clone();
            let sup = Supervisor::new(id.clone(), spec.restart);
            self.instances.insert(id.clone(), Instance { spec, sup, run: 0, task: None, waiting_module: false });
            self.start(&id);
        }
    }

    // ---- instances -------------------------------------------------------------------------------------------

    fn start(&mut self, id: &str) {
        let Some(inst) = self.instances.get_mut(id) else { return };
        let sha = inst.spec.module;
        let bytes = if self.runtime.is_compiled(&sha) {
            None
        } else {
            match self.store.module(&sha) {
                Ok(Some(b)) => Some(Arc::new(b)),
                Ok(None) => {
                    inst.waiting_module = true;
                    inst.sup.waiting("fetching module");
                    self.ensure_fetch(sha);
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read a module from the store");
                    return;
                }
            }
        };
        inst.waiting_module = false;
        inst.run += 1;
        inst.sup.starting();
        let (run, restarts, spec) = (inst.run, inst.sup.restarts, inst.spec.clone());
        let (runtime, inputs, logs, dropped) =
            (self.runtime.clone(), self.inputs.clone(), self.logs.clone(), self.lines_dropped.clone());
        let task = tokio::spawn(async move {
            let id = spec.id.clone();
            let began = Instant::now();
            let module = match bytes {
                Some(b) => runtime.compile(spec.module, b).await,
                None => runtime.compile(spec.module, Arc::new(Vec::new())).await,
            };
            let exit = match module {
                Ok(module) => {
                    let started = {
                        let (inputs, id) = (inputs.clone(), id.clone());
                        move || {
                            let _ = inputs.send(Input::Started { id, run, at_ms: now_ms() });
                        }
                    };
                    runtime.run(&module, &spec, logs, dropped, started).await
                }
                Err(e) => Exit::Failed(e.to_string()),
            };
            let _ = inputs.send(Input::Exited { id, run, exit, ran_for: began.elapsed() });
        });
        if let Some(inst) = self.instances.get_mut(id) {
            inst.task = Some(task);
        }
        self.event(id, restarts, EventKind::Starting);
    }

    fn on_exit(&mut self, id: String, run: u64, exit: Exit, ran_for: Duration) {
        let Some(inst) = self.instances.get_mut(&id).filter(|i| i.run == run) else { return };
        inst.task = None;
        let decision = inst.sup.exited(&exit, ran_for);
        let restarts = inst.sup.restarts;
        match &exit {
            Exit::Code(code) => self.event(&id, restarts, EventKind::Exited { code: *code }),
            Exit::Trap(reason) => self.event(&id, restarts, EventKind::Trapped { reason: reason.clone() }),
            Exit::Failed(reason) => self.event(&id, restarts, EventKind::Failed { reason: reason.clone() }),
        }
        if let Decision::RestartAfter(delay) = decision {
            self.event(&id, restarts, EventKind::BackOff { delay_ms: delay.as_millis() as u64 });
            let inputs = self.inputs.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = inputs.send(Input::RestartDue { id, run });
            });
        }
        self.heartbeat();
    }

    // ---- events ----------------------------------------------------------------------------------------------

    fn event(&mut self, instance: &str, restarts: u32, kind: EventKind) {
        if self.seq_next >= self.seq_ceiling {
            match self.store.reserve_seq_block() {
                Ok(start) => {
                    self.seq_next = start;
                    self.seq_ceiling = start + SEQ_BLOCK;
                }
                Err(e) => tracing::error!(error = %e, "cannot reserve event sequence numbers"),
            }
        }
        let seq = self.seq_next;
        self.seq_next += 1;
        if self.outbox.len() >= OUTBOX_LIMIT {
            self.outbox.pop_front();
            self.events_dropped += 1;
        }
        self.outbox.push_back(Event { seq, at_ms: now_ms(), instance: instance.to_string(), restarts, kind });
        self.flush_events();
    }

    fn flush_events(&mut self) {
        if !self.connected.load(Ordering::Relaxed) || self.outbox.is_empty() {
            return;
        }
        // Batches stay well under the payload limit: events are small, 256 at a time.
        while !self.outbox.is_empty() {
            let n = self.outbox.len().min(256);
            let batch: Vec<Event> = self.outbox.drain(..n).collect();
            self.publish(Channel::Events, QoS::AtLeastOnce, &Message::Events(batch));
        }
    }

    // ---- module download -------------------------------------------------------------------------------------

    fn ensure_fetch(&mut self, sha: Sha256) {
        if self.fetches.contains_key(&sha) {
            return;
        }
        self.fetches.insert(sha, Fetch { buf: Vec::new(), last_activity: Instant::now() });
        self.request_chunk(sha);
    }

    fn request_chunk(&mut self, sha: Sha256) {
        let Some(f) = self.fetches.get_mut(&sha) else { return };
        f.last_activity = Instant::now();
        if !self.connected.load(Ordering::Relaxed) {
            return;
        }
        let req = ModuleRequest { module: sha, offset: f.buf.len() as u64, max_len: edge_proto::MODULE_CHUNK };
        self.publish(Channel::ModuleRequest, QoS::AtLeastOnce, &Message::ModuleRequest(req));
    }

    fn on_module_reply(&mut self, reply: ModuleReply) {
        match reply {
            ModuleReply::NotFound { module } => {
                if self.fetches.contains_key(&module) {
                    self.fail_waiting(module, "module not found on the controller");
                }
            }
            ModuleReply::Chunk(chunk) => {
                let sha = chunk.module;
                let Some(f) = self.fetches.get_mut(&sha) else { return };
                if chunk.offset != f.buf.len() as u64 {
                    return; // A duplicate or a stale reply; the matching one is (re)requested.
                }
                if chunk.total > MAX_MODULE || chunk.offset + chunk.data.len() as u64 > chunk.total {
                    f.buf.clear();
                    self.fail_waiting(sha, "module download refused: inconsistent or oversize chunk");
                    return;
                }
                f.buf.extend_from_slice(&chunk.data);
                f.last_activity = Instant::now();
                if (f.buf.len() as u64) < chunk.total {
                    if chunk.data.is_empty() {
                        return; // No progress: wait for the stall timer rather than spin.
                    }
                    self.request_chunk(sha);
                    return;
                }
                let Some(f) = self.fetches.remove(&sha) else { return };
                let actual: Sha256 = sha2::Sha256::digest(&f.buf).into();
                if actual != sha {
                    self.fetches.insert(sha, Fetch { buf: Vec::new(), last_activity: Instant::now() });
                    self.fail_waiting(sha, "module download failed its sha256 check; retrying");
                    return;
                }
                if let Err(e) = self.store.put_module(&sha, &f.buf) {
                    tracing::error!(error = %e, "cannot store a downloaded module");
                    return;
                }
                let waiting: Vec<String> = self
                    .instances
                    .iter()
                    .filter(|(_, i)| i.waiting_module && i.spec.module == sha)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in waiting {
                    self.start(&id);
                }
            }
        }
    }

    /// Reports instances waiting for `sha` as failed; the download is retried after [`FETCH_STALL`].
    fn fail_waiting(&mut self, sha: Sha256, reason: &str) {
        let waiting: Vec<(String, u32)> = self
            .instances
            .iter_mut()
            .filter(|(_, i)| i.waiting_module && i.spec.module == sha)
            .map(|(id, i)| {
                i.sup.waiting(reason);
                (id.clone(), i.sup.restarts)
            })
            .collect();
        for (id, restarts) in waiting {
            self.event(&id, restarts, EventKind::Failed { reason: reason.to_string() });
        }
    }
}

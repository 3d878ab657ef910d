//! The agent's core: one task owning the node's state. Everything that happens arrives as an [`Input`]:
//! MQTT connection changes and messages (from the session), instance starts and exits (from instance tasks),
//! due restarts (from back-off timers), and heartbeat ticks.
//!
//! **Invariants:**
//! - A spec is applied only if its generation is newer than the persisted one, and it is persisted first.
//! - An instance id that is already running is never restarted by a spec: ids change with their template.
//! - A disconnection alone never starts or stops anything.
//! - Every event is committed to the store's outbox (at the end of the input that produced it) before it is
//!   published, and leaves the outbox only when the controller acknowledges it: events survive disconnection,
//!   agent restarts and a controller that was down when they were first sent.
//! - Sequence numbers are contiguous and never repeat (see [`crate::store`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_proto::{
    Channel, Event, EventKind, Heartbeat, Hello, InstanceSpec, LogLine, Message, ModuleReply, ModuleRequest, NodeSpec,
    Outage, Sha256, Topics,
};
use rumqttc::{AsyncClient, QoS};
use sha2::Digest;
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::now_ms;
use crate::config::NodeIdentity;
use crate::runtime::{Runtime, RuntimeError};
use crate::store::Store;
use crate::supervisor::{Decision, Exit, Supervisor};

/// Events kept unacknowledged by default; beyond the bound the oldest are dropped and counted.
pub const OUTBOX_LIMIT: usize = 10_000;
/// Default disk budget for cached modules.
pub const MODULE_BUDGET: u64 = 256 * 1024 * 1024;
/// Unacknowledged events are sent again after this long without an acknowledgement.
pub const RESEND_AFTER: Duration = Duration::from_secs(3);
/// A module download with no chunk for this long is asked for again.
pub const FETCH_STALL: Duration = Duration::from_secs(10);
/// Largest module the agent downloads.
pub const MAX_MODULE: u64 = 64 * 1024 * 1024;

#[derive(Debug)]
pub enum Input {
    Connected,
    Disconnected,
    Message(Message),
    Started {
        id: String,
        run: u64,
        at_ms: u64,
    },
    Exited {
        id: String,
        run: u64,
        exit: Exit,
        ran_for: Duration,
    },
    RestartDue {
        id: String,
        run: u64,
    },
    /// A cached module could not be loaded (an incompatible or corrupt artifact): drop it so it is fetched again.
    ModuleUnusable {
        sha: Sha256,
    },
}

/// Limits of the agent's local state.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Unacknowledged events kept; beyond it the oldest are dropped and counted.
    pub outbox: usize,
    /// Bytes of cached modules; unreferenced modules are evicted least recently used first beyond it.
    pub module_budget: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { outbox: OUTBOX_LIMIT, module_budget: MODULE_BUDGET }
    }
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
    /// The payload's hash as the first chunk announced it; every later chunk must announce the same.
    sha256: Option<Sha256>,
    last_activity: Instant,
}

/// Counters the log forwarder keeps, read by the core to report an outage.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Lines put in the ring while disconnected.
    pub buffered: AtomicU64,
    /// Lines the full ring dropped.
    pub dropped: AtomicU64,
}

/// Where an ongoing disconnection started, to report it once it ends.
struct Gap {
    /// The agent's start, before its first connection: only worth reporting when it lasted.
    boot: bool,
    started_ms: u64,
    next_seq: u64,
    events_dropped: u64,
    logs_buffered: u64,
    logs_dropped: u64,
}

pub struct Core {
    node: String,
    identity: NodeIdentity,
    topics: Topics,
    store: Store,
    store_id: u64,
    runtime: Runtime,
    /// `None` in standalone mode: no broker, nothing published.
    client: Option<AsyncClient>,
    inputs: UnboundedSender<Input>,
    connected: watch::Sender<bool>,
    limits: Limits,
    generation: u64,
    instances: HashMap<String, Instance>,
    fetches: HashMap<Sha256, Fetch>,
    /// Committed, unacknowledged events, oldest first (mirrors the store's outbox).
    outbox: VecDeque<Event>,
    /// Events created by the input being handled, committed at its end.
    fresh: Vec<Event>,
    /// Highest sequence number published on the current connection.
    sent_up_to: u64,
    /// When the oldest unacknowledged event was last sent, while any is unacknowledged.
    awaiting_ack: Option<Instant>,
    next_seq: u64,
    events_dropped: u64,
    gap: Option<Gap>,
    last_outage: Option<Outage>,
    logs: mpsc::Sender<LogLine>,
    lines_dropped: Arc<AtomicU64>,
    log_stats: Arc<LogStats>,
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: String,
        identity: NodeIdentity,
        topics: Topics,
        store: Store,
        runtime: Runtime,
        client: Option<AsyncClient>,
        inputs: UnboundedSender<Input>,
        connected: watch::Sender<bool>,
        limits: Limits,
        logs: mpsc::Sender<LogLine>,
        lines_dropped: Arc<AtomicU64>,
        log_stats: Arc<LogStats>,
    ) -> Result<Core, crate::store::StoreError> {
        let outbox: VecDeque<Event> = store.outbox()?.into();
        let next_seq = store.next_seq()?.max(outbox.back().map_or(0, |e| e.seq + 1));
        Ok(Core {
            node,
            identity,
            topics,
            store_id: store.store_id()?,
            events_dropped: store.events_dropped()?,
            store,
            runtime,
            client,
            inputs,
            connected,
            limits,
            generation: 0,
            instances: HashMap::new(),
            fetches: HashMap::new(),
            outbox,
            fresh: Vec::new(),
            sent_up_to: 0,
            awaiting_ack: None,
            next_seq,
            gap: None,
            last_outage: None,
            logs,
            lines_dropped,
            log_stats,
        })
    }

    /// Starts the instances of the persisted spec: a node runs its last desired state with no broker at all.
    pub fn boot(&mut self) -> Result<(), crate::store::StoreError> {
        self.gap = Some(Gap { boot: true, ..self.gap_now() });
        if let Some(spec) = self.store.spec()? {
            tracing::info!(generation = spec.generation, instances = spec.instances.len(), "resuming persisted spec");
            self.generation = spec.generation;
            self.converge(spec.instances);
        }
        self.commit_events();
        Ok(())
    }

    /// Applies a spec from a local manifest (standalone mode): persisted like one from the controller, under the
    /// next generation unless it equals the persisted one.
    pub fn apply_local(&mut self, instances: Vec<InstanceSpec>) {
        let same = self.store.spec().ok().flatten().is_some_and(|s| s.instances == instances);
        let generation = if same { self.generation } else { self.generation + 1 };
        if !same {
            self.apply_spec(NodeSpec { generation, instances });
        }
        self.commit_events();
    }

    /// Puts a module read from local disk into the store (standalone mode); `sha` must be the bytes' sha256.
    pub fn put_local_module(&mut self, sha: &Sha256, bytes: &[u8]) -> Result<(), crate::store::StoreError> {
        if self.store.has_module(sha)? {
            return Ok(());
        }
        self.store.put_module(sha, bytes, now_ms())
    }

    pub fn handle(&mut self, input: Input) {
        self.dispatch(input);
        self.commit_events();
    }

    fn dispatch(&mut self, input: Input) {
        match input {
            Input::Connected => {
                self.connected.send_replace(true);
                if let Some(gap) = self.gap.take() {
                    let outage = self.outage_from(&gap);
                    if !gap.boot || outage.ended_ms - outage.started_ms >= 2_000 || outage.events_buffered > 0 {
                        self.last_outage = Some(outage);
                    }
                }
                self.publish(Channel::Hello, QoS::AtLeastOnce, &Message::Hello(self.hello()));
                self.resend_events();
                self.heartbeat();
                let pending: Vec<Sha256> = self.fetches.keys().copied().collect();
                for sha in pending {
                    self.request_chunk(sha);
                }
            }
            Input::Disconnected => {
                if self.connected.send_replace(false) {
                    self.gap = Some(self.gap_now());
                }
            }
            Input::Message(Message::Spec(spec)) => {
                if spec.generation <= self.generation {
                    // Already applied: a retained re-delivery, or a controller that just (re)connected and
                    // re-published every spec, possibly after our events went to a broker it was not yet
                    // subscribed to. Either way someone is listening: catch it up now (duplicates are ignored).
                    if self.awaiting_ack.is_some() {
                        self.resend_events();
                    }
                    self.heartbeat();
                } else {
                    self.apply_spec(spec);
                }
            }
            Input::Message(Message::ModuleReply(reply)) => self.on_module_reply(reply),
            Input::Message(Message::EventsAck(up_to)) => self.on_ack(up_to),
            Input::Message(Message::HelloRequest) => {
                let hello = self.hello();
                self.publish(Channel::Hello, QoS::AtLeastOnce, &Message::Hello(hello));
            }
            Input::Message(other) => tracing::debug!(?other, "unexpected message kind ignored"),
            Input::Started { id, run, at_ms } => {
                let Some(inst) = self.instances.get_mut(&id).filter(|i| i.run == run) else { return };
                inst.sup.started(at_ms);
                let restarts = inst.sup.restarts;
                if run == 1 {
                    // The first start in this process: from now on a restart of the agent counts as a restart.
                    if let Err(e) = self.store.put_restarts(&id, restarts) {
                        tracing::warn!(error = %e, "cannot persist a restart counter");
                    }
                }
                self.event(&id, restarts, EventKind::Started { started_at_ms: at_ms });
            }
            Input::Exited { id, run, exit, ran_for } => self.on_exit(id, run, exit, ran_for),
            Input::ModuleUnusable { sha } => {
                self.runtime.forget(&sha);
                if let Err(e) = self.store.remove_module(&sha) {
                    tracing::warn!(error = %e, "cannot drop an unusable module");
                }
            }
            Input::RestartDue { id, run } => {
                let Some(inst) = self.instances.get_mut(&id).filter(|i| i.run == run && i.task.is_none()) else {
                    return;
                };
                inst.sup.restarting();
                if let Err(e) = self.store.put_restarts(&id, inst.sup.restarts) {
                    tracing::warn!(error = %e, "cannot persist a restart counter");
                }
                self.start(&id);
            }
        }
    }

    /// Periodic: heartbeat, events still unacknowledged, and stalled module downloads.
    pub fn tick(&mut self) {
        self.heartbeat();
        if self.awaiting_ack.is_some_and(|t| t.elapsed() >= RESEND_AFTER) {
            self.resend_events();
        }
        let stalled: Vec<Sha256> =
            self.fetches.iter().filter(|(_, f)| f.last_activity.elapsed() >= FETCH_STALL).map(|(s, _)| *s).collect();
        for sha in stalled {
            self.request_chunk(sha);
        }
        self.commit_events();
    }

    pub fn shutdown(&mut self) {
        for inst in self.instances.values_mut() {
            if let Some(t) = inst.task.take() {
                t.abort();
            }
        }
        self.runtime.shutdown();
    }

    fn is_connected(&self) -> bool {
        *self.connected.borrow()
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
            store_id: self.store_id,
            reserved: self.identity.reserved,
        }
    }

    fn heartbeat(&mut self) {
        if !self.is_connected() {
            return;
        }
        let mut instances: Vec<_> = self.instances.values().map(|i| i.sup.status()).collect();
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        let hb = Heartbeat {
            at_ms: now_ms(),
            applied_generation: self.generation,
            instances,
            events_dropped: self.events_dropped,
            last_event_seq: self.next_seq.saturating_sub(1),
            // Events of the input being handled are not in the outbox yet but already numbered: they count as
            // unacknowledged too, or the controller would take them for dropped.
            oldest_unacked_seq: self.outbox.front().or(self.fresh.first()).map_or(0, |e| e.seq),
            last_outage: self.last_outage,
        };
        self.publish(Channel::Heartbeat, QoS::AtMostOnce, &Message::Heartbeat(hb));
    }

    /// Publishes unless disconnected; false when the message could not be queued.
    fn publish(&self, channel: Channel, qos: QoS, message: &Message) -> bool {
        let Some(client) = &self.client else { return false };
        let topic = self.topics.node(&self.node, channel);
        // Never block the core on a full client queue: what matters is repeated (heartbeats, hellos) or kept
        // until acknowledged (events).
        match client.try_publish(topic, qos, false, edge_proto::encode(message)) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(channel = channel.as_str(), error = %e, "MQTT publish dropped");
                false
            }
        }
    }

    fn gap_now(&self) -> Gap {
        Gap {
            boot: false,
            started_ms: now_ms(),
            next_seq: self.next_seq,
            events_dropped: self.events_dropped,
            logs_buffered: self.log_stats.buffered.load(Ordering::Relaxed),
            logs_dropped: self.log_stats.dropped.load(Ordering::Relaxed),
        }
    }

    fn outage_from(&self, gap: &Gap) -> Outage {
        Outage {
            started_ms: gap.started_ms,
            ended_ms: now_ms(),
            events_buffered: self.next_seq - gap.next_seq,
            events_dropped: self.events_dropped - gap.events_dropped,
            logs_buffered: self.log_stats.buffered.load(Ordering::Relaxed) - gap.logs_buffered,
            logs_dropped: self.log_stats.dropped.load(Ordering::Relaxed) - gap.logs_dropped,
        }
    }

    // ---- spec ------------------------------------------------------------------------------------------------

    fn apply_spec(&mut self, spec: NodeSpec) {
        if spec.generation <= self.generation {
            return;
        }
        if let Err(e) = self.store.put_spec(&spec, now_ms()) {
            tracing::error!(error = %e, "cannot persist the new spec; not applying it");
            return;
        }
        tracing::info!(generation = spec.generation, instances = spec.instances.len(), "applying spec");
        self.generation = spec.generation;
        self.converge(spec.instances);
        let keep: std::collections::HashSet<&str> = self.instances.keys().map(String::as_str).collect();
        if let Err(e) = self.store.retain_restarts(&keep) {
            tracing::warn!(error = %e, "cannot prune restart counters");
        }
        self.evict_modules();
        self.heartbeat();
    }

    /// Keeps the module cache within its budget; modules the current spec uses always stay.
    fn evict_modules(&mut self) {
        let keep: std::collections::HashSet<Sha256> = self.instances.values().map(|i| i.spec.module).collect();
        match self.store.evict_modules(&keep, self.limits.module_budget) {
            Ok(evicted) => {
                for sha in evicted {
                    tracing::info!(module = %hex::encode(sha), "evicted an unused module from the cache");
                    self.runtime.forget(&sha);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot evict modules"),
        }
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
                if !inst.spec.volumes.is_empty() {
                    // Volumes belong to the instance: gone with it (a restart keeps them).
                    let dir = self.runtime.instance_volumes(&id);
                    if let Err(e) = std::fs::remove_dir_all(&dir) {
                        tracing::warn!(error = %e, dir = %dir.display(), "cannot remove a stopped instance's volumes");
                    }
                }
            }
        }
        for spec in desired {
            if self.instances.contains_key(&spec.id) {
                continue;
            }
            let id = spec.id.clone();
            let mut sup = Supervisor::new(id.clone(), spec.restart);
            // Started by an earlier run of this agent: starting it again is a restart.
            if let Ok(Some(before)) = self.store.restarts(&id) {
                sup.restarts = before + 1;
                if let Err(e) = self.store.put_restarts(&id, sup.restarts) {
                    tracing::warn!(error = %e, "cannot persist a restart counter");
                }
            }
            self.instances.insert(id.clone(), Instance { spec, sup, run: 0, task: None, waiting_module: false });
            self.start(&id);
        }
    }

    // ---- instances -------------------------------------------------------------------------------------------

    fn start(&mut self, id: &str) {
        let Some(inst) = self.instances.get_mut(id) else { return };
        let sha = inst.spec.module;
        let bytes = if self.runtime.is_loaded(&sha) {
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
            let module = runtime.load(spec.module, bytes.unwrap_or_default()).await;
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
                Err(e) => {
                    if matches!(e, RuntimeError::Artifact(_)) {
                        let _ = inputs.send(Input::ModuleUnusable { sha: spec.module });
                    }
                    Exit::Failed(e.to_string())
                }
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
        let seq = self.next_seq;
        self.next_seq += 1;
        tracing::info!(instance, seq, restarts, event = ?kind, "instance event");
        self.fresh.push(Event { seq, at_ms: now_ms(), instance: instance.to_string(), restarts, kind });
    }

    /// Commits the events the current input produced, then sends them if connected.
    fn commit_events(&mut self) {
        if self.fresh.is_empty() {
            return;
        }
        let fresh = std::mem::take(&mut self.fresh);
        if self.client.is_none() {
            // Standalone: nobody will ever acknowledge; the agent's log is the record.
            return;
        }
        let dropped = match self.store.append_events(&fresh, self.limits.outbox) {
            Ok(a) => a.dropped,
            Err(e) => {
                // Keep them in memory at least: they are still sent, just not crash-safe.
                tracing::error!(error = %e, "cannot persist events");
                0
            }
        };
        self.outbox.extend(fresh);
        let mut over = self.outbox.len().saturating_sub(self.limits.outbox) as u64;
        over = over.max(dropped);
        for _ in 0..over {
            self.outbox.pop_front();
        }
        self.events_dropped += over;
        self.flush_events();
    }

    /// Sends every unacknowledged event again, from the oldest.
    fn resend_events(&mut self) {
        self.sent_up_to = 0;
        self.flush_events();
    }

    /// Sends unacknowledged events not yet sent on this connection, in order, in batches.
    fn flush_events(&mut self) {
        if !self.is_connected() {
            return;
        }
        let start = self.outbox.partition_point(|e| e.seq <= self.sent_up_to);
        let pending: Vec<Event> = self.outbox.iter().skip(start).cloned().collect();
        // Batches stay well under the payload limit: events are small, 256 at a time.
        for batch in pending.chunks(256) {
            if !self.publish(Channel::Events, QoS::AtLeastOnce, &Message::Events(batch.to_vec())) {
                break; // Kept in the outbox; the resend timer tries again.
            }
            self.sent_up_to = batch.last().map_or(self.sent_up_to, |e| e.seq);
            if self.awaiting_ack.is_none() {
                self.awaiting_ack = Some(Instant::now());
            }
        }
        if start == 0 && !pending.is_empty() {
            self.awaiting_ack = Some(Instant::now());
        }
    }

    fn on_ack(&mut self, up_to: u64) {
        let before = self.outbox.len();
        while self.outbox.front().is_some_and(|e| e.seq <= up_to) {
            self.outbox.pop_front();
        }
        if self.outbox.len() == before {
            return;
        }
        if let Err(e) = self.store.ack_events(up_to) {
            tracing::warn!(error = %e, "cannot forget acknowledged events");
        }
        self.awaiting_ack = if self.outbox.is_empty() { None } else { Some(Instant::now()) };
    }

    // ---- module download -------------------------------------------------------------------------------------

    fn ensure_fetch(&mut self, sha: Sha256) {
        if self.fetches.contains_key(&sha) {
            return;
        }
        self.fetches.insert(sha, Fetch { buf: Vec::new(), sha256: None, last_activity: Instant::now() });
        self.request_chunk(sha);
    }

    fn request_chunk(&mut self, sha: Sha256) {
        let connected = self.is_connected();
        let Some(f) = self.fetches.get_mut(&sha) else { return };
        f.last_activity = Instant::now();
        if !connected {
            return;
        }
        let req = ModuleRequest {
            module: sha,
            artifact: Some(self.runtime.profile()),
            offset: f.buf.len() as u64,
            max_len: edge_proto::MODULE_CHUNK,
        };
        self.publish(Channel::ModuleRequest, QoS::AtLeastOnce, &Message::ModuleRequest(req));
    }

    fn on_module_reply(&mut self, reply: ModuleReply) {
        match reply {
            ModuleReply::NotFound { module } => {
                if self.fetches.contains_key(&module) {
                    self.fail_waiting(module, "module not found on the controller");
                }
            }
            ModuleReply::Refused { module, artifact, reason } => {
                if self.fetches.contains_key(&module) && artifact == Some(self.runtime.profile()) {
                    self.fail_waiting(module, &format!("no artifact for this node: {reason}"));
                }
            }
            ModuleReply::Chunk(chunk) => {
                let sha = chunk.module;
                let profile = self.runtime.profile();
                let Some(f) = self.fetches.get_mut(&sha) else { return };
                if chunk.offset != f.buf.len() as u64 {
                    return; // A duplicate or a stale reply; the matching one is (re)requested.
                }
                let why = if chunk.artifact != Some(profile) {
                    Some(format!(
                        "artifact download refused: built for {}, this node runs {}",
                        chunk.artifact.map_or("no engine (WebAssembly bytes)".to_string(), |p| p.target.to_string()),
                        profile.target
                    ))
                } else if chunk.total > MAX_MODULE || chunk.offset + chunk.data.len() as u64 > chunk.total {
                    Some("artifact download refused: inconsistent or oversize chunk".to_string())
                } else if f.sha256.is_some_and(|h| h != chunk.sha256) {
                    Some("artifact download refused: its announced hash changed mid-transfer".to_string())
                } else {
                    None
                };
                if let Some(why) = why {
                    f.buf.clear();
                    f.sha256 = None;
                    self.fail_waiting(sha, &why);
                    return;
                }
                f.sha256 = Some(chunk.sha256);
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
                if Some(actual) != f.sha256 {
                    self.fetches.insert(sha, Fetch { buf: Vec::new(), sha256: None, last_activity: Instant::now() });
                    self.fail_waiting(sha, "artifact download failed its sha256 check; retrying");
                    return;
                }
                if let Err(e) = self.store.put_module(&sha, &f.buf, now_ms()) {
                    tracing::error!(error = %e, "cannot store a downloaded module");
                    return;
                }
                self.evict_modules();
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

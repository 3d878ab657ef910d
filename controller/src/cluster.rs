//! The controller's whole state and every operation on it: the API and the MQTT shell both call in here.
//!
//! [`Cluster`] owns the [`Store`] and the in-memory mirror of it (workloads, nodes, modules), plus what is only
//! live (node readiness, instance statuses reported by agents, recent logs). Callers hold it behind one mutex.
//! Outgoing MQTT messages are handed to the MQTT shell through an unbounded channel, never published inline.
//!
//! **Invariants:**
//! - Every change to workloads or nodes is committed to the store before the call that made it returns.
//! - A node's spec generation grows by one exactly when the content of its spec changes.
//! - Events are applied at most once per (node, sequence number): the highest applied number is committed with
//!   the node's record before the agent is told (`EventsAck`) that it may forget them.
//! - A node is lost once it has been NotReady for `reschedule_after`; a node never heard from since this
//!   controller started counts as NotReady only from `started + node_timeout`, so a controller restart alone
//!   never moves anything.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use edge_proto::{
    quantity::format_memory, Channel, EngineProfile, EventKind, Heartbeat, Hello, InstanceState, InstanceStatus,
    LogLine, Message, ModuleChunk, ModuleReply, ModuleRequest, NodeSpec, Outage, Topics,
};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::UnboundedSender;

use crate::api::error::ApiError;
use crate::api::types::{
    ArtifactView, ConditionView, DeployRequest, EventStatsView, InstanceView, LogsResponse, ModuleView, NamespaceView,
    NodeDetail, NodeInstanceView, NodeView, OutageView, ResourcesView, RevisionView, RolloutView, StatsView,
    WorkloadView,
};
use crate::artifacts::{ArtifactRecord, Artifacts, Lookup};
use crate::clock::{now_ms, rfc3339_ms};
use crate::logbook::LogBook;
use crate::model::{
    workload_key, ModuleRecord, NamespaceRecord, NodeRecord, Quota, Usage, WorkloadRecord, WorkloadSpec,
};
use crate::reconcile::{self, Readiness, Rollout};
use crate::scheduler::{Blocker, NodeSlot};
use crate::store::{Change, Store};
use crate::validate::validate_module;

/// An MQTT message for the shell to publish.
#[derive(Debug, Clone)]
pub struct Publish {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// What is known only while the controller runs: liveness and reported state of one node.
#[derive(Debug, Default)]
struct NodeLive {
    online: bool,
    last_heartbeat: Option<Instant>,
    /// When the node, heartbeating without a known `Hello`, was last asked for one.
    hello_requested: Option<Instant>,
    /// When its Last Will (or a clean `offline` status) arrived.
    offline_at: Option<Instant>,
    last_seen_ms: Option<u64>,
    applied_generation: u64,
    instances: HashMap<String, InstanceStatus>,
    /// When this controller first saw each instance Running (its own clock: immune to agent clock skew).
    running_since: HashMap<String, Instant>,
    /// The agent-clock time of the last heartbeat: older events only count, they no longer change state.
    heartbeat_at_ms: u64,
    agent_last_event_seq: u64,
    agent_events_dropped: u64,
    last_outage: Option<Outage>,
    events_received: u64,
    events_duplicate: u64,
    events_missing: u64,
    /// Sequence numbers applied above the node's contiguous watermark (`NodeRecord::last_event_seq`): events
    /// can arrive out of order when a reconnect sends queued ones before the outbox is re-sent.
    applied_above: BTreeSet<u64>,
    recent_events: VecDeque<String>,
}

/// Recent events kept per node for `describe node`, and per workload for `describe workload`.
const RECENT_EVENTS: usize = 20;
const WORKLOAD_EVENTS: usize = 50;

/// Timing of the control loops.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A node silent for this long is NotReady.
    pub node_timeout: Duration,
    /// A node NotReady for this long is lost: its reschedulable instances are placed elsewhere.
    pub reschedule_after: Duration,
    /// During a rollout, each new instance runs this long before the next starts and an old one stops.
    pub min_ready: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            node_timeout: Duration::from_secs(6),
            reschedule_after: Duration::from_secs(30),
            min_ready: Duration::from_secs(3),
        }
    }
}

pub struct Cluster {
    store: Store,
    topics: Topics,
    node_timeout: Duration,
    reschedule_after: Duration,
    started: Instant,
    /// Ready and lost nodes as of the last reconcile pass; the periodic tick reconciles when they change.
    last_ready: BTreeSet<String>,
    last_lost: BTreeSet<String>,
    /// A pass failed (e.g. the store refused a commit): the next tick runs one again.
    dirty: bool,
    /// A new instance must run this long before the next one of a rollout starts.
    min_ready: Duration,
    /// Where each workload's rollout stood after the last pass.
    rollouts: HashMap<String, Rollout>,
    publish: UnboundedSender<Publish>,
    workloads: BTreeMap<String, WorkloadRecord>,
    nodes: BTreeMap<String, NodeRecord>,
    live: HashMap<String, NodeLive>,
    modules: BTreeMap<String, ModuleRecord>,
    namespaces: BTreeMap<String, NamespaceRecord>,
    /// Module bytes recently served to agents, so a chunked fetch does not read the store per chunk.
    module_cache: HashMap<String, std::sync::Arc<Vec<u8>>>,
    /// Precompiled modules per engine profile.
    artifacts: Artifacts,
    /// Instance id → workload key, rebuilt after every reconcile pass.
    instance_index: HashMap<String, String>,
    /// Instances recently removed from a workload, with its key, oldest first (at most [`RETIRED_INSTANCES`]).
    retired: VecDeque<(String, String)>,
    logs: LogBook,
    /// Recent events per workload key, for `describe workload`.
    workload_events: HashMap<String, VecDeque<String>>,
    counters: Counters,
    /// Each node's instances as of the last committed pass, to skip unchanged nodes.
    last_specs: HashMap<String, Vec<edge_proto::InstanceSpec>>,
    /// Node records changed in memory (hellos) and not yet committed; the next pass or tick writes them.
    unsaved_nodes: BTreeSet<String>,
    /// Instances without a node after the last pass.
    pending: usize,
}

#[derive(Debug, Default)]
struct Counters {
    hellos: u64,
    heartbeats: u64,
    events: u64,
}

const MAX_REPLICAS: u32 = 1_000;
/// How often a node heartbeating without a `Hello` is asked for one.
const HELLO_REQUEST_EVERY: Duration = Duration::from_secs(2);
/// Removed instances whose late events still reach `describe workload`.
const RETIRED_INSTANCES: usize = 1_024;
/// The namespace that exists without being created.
pub const DEFAULT_NAMESPACE: &str = "default";
const MIN_MEMORY: u64 = 64 * 1024;

impl Cluster {
    pub fn load(
        store: Store,
        topics: Topics,
        timing: Timing,
        publish: UnboundedSender<Publish>,
    ) -> Result<Cluster, crate::store::StoreError> {
        let workloads = store.load_workloads()?.into_iter().map(|w| (w.key(), w)).collect();
        let nodes = store.load_nodes()?.into_iter().map(|n| (n.name.clone(), n)).collect();
        let modules = store.load_modules()?.into_iter().map(|m| (m.sha256.clone(), m)).collect();
        let namespaces = store.load_namespaces()?.into_iter().map(|n| (n.name.clone(), n)).collect();
        let artifacts = Artifacts::new(store.load_artifacts()?);
        let mut cluster = Cluster {
            store,
            topics,
            node_timeout: timing.node_timeout,
            reschedule_after: timing.reschedule_after,
            started: Instant::now(),
            last_ready: BTreeSet::new(),
            last_lost: BTreeSet::new(),
            dirty: false,
            min_ready: timing.min_ready,
            rollouts: HashMap::new(),
            publish,
            workloads,
            nodes,
            live: HashMap::new(),
            modules,
            namespaces,
            module_cache: HashMap::new(),
            artifacts,
            instance_index: HashMap::new(),
            retired: VecDeque::new(),
            logs: LogBook::default(),
            workload_events: HashMap::new(),
            counters: Counters::default(),
            last_specs: HashMap::new(),
            unsaved_nodes: BTreeSet::new(),
            pending: 0,
        };
        cluster.rebuild_index();
        cluster.pending = cluster.workloads.values().flat_map(|w| &w.instances).filter(|i| i.node.is_none()).count();
        Ok(cluster)
    }

    // ---- modules -------------------------------------------------------------------------------------------

    /// Validates and stores a module, and queues its precompilation for every engine profile in the fleet;
    /// returns its view and whether it was new.
    pub fn upload_module(&mut self, bytes: &[u8]) -> Result<(ModuleView, bool), ApiError> {
        validate_module(bytes).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let sha = hex::encode(Sha256::digest(bytes));
        if self.modules.contains_key(&sha) {
            return Ok((self.module_view(&sha), false));
        }
        let record = ModuleRecord { sha256: sha.clone(), size: bytes.len() as u64, uploaded_ms: now_ms() };
        self.store.put_module(&record, bytes)?;
        self.modules.insert(sha.clone(), record);
        let wasm = std::sync::Arc::new(bytes.to_vec());
        let profiles: BTreeSet<EngineProfile> = self.nodes.values().filter_map(|n| n.engine_profile).collect();
        for profile in profiles {
            self.artifacts.want(&sha, &profile, || Some(wasm.clone()));
        }
        Ok((self.module_view(&sha), true))
    }

    pub fn module(&self, sha: &str) -> Option<ModuleView> {
        self.modules.contains_key(sha).then(|| self.module_view(sha))
    }

    pub fn modules(&self) -> Vec<ModuleView> {
        self.modules.keys().map(|sha| self.module_view(sha)).collect()
    }

    fn module_view(&self, sha: &str) -> ModuleView {
        let mut artifacts: Vec<ArtifactView> = self
            .artifacts
            .of_module(sha)
            .map(|a| ArtifactView {
                target: a.profile.target.to_string(),
                fingerprint: a.fingerprint.clone(),
                size: a.size,
                sha256: a.sha256.clone(),
                error: a.error.clone(),
            })
            .collect();
        artifacts.sort_by(|a, b| (&a.target, &a.fingerprint).cmp(&(&b.target, &b.fingerprint)));
        ModuleView { sha256: sha.to_string(), size: self.modules.get(sha).map_or(0, |m| m.size), artifacts }
    }

    /// Where precompilation jobs go (the controller's builder task); without one, artifacts are never built.
    pub fn set_artifact_builder(&mut self, jobs: tokio::sync::mpsc::UnboundedSender<crate::artifacts::Job>) {
        self.artifacts.set_builder(jobs);
    }

    /// Queues builds of every module in use for `profile` (a node announced it).
    fn build_for_profile(&mut self, profile: &EngineProfile) {
        let in_use: BTreeSet<String> = self.workloads.values().map(|w| w.spec.module.clone()).collect();
        for sha in in_use {
            let (store, cache) = (&self.store, &self.module_cache);
            self.artifacts.want(&sha, profile, || module_bytes(store, cache, &sha));
        }
    }

    /// A build finished: store it, then answer the agents waiting for it.
    pub fn artifact_built(
        &mut self,
        key: crate::artifacts::Key,
        profile: EngineProfile,
        result: Result<Vec<u8>, String>,
    ) {
        let (module, fingerprint) = key;
        let record = ArtifactRecord {
            size: result.as_ref().map_or(0, |b| b.len() as u64),
            sha256: result.as_ref().map_or_else(|_| String::new(), |b| hex::encode(Sha256::digest(b))),
            error: result.as_ref().err().cloned(),
            module,
            fingerprint,
            profile,
            built_ms: now_ms(),
        };
        let bytes = result.ok().map(std::sync::Arc::new);
        if let Err(e) = self.store.put_artifact(&record, bytes.as_deref().map(|b| b.as_slice())) {
            // Still serve what was built; it is compiled again after a restart.
            tracing::error!(error = %e, "cannot store an artifact");
        }
        for (node, request) in self.artifacts.built(record, bytes) {
            self.on_module_request(&node, request);
        }
    }

    // ---- namespaces ----------------------------------------------------------------------------------------

    /// Creates `name`, or replaces its quota. Returns the view and whether it was created.
    pub fn put_namespace(&mut self, name: &str, quota: Quota) -> Result<(NamespaceView, bool), ApiError> {
        check_name("namespace", name)?;
        let created = !self.namespaces.contains_key(name);
        let record = NamespaceRecord {
            name: name.to_string(),
            quota,
            created_ms: self.namespaces.get(name).map_or_else(now_ms, |n| n.created_ms),
        };
        self.store.commit(&[Change::PutNamespace(&record)])?;
        self.namespaces.insert(name.to_string(), record);
        Ok((self.namespace_view(name), created))
    }

    pub fn namespaces(&self) -> Vec<NamespaceView> {
        let mut names: Vec<&str> = self.namespaces.keys().map(String::as_str).collect();
        if !self.namespaces.contains_key(DEFAULT_NAMESPACE) {
            names.push(DEFAULT_NAMESPACE);
        }
        names.sort_unstable();
        names.into_iter().map(|n| self.namespace_view(n)).collect()
    }

    fn namespace_view(&self, name: &str) -> NamespaceView {
        let specs: Vec<&WorkloadSpec> =
            self.workloads.values().filter(|w| w.namespace == name).map(|w| &w.spec).collect();
        NamespaceView {
            name: name.to_string(),
            quota: self.namespaces.get(name).map(|n| n.quota).unwrap_or_default(),
            used: Usage::of(specs.iter().copied()),
            workloads: specs.len(),
        }
    }

    /// Refuses a deploy of `spec` as `namespace/name` that the namespace does not exist for or whose quota it
    /// would exceed (counting `spec` in place of the workload's current spec).
    fn admit(&self, namespace: &str, name: &str, spec: &WorkloadSpec) -> Result<(), ApiError> {
        let Some(ns) = self.namespaces.get(namespace) else {
            if namespace == DEFAULT_NAMESPACE {
                return Ok(());
            }
            return Err(ApiError::NotFound(format!(
                "namespace {namespace} not found (create it with: edgectl create namespace {namespace})"
            )));
        };
        let others = self.workloads.values().filter(|w| w.namespace == namespace && w.name != name).map(|w| &w.spec);
        let usage = Usage::of(others.chain([spec]));
        match ns.quota.exceeded_by(usage) {
            Some(what) => Err(ApiError::Forbidden(format!(
                "deploying {name} would exceed the quota of namespace {namespace}: {what}"
            ))),
            None => Ok(()),
        }
    }

    // ---- workloads -----------------------------------------------------------------------------------------

    pub fn deploy(&mut self, namespace: &str, name: &str, req: DeployRequest) -> Result<WorkloadView, ApiError> {
        check_name("namespace", namespace)?;
        check_name("workload name", name)?;
        let module = req.module.to_ascii_lowercase();
        if !self.modules.contains_key(&module) {
            return Err(ApiError::BadRequest(format!("module {module} has not been uploaded (POST /v1/modules)")));
        }
        if req.replicas > MAX_REPLICAS {
            return Err(ApiError::BadRequest(format!("replicas {} exceeds the limit of {MAX_REPLICAS}", req.replicas)));
        }
        if req.memory_bytes < MIN_MEMORY {
            return Err(ApiError::BadRequest(format!(
                "memory {} bytes is below the minimum of {MIN_MEMORY} (one WebAssembly page)",
                req.memory_bytes
            )));
        }
        let restart = match req.restart.as_deref() {
            None | Some("") => Default::default(),
            Some(r) => r.parse().map_err(|e| ApiError::BadRequest(format!("restart {r:?}: {e}")))?,
        };
        for (k, _) in &req.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(ApiError::BadRequest(format!("environment variable name {k:?} is invalid")));
            }
        }
        let on_node_loss = match req.on_node_loss.as_deref() {
            None | Some("") => Default::default(),
            Some(p) => p.parse().map_err(|e: String| ApiError::BadRequest(format!("on_node_loss: {e}")))?,
        };
        for (k, v) in &req.selector {
            if k.is_empty() || k.len() > 63 || v.len() > 63 || k.contains('=') || v.contains('=') {
                return Err(ApiError::BadRequest(format!("selector {k}={v} is invalid")));
            }
        }
        if let Some(limit) = req.memory_limit_bytes {
            if limit < req.memory_bytes {
                return Err(ApiError::BadRequest(format!(
                    "memory limit {} is below the memory request {}",
                    format_memory(limit),
                    format_memory(req.memory_bytes)
                )));
            }
        }
        if req.cpu_limit_millis == Some(0) {
            return Err(ApiError::BadRequest("cpu limit must be at least 1m".into()));
        }
        let mut volume_names = BTreeSet::new();
        for v in &req.volumes {
            edge_proto::validate_name(&v.name)
                .map_err(|e| ApiError::BadRequest(format!("volume name {:?}: {e}", v.name)))?;
            if v.size_bytes == 0 {
                return Err(ApiError::BadRequest(format!("volume {}: size must be more than 0", v.name)));
            }
            if !volume_names.insert(v.name.as_str()) {
                return Err(ApiError::BadRequest(format!("volume {} is declared twice", v.name)));
            }
        }
        let spec = WorkloadSpec {
            selector: req.selector,
            on_node_loss,
            module,
            replicas: req.replicas,
            cpu_millis: req.cpu_millis,
            memory_bytes: req.memory_bytes,
            env: req.env,
            args: req.args,
            restart,
            memory_limit_bytes: req.memory_limit_bytes,
            cpu_limit_millis: req.cpu_limit_millis.unwrap_or(0),
            timeout_ms: req.timeout_ms.unwrap_or(0),
            volumes: req.volumes,
        };
        self.admit(namespace, name, &spec)?;
        let key = workload_key(namespace, name);
        let previous = self.workloads.get(&key).cloned();
        let record = match previous.clone() {
            Some(mut w) => {
                if !w.spec.same_template(&spec) {
                    w.revision += 1;
                    w.remember(w.revision, &spec, now_ms());
                }
                w.spec = spec;
                w
            }
            None => {
                let mut w = WorkloadRecord {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    spec,
                    revision: 1,
                    instances: Vec::new(),
                    created_ms: now_ms(),
                    history: Vec::new(),
                };
                w.remember(1, &w.spec.clone(), w.created_ms);
                w
            }
        };
        self.workloads.insert(key.clone(), record);
        if let Err(e) = self.reconcile() {
            // Keep memory equal to the store: undo the change that could not be committed.
            match previous {
                Some(w) => self.workloads.insert(key, w),
                None => self.workloads.remove(&key),
            };
            return Err(e);
        }
        Ok(self.workload_view(&self.workloads[&workload_key(namespace, name)]))
    }

    /// `edgectl rollout undo`: rolls out the template of revision `to` (default: the one before the current) as
    /// a new revision, keeping the current replica count.
    pub fn rollout_undo(&mut self, namespace: &str, name: &str, to: Option<u64>) -> Result<WorkloadView, ApiError> {
        let key = workload_key(namespace, name);
        let w = self
            .workloads
            .get(&key)
            .ok_or_else(|| ApiError::NotFound(format!("workload {name} not found in namespace {namespace}")))?;
        let target = match to {
            Some(r) => w.history.iter().find(|h| h.revision == r),
            None => w.history.iter().rev().find(|h| h.revision < w.revision && !h.spec.same_template(&w.spec)),
        };
        let Some(target) = target else {
            return Err(ApiError::BadRequest(match to {
                Some(r) => format!("workload {name} has no revision {r} in its history"),
                None => format!("workload {name} has no earlier revision to go back to"),
            }));
        };
        let spec = WorkloadSpec { replicas: w.spec.replicas, ..target.spec.clone() };
        let req = DeployRequest {
            module: spec.module.clone(),
            replicas: spec.replicas,
            cpu_millis: spec.cpu_millis,
            memory_bytes: spec.memory_bytes,
            env: spec.env,
            args: spec.args,
            restart: Some(spec.restart.as_str().to_string()),
            on_node_loss: Some(spec.on_node_loss.as_str().to_string()),
            selector: spec.selector,
            memory_limit_bytes: spec.memory_limit_bytes,
            cpu_limit_millis: (spec.cpu_limit_millis > 0).then_some(spec.cpu_limit_millis),
            timeout_ms: (spec.timeout_ms > 0).then_some(spec.timeout_ms),
            volumes: spec.volumes,
        };
        self.deploy(namespace, name, req)
    }

    pub fn delete(&mut self, namespace: &str, name: &str) -> Result<(), ApiError> {
        let key = workload_key(namespace, name);
        let Some(previous) = self.workloads.remove(&key) else {
            return Err(ApiError::NotFound(format!("workload {name} not found in namespace {namespace}")));
        };
        self.store.commit(&[Change::DeleteWorkload(key.clone())]).inspect_err(|_| {
            self.workloads.insert(key.clone(), previous);
        })?;
        self.logs.forget(&key);
        self.workload_events.remove(&key);
        self.reconcile()
    }

    pub fn workloads(&self, namespace: Option<&str>) -> Vec<WorkloadView> {
        self.workloads
            .values()
            .filter(|w| namespace.is_none_or(|ns| w.namespace == ns))
            .map(|w| self.workload_view(w))
            .collect()
    }

    pub fn workload(&self, namespace: &str, name: &str) -> Result<WorkloadView, ApiError> {
        self.workloads
            .get(&workload_key(namespace, name))
            .map(|w| self.workload_view(w))
            .ok_or_else(|| ApiError::NotFound(format!("workload {name} not found in namespace {namespace}")))
    }

    pub fn logs(&self, namespace: &str, name: &str, since: u64, limit: usize) -> Result<LogsResponse, ApiError> {
        let key = workload_key(namespace, name);
        if !self.workloads.contains_key(&key) {
            return Err(ApiError::NotFound(format!("workload {name} not found in namespace {namespace}")));
        }
        let (lines, next) = self.logs.read(&key, since, limit);
        Ok(LogsResponse { lines, next })
    }

    fn workload_view(&self, w: &WorkloadRecord) -> WorkloadView {
        let instances = w
            .instances
            .iter()
            .map(|i| {
                let mut view = InstanceView {
                    id: i.id.clone(),
                    node: i.node.clone(),
                    state: "Pending".into(),
                    restarts: 0,
                    started_at: None,
                    exit_code: None,
                    reason: i.reason.clone(),
                };
                if let Some(node) = &i.node {
                    let live = self.live.get(node);
                    match live.and_then(|l| l.instances.get(&i.id)) {
                        Some(s) => {
                            view.state = s.state.as_str().into();
                            view.restarts = s.restarts;
                            view.started_at = s.started_at_ms.map(rfc3339_ms);
                            view.exit_code = s.exit_code;
                            view.reason = s.reason.clone();
                        }
                        None => view.reason = Some(format!("scheduled to {node}, waiting for its agent")),
                    }
                    if !self.is_ready(node) {
                        view.state = "Unknown".into();
                        view.reason = Some(format!("node {node} is not ready"));
                    }
                }
                view
            })
            .collect();
        WorkloadView {
            name: w.name.clone(),
            namespace: w.namespace.clone(),
            replicas: w.spec.replicas,
            module: w.spec.module.clone(),
            cpu_millis: w.spec.cpu_millis,
            memory_bytes: w.spec.memory_bytes,
            restart: w.spec.restart.as_str().into(),
            on_node_loss: w.spec.on_node_loss.as_str().into(),
            selector: w.spec.selector.clone(),
            env: w.spec.env.clone(),
            args: w.spec.args.clone(),
            revision: w.revision,
            instances,
            rollout: self.rollout_view(w),
            revisions: w
                .history
                .iter()
                .map(|h| RevisionView {
                    revision: h.revision,
                    module: h.spec.module.clone(),
                    created: rfc3339_ms(h.created_ms),
                    cpu_millis: h.spec.cpu_millis,
                    memory_bytes: h.spec.memory_bytes,
                    env: h.spec.env.clone(),
                    args: h.spec.args.clone(),
                })
                .collect(),
        }
    }

    fn rollout_view(&self, w: &WorkloadRecord) -> RolloutView {
        let readiness = self.readiness();
        let new: Vec<&str> = w.instances.iter().filter(|i| i.revision == w.revision).map(|i| i.id.as_str()).collect();
        let ready = new.iter().filter(|id| readiness.get(**id) == Some(&Readiness::Ready)).count();
        let (state, reason) = match self.rollouts.get(&w.key()) {
            Some(Rollout::Halted(why)) => ("halted", Some(why.clone())),
            Some(Rollout::Progressing) => ("progressing", None),
            _ => ("complete", None),
        };
        RolloutView { state: state.into(), reason, updated: new.len(), ready, old: w.instances.len() - new.len() }
    }

    /// Recent lifecycle events of a workload's instances, oldest first.
    pub fn workload_events(&self, namespace: &str, name: &str) -> Result<Vec<String>, ApiError> {
        let key = workload_key(namespace, name);
        if !self.workloads.contains_key(&key) {
            return Err(ApiError::NotFound(format!("workload {name} not found in namespace {namespace}")));
        }
        Ok(self.workload_events.get(&key).map(|e| e.iter().cloned().collect()).unwrap_or_default())
    }

    // ---- nodes ---------------------------------------------------------------------------------------------

    fn is_ready(&self, node: &str) -> bool {
        self.live
            .get(node)
            .is_some_and(|l| l.online && l.last_heartbeat.is_some_and(|t| t.elapsed() < self.node_timeout))
    }

    /// When `node` became NotReady (possibly in the future for a node not heard from since this controller
    /// started: it gets one `node_timeout` of grace); `None` while it is Ready.
    fn not_ready_since(&self, node: &str) -> Option<Instant> {
        if self.is_ready(node) {
            return None;
        }
        let live = self.live.get(node);
        let silent = live.and_then(|l| l.last_heartbeat).unwrap_or(self.started) + self.node_timeout;
        match live.filter(|l| !l.online).and_then(|l| l.offline_at) {
            Some(will) => Some(will.min(silent)),
            None => Some(silent),
        }
    }

    fn is_lost(&self, node: &str) -> bool {
        self.not_ready_since(node).is_some_and(|t| Instant::now().saturating_duration_since(t) >= self.reschedule_after)
    }

    fn ready_condition(&self, node: &str) -> ConditionView {
        let live = self.live.get(node);
        let (status, reason) = if self.is_ready(node) {
            (true, "heartbeats are current".to_string())
        } else {
            match live {
                None => (false, "not heard from since the controller started".to_string()),
                Some(l) if !l.online && l.offline_at.is_some() => {
                    (false, "its MQTT connection closed (Last Will received)".to_string())
                }
                Some(l) => match l.last_heartbeat {
                    Some(t) => (false, format!("no heartbeat for {:.1} s", t.elapsed().as_secs_f64())),
                    None => (false, "no heartbeat yet".to_string()),
                },
            }
        };
        let since = self.not_ready_since(node).map(|t| {
            let ago = Instant::now().saturating_duration_since(t);
            rfc3339_ms(now_ms().saturating_sub(ago.as_millis() as u64))
        });
        ConditionView { kind: "Ready".into(), status, reason, since }
    }

    fn allocated(&self) -> HashMap<&str, edge_proto::Resources> {
        let mut out: HashMap<&str, edge_proto::Resources> = HashMap::new();
        for w in self.workloads.values() {
            for i in &w.instances {
                if let Some(n) = &i.node {
                    let e = out.entry(n.as_str()).or_default();
                    *e = e.saturating_add(w.spec.request());
                }
            }
        }
        out
    }

    pub fn nodes(&self) -> Vec<NodeView> {
        let allocated = self.allocated();
        self.nodes
            .values()
            .map(|n| {
                let live = self.live.get(&n.name);
                let alloc = allocated.get(n.name.as_str()).copied().unwrap_or_default();
                NodeView {
                    name: n.name.clone(),
                    status: if self.is_ready(&n.name) { "Ready" } else { "NotReady" }.into(),
                    capacity: ResourcesView {
                        cpu_millis: n.capacity.cpu_millis,
                        memory_bytes: n.capacity.memory_bytes,
                    },
                    allocatable: ResourcesView {
                        cpu_millis: n.allocatable().cpu_millis,
                        memory_bytes: n.allocatable().memory_bytes,
                    },
                    allocated: ResourcesView { cpu_millis: alloc.cpu_millis, memory_bytes: alloc.memory_bytes },
                    labels: n.effective_labels(),
                    cordoned: n.cordoned,
                    board: n.board.clone(),
                    arch: n.arch.clone(),
                    engine: n.engine.to_string(),
                    agent_version: n.agent_version.clone(),
                    last_seen: live
                        .and_then(|l| l.last_seen_ms)
                        .or(Some(n.last_seen_ms).filter(|ms| *ms > 0))
                        .map(rfc3339_ms),
                    generation: live.map_or(0, |l| l.applied_generation),
                    spec_generation: n.spec_generation,
                    disconnected: !self.is_ready(&n.name),
                    instances: live.map_or(0, |l| l.instances.len()),
                }
            })
            .collect()
    }

    /// `edgectl cordon` / `uncordon`: whether the scheduler may place new instances on `name`.
    pub fn cordon(&mut self, name: &str, cordoned: bool) -> Result<NodeView, ApiError> {
        self.update_node(name, |n| n.cordoned = cordoned)?;
        self.reconcile()?;
        self.node_view(name)
    }

    /// `edgectl drain`: cordons `name` and moves its reschedulable instances to other nodes.
    pub fn drain(&mut self, name: &str) -> Result<NodeView, ApiError> {
        self.update_node(name, |n| n.cordoned = true)?;
        self.reconcile_draining(&HashSet::from([name.to_string()]))?;
        self.node_view(name)
    }

    /// `edgectl label node`: sets and removes user labels (which override the agent's; the agent's own labels
    /// come from its configuration and return with its next hello).
    pub fn label(
        &mut self,
        name: &str,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
    ) -> Result<NodeView, ApiError> {
        for (k, v) in &set {
            if k.is_empty() || k.len() > 63 || v.len() > 63 || k.contains('=') || v.contains('=') {
                return Err(ApiError::BadRequest(format!("label {k}={v} is invalid")));
            }
        }
        self.update_node(name, |n| {
            for k in &remove {
                n.user_labels.remove(k);
            }
            n.user_labels.extend(set);
        })?;
        self.reconcile()?;
        self.node_view(name)
    }

    fn update_node(&mut self, name: &str, change: impl FnOnce(&mut NodeRecord)) -> Result<(), ApiError> {
        let mut record =
            self.nodes.get(name).cloned().ok_or_else(|| ApiError::NotFound(format!("node {name} not found")))?;
        change(&mut record);
        self.store.commit(&[Change::PutNode(&record)])?;
        self.nodes.insert(name.to_string(), record);
        Ok(())
    }

    fn node_view(&self, name: &str) -> Result<NodeView, ApiError> {
        self.nodes()
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| ApiError::NotFound(format!("node {name} not found")))
    }

    /// Everything `edgectl describe node` shows.
    pub fn node_detail(&self, name: &str) -> Result<NodeDetail, ApiError> {
        let node = self.node_view(name)?;
        let record = &self.nodes[name];
        let live = self.live.get(name);
        let mut instances = Vec::new();
        for w in self.workloads.values() {
            for i in w.instances.iter().filter(|i| i.node.as_deref() == Some(name)) {
                let status = live.and_then(|l| l.instances.get(&i.id));
                instances.push(NodeInstanceView {
                    id: i.id.clone(),
                    namespace: w.namespace.clone(),
                    workload: w.name.clone(),
                    state: match (self.is_ready(name), status) {
                        (false, _) => "Unknown".into(),
                        (true, Some(s)) => s.state.as_str().into(),
                        (true, None) => "Pending".into(),
                    },
                    restarts: status.map_or(0, |s| s.restarts),
                    started_at: status.and_then(|s| s.started_at_ms).map(rfc3339_ms),
                    cpu_millis: w.spec.cpu_millis,
                    memory_bytes: w.spec.memory_bytes,
                });
            }
        }
        let events = EventStatsView {
            applied_up_to: record.last_event_seq,
            agent_last_seq: live.map_or(0, |l| l.agent_last_event_seq),
            received: live.map_or(0, |l| l.events_received),
            duplicates: live.map_or(0, |l| l.events_duplicate),
            missing: live.map_or(0, |l| l.events_missing),
            dropped_by_agent: live.map_or(0, |l| l.agent_events_dropped),
            recent: live.map_or_else(Vec::new, |l| l.recent_events.iter().cloned().collect()),
        };
        let last_outage = live.and_then(|l| l.last_outage).map(|o| OutageView {
            started: rfc3339_ms(o.started_ms),
            ended: rfc3339_ms(o.ended_ms),
            duration_ms: o.ended_ms.saturating_sub(o.started_ms),
            events_buffered: o.events_buffered,
            events_dropped: o.events_dropped,
            logs_buffered: o.logs_buffered,
            logs_dropped: o.logs_dropped,
        });
        Ok(NodeDetail { conditions: vec![self.ready_condition(name)], node, instances, events, last_outage })
    }

    // ---- reconcile -----------------------------------------------------------------------------------------

    /// One idempotent pass: replicas kept, pending instances placed, changed node specs committed and published.
    pub fn reconcile(&mut self) -> Result<(), ApiError> {
        self.reconcile_draining(&HashSet::new())
    }

    /// A pass that also moves reschedulable instances off `draining` nodes, as if those nodes were lost.
    fn reconcile_draining(&mut self, draining: &HashSet<String>) -> Result<(), ApiError> {
        let mut changed: Vec<String> = Vec::new();
        let taken: std::collections::HashSet<String> =
            self.workloads.values().flat_map(|w| w.instances.iter().map(|i| i.id.clone())).collect();
        let mut new_id = unique_ids(taken);
        self.last_ready = self.nodes.keys().filter(|n| self.is_ready(n)).cloned().collect();
        self.last_lost = self.nodes.keys().filter(|n| self.is_lost(n)).cloned().collect();
        let lost: HashSet<String> = self.last_lost.iter().chain(draining).cloned().collect();
        let readiness = self.readiness();
        let ready_of = |id: &str| readiness.get(id).copied().unwrap_or(Readiness::NotYet);
        let mut rollouts = HashMap::new();
        for (key, w) in self.workloads.iter_mut() {
            let (pruned, rollout) = reconcile::prune(w, &mut new_id, ready_of);
            if let Rollout::Halted(why) = &rollout {
                if self.rollouts.get(key) != Some(&rollout) {
                    tracing::warn!(workload = %key, reason = %why, "rollout halted");
                }
            }
            rollouts.insert(key.clone(), rollout);
            let replaced = reconcile::replace_lost(w, &lost, &mut new_id);
            if replaced {
                tracing::info!(workload = %key, "rescheduling instances off lost or drained nodes");
            }
            if pruned || replaced {
                changed.push(key.clone());
            }
        }
        self.rollouts = rollouts;
        let any_failed = self.artifacts.any_failed();
        let slots: Vec<NodeSlot> = self
            .nodes
            .values()
            .map(|n| {
                // Fingerprints (a sha256 per node) matter only when some module cannot run somewhere.
                let engine = if any_failed { n.engine_profile.as_ref().map(edge_engine::fingerprint) } else { None };
                let mut slot = NodeSlot::new(n.name.clone(), n.allocatable())
                    .with_labels(n.effective_labels())
                    .with_engine(engine);
                if !self.is_ready(&n.name) {
                    slot.blocker = Some(Blocker::NotReady);
                } else if n.cordoned {
                    slot.blocker = Some(Blocker::Cordoned);
                }
                slot
            })
            .collect();
        let mut snap = reconcile::snapshot(slots, self.workloads.values());
        let artifacts = &self.artifacts;
        for (key, w) in self.workloads.iter_mut() {
            let cannot_run = artifacts.failed_fingerprints(&w.spec.module);
            if reconcile::place_pending(w, &mut snap, &cannot_run) && !changed.contains(key) {
                changed.push(key.clone());
            }
        }
        let modules = &self.modules;
        let mut specs = reconcile::node_specs(self.workloads.values(), |sha| modules.get(sha).map(|m| m.size));
        let mut node_updates: Vec<NodeRecord> = Vec::new();
        let mut publishes = Vec::new();
        let mut seen: Vec<(String, Vec<edge_proto::InstanceSpec>)> = Vec::new();
        for node in self.nodes.values() {
            let instances = specs.remove(&node.name).unwrap_or_default();
            // Unchanged since the last pass: skip hashing (with thousands of nodes, most passes change few).
            if self.last_specs.get(&node.name) == Some(&instances) {
                continue;
            }
            seen.push((node.name.clone(), instances.clone()));
            let hash = hex::encode(Sha256::digest(edge_proto::encode(&Message::Spec(NodeSpec {
                generation: 0,
                instances: instances.clone(),
            }))));
            if hash != node.spec_hash {
                let mut updated = node.clone();
                updated.spec_generation += 1;
                updated.spec_hash = hash;
                publishes.push(self.spec_publish(&updated.name, updated.spec_generation, instances));
                node_updates.push(updated);
            }
        }
        let mut batch: Vec<Change<'_>> =
            changed.iter().filter_map(|k| self.workloads.get(k)).map(Change::PutWorkload).collect();
        batch.extend(node_updates.iter().map(Change::PutNode));
        let updated: HashSet<&str> = node_updates.iter().map(|n| n.name.as_str()).collect();
        batch.extend(
            self.unsaved_nodes
                .iter()
                .filter(|n| !updated.contains(n.as_str()))
                .filter_map(|n| self.nodes.get(n))
                .map(Change::PutNode),
        );
        self.dirty = false;
        if let Err(e) = self.store.commit(&batch) {
            self.dirty = true;
            // Reload what the store holds so memory never runs ahead of it.
            if let Ok(ws) = self.store.load_workloads() {
                self.workloads = ws.into_iter().map(|w| (w.key(), w)).collect();
            }
            return Err(e.into());
        }
        for n in node_updates {
            self.nodes.insert(n.name.clone(), n);
        }
        self.unsaved_nodes.clear();
        self.last_specs.extend(seen);
        self.pending = self.workloads.values().flat_map(|w| &w.instances).filter(|i| i.node.is_none()).count();
        for p in publishes {
            let _ = self.publish.send(p);
        }
        self.rebuild_index();
        Ok(())
    }

    /// Asks a node heard from without a `Hello` to send one (its first was lost), at most every
    /// [`HELLO_REQUEST_EVERY`].
    fn ask_for_hello(&mut self, node: &str) {
        let Some(live) = self.live.get_mut(node) else { return };
        if live.hello_requested.is_some_and(|t| t.elapsed() < HELLO_REQUEST_EVERY) {
            return;
        }
        live.hello_requested = Some(Instant::now());
        let _ = self.publish.send(Publish {
            topic: self.topics.node(node, Channel::Ack),
            payload: edge_proto::encode(&Message::HelloRequest),
            retain: false,
        });
    }

    fn spec_publish(&self, node: &str, generation: u64, instances: Vec<edge_proto::InstanceSpec>) -> Publish {
        Publish {
            topic: self.topics.node(node, Channel::Spec),
            payload: edge_proto::encode(&Message::Spec(NodeSpec { generation, instances })),
            retain: true,
        }
    }

    /// Every node's current spec, for re-publishing when the controller's MQTT connection comes (back) up.
    pub fn republish_all(&self) {
        let modules = &self.modules;
        let mut specs = reconcile::node_specs(self.workloads.values(), |sha| modules.get(sha).map(|m| m.size));
        for node in self.nodes.values() {
            let instances = specs.remove(&node.name).unwrap_or_default();
            let _ = self.publish.send(self.spec_publish(&node.name, node.spec_generation, instances));
        }
    }

    /// Readiness of every instance some node reports, for rollouts: Ready once the controller has seen it
    /// Running for `min_ready` (or it succeeded), Failing when crash-looping or failed.
    fn readiness(&self) -> HashMap<String, Readiness> {
        let mut out = HashMap::new();
        for live in self.live.values() {
            for (id, st) in &live.instances {
                let r = match st.state {
                    InstanceState::Succeeded => Readiness::Ready,
                    InstanceState::CrashLoopBackOff | InstanceState::Failed => Readiness::Failing,
                    InstanceState::Running
                        if live.running_since.get(id).is_some_and(|t| t.elapsed() >= self.min_ready) =>
                    {
                        Readiness::Ready
                    }
                    _ => Readiness::NotYet,
                };
                out.insert(id.clone(), r);
            }
        }
        out
    }

    fn rebuild_index(&mut self) {
        let index: HashMap<String, String> =
            self.workloads.values().flat_map(|w| w.instances.iter().map(move |i| (i.id.clone(), w.key()))).collect();
        // Instances that just left their workload (old revisions, scale-down, moved off a lost node) still
        // report their last events (Stopped); keep them findable for a while, oldest forgotten first.
        let old = std::mem::replace(&mut self.instance_index, index);
        for (id, key) in old {
            if !self.instance_index.contains_key(&id) && self.workloads.contains_key(&key) {
                self.retired.push_back((id, key));
            }
        }
        while self.retired.len() > RETIRED_INSTANCES {
            self.retired.pop_front();
        }
    }

    /// Periodic work: a pass when a node became Ready, NotReady or lost since the last one (cheap otherwise,
    /// so it can run often and notice a lost node promptly).
    pub fn tick(&mut self) -> Result<(), ApiError> {
        let ready: BTreeSet<String> = self.nodes.keys().filter(|n| self.is_ready(n)).cloned().collect();
        let lost: BTreeSet<String> = self.nodes.keys().filter(|n| self.is_lost(n)).cloned().collect();
        let rolling = self.rollouts.values().any(|r| *r != Rollout::Complete);
        if self.dirty || rolling || ready != self.last_ready || lost != self.last_lost {
            self.reconcile()?;
        } else if !self.unsaved_nodes.is_empty() {
            let batch: Vec<Change<'_>> =
                self.unsaved_nodes.iter().filter_map(|n| self.nodes.get(n)).map(Change::PutNode).collect();
            self.store.commit(&batch)?;
            self.unsaved_nodes.clear();
        }
        Ok(())
    }

    // ---- uplink (agents → controller) ----------------------------------------------------------------------

    /// Handles one message from an agent. Garbage is logged and dropped; it never fails the controller.
    pub fn on_uplink(&mut self, node: &str, channel: Channel, payload: &[u8]) {
        if edge_proto::validate_name(node).is_err() {
            tracing::warn!(node, "message from a node with an invalid name ignored");
            return;
        }
        let envelope = match edge_proto::decode(payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(node, channel = channel.as_str(), error = %e, "undecodable message ignored");
                return;
            }
        };
        let result = match (channel, envelope.message) {
            (Channel::Status, Message::Status(s)) => self.on_status(node, s.online),
            (Channel::Hello, Message::Hello(h)) => self.on_hello(node, h),
            (Channel::Heartbeat, Message::Heartbeat(h)) => self.on_heartbeat(node, h),
            (Channel::Events, Message::Events(events)) => {
                self.on_events(node, events);
                Ok(())
            }
            (Channel::Logs, Message::Logs(lines)) => {
                self.on_logs(node, lines);
                Ok(())
            }
            (Channel::ModuleRequest, Message::ModuleRequest(r)) => {
                self.on_module_request(node, r);
                Ok(())
            }
            (channel, _) => {
                tracing::warn!(node, channel = channel.as_str(), "message of the wrong kind for its topic ignored");
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::error!(node, error = %e, "could not apply a message from a node");
        }
    }

    fn on_status(&mut self, node: &str, online: bool) -> Result<(), ApiError> {
        let live = self.live.entry(node.to_string()).or_default();
        let was_ready = live.online;
        live.online = online;
        if !online {
            // `last_heartbeat` stays: NotReady-since is the earlier of the Last Will and the heartbeat silence,
            // never the controller's start (which would count a long-running node as lost at once).
            live.offline_at = Some(Instant::now());
        }
        if was_ready != online && self.nodes.contains_key(node) {
            self.reconcile()?;
        }
        Ok(())
    }

    pub fn stats(&self) -> StatsView {
        StatsView {
            nodes: self.nodes.len(),
            ready_nodes: self.nodes.keys().filter(|n| self.is_ready(n)).count(),
            workloads: self.workloads.len(),
            instances: self.workloads.values().map(|w| w.instances.len()).sum(),
            hellos: self.counters.hellos,
            heartbeats: self.counters.heartbeats,
            events: self.counters.events,
        }
    }

    fn on_hello(&mut self, node: &str, h: Hello) -> Result<(), ApiError> {
        self.counters.hellos += 1;
        let now = now_ms();
        let live = self.live.entry(node.to_string()).or_default();
        live.online = true;
        live.last_heartbeat = Some(Instant::now());
        live.last_seen_ms = Some(now);
        live.applied_generation = h.applied_generation;
        let labels: BTreeMap<String, String> = h.labels.into_iter().collect();
        let mut record = self.nodes.get(node).cloned().unwrap_or_else(|| NodeRecord {
            name: node.to_string(),
            board: String::new(),
            arch: String::new(),
            engine: h.engine.target,
            engine_profile: None,
            agent_version: String::new(),
            capacity: h.capacity,
            reserved: h.reserved,
            labels: BTreeMap::new(),
            spec_generation: 0,
            spec_hash: String::new(),
            first_seen_ms: now,
            store_id: h.store_id,
            last_event_seq: 0,
            last_seen_ms: now,
            cordoned: false,
            user_labels: BTreeMap::new(),
        });
        if record.store_id != h.store_id {
            tracing::info!(node, "the node's agent store is new: its event numbering starts again");
            record.store_id = h.store_id;
            record.last_event_seq = 0;
            if let Some(live) = self.live.get_mut(node) {
                live.applied_above.clear();
            }
        }
        record.last_seen_ms = now;
        record.board = h.board;
        record.arch = h.arch;
        record.engine = h.engine.target;
        let new_profile = record.engine_profile != Some(h.engine);
        record.engine_profile = Some(h.engine);
        record.agent_version = h.agent_version;
        record.capacity = h.capacity;
        record.reserved = h.reserved;
        record.labels = labels;
        if h.applied_generation > record.spec_generation {
            // The agent ran a newer spec than this store remembers (the store was replaced): move past it so
            // the agent accepts what this controller decides.
            record.spec_generation = h.applied_generation;
            record.spec_hash.clear();
            self.last_specs.remove(node);
        }
        let new_spec_needed = record.spec_hash.is_empty() && record.spec_generation > 0;
        if self.nodes.get(node) != Some(&record) {
            // Written with the next pass or tick (a batch): a hello is not a user's write, and the agent says it
            // again on its next connection. Spec generations are committed before any spec is published.
            self.nodes.insert(node.to_string(), record);
            self.unsaved_nodes.insert(node.to_string());
        }
        if new_profile {
            self.build_for_profile(&h.engine);
        }
        if self.pending > 0 || new_spec_needed {
            self.reconcile()?;
        }
        // The retained spec may have been lost with a broker restart; send it again (same generation: a no-op
        // for an agent that has it).
        let generation = self.nodes[node].spec_generation;
        if generation > 0 {
            let instances = match self.last_specs.get(node) {
                Some(i) => i.clone(),
                None => {
                    let modules = &self.modules;
                    let specs = reconcile::node_specs(self.workloads.values(), |sha| modules.get(sha).map(|m| m.size));
                    specs.get(node).cloned().unwrap_or_default()
                }
            };
            let _ = self.publish.send(self.spec_publish(node, generation, instances));
        }
        Ok(())
    }

    fn on_heartbeat(&mut self, node: &str, h: Heartbeat) -> Result<(), ApiError> {
        self.counters.heartbeats += 1;
        let live = self.live.entry(node.to_string()).or_default();
        let was_ready = live.online && live.last_heartbeat.is_some_and(|t| t.elapsed() < self.node_timeout);
        live.online = true;
        live.last_heartbeat = Some(Instant::now());
        live.last_seen_ms = Some(now_ms());
        live.applied_generation = h.applied_generation;
        live.instances = h.instances.into_iter().map(|s| (s.id.clone(), s)).collect();
        track_running(live);
        live.heartbeat_at_ms = h.at_ms;
        live.agent_last_event_seq = h.last_event_seq;
        // Everything below the agent's oldest unacknowledged event was applied here or is gone for good.
        let floor = if h.oldest_unacked_seq == 0 { h.last_event_seq } else { h.oldest_unacked_seq - 1 };
        live.agent_events_dropped = h.events_dropped;
        live.last_outage = h.last_outage;
        if !self.nodes.contains_key(node) {
            self.ask_for_hello(node);
        }
        if let Some(record) = self.nodes.get(node) {
            if floor > record.last_event_seq {
                let mut w = record.last_event_seq;
                let live = self.live.get_mut(node).expect("just inserted");
                while w < floor {
                    w += 1;
                    if !live.applied_above.remove(&w) {
                        live.events_missing += 1;
                    }
                }
                while live.applied_above.remove(&(w + 1)) {
                    w += 1;
                }
                let mut updated = record.clone();
                updated.last_event_seq = w;
                self.store.commit(&[Change::PutNode(&updated)])?;
                self.nodes.insert(node.to_string(), updated);
            }
        }
        if !was_ready && self.nodes.contains_key(node) {
            self.reconcile()?;
        }
        Ok(())
    }

    fn on_events(&mut self, node: &str, events: Vec<edge_proto::Event>) {
        let Some(record) = self.nodes.get(node) else {
            // Not announced yet (its hello comes first on every connection): the agent sends these again.
            tracing::debug!(node, "events from a node that has not said hello ignored");
            return;
        };
        let mut last = record.last_event_seq;
        let live = self.live.entry(node.to_string()).or_default();
        live.last_seen_ms = Some(now_ms());
        for e in events {
            if e.seq <= last || live.applied_above.contains(&e.seq) {
                live.events_duplicate += 1;
                continue;
            }
            // Apply, then move the watermark over what is now contiguous. A gap stays open until the event
            // arrives (re-sent from the agent's outbox) or the agent's heartbeat says it was dropped.
            live.applied_above.insert(e.seq);
            while live.applied_above.remove(&(last + 1)) {
                last += 1;
            }
            live.events_received += 1;
            self.counters.events += 1;
            if live.recent_events.len() >= RECENT_EVENTS {
                live.recent_events.pop_front();
            }
            let line = format!("{} #{} {} {:?}", rfc3339_ms(e.at_ms), e.seq, e.instance, e.kind);
            if let Some(key) = workload_of(&self.instance_index, &self.retired, &e.instance).cloned() {
                let ring = self.workload_events.entry(key).or_default();
                if ring.len() >= WORKLOAD_EVENTS {
                    ring.pop_front();
                }
                ring.push_back(format!("{line} on {node}"));
            }
            live.recent_events.push_back(line);
            if e.at_ms < live.heartbeat_at_ms {
                continue; // Replayed from the outbox: the last heartbeat already says how things stand.
            }
            let status = live.instances.entry(e.instance.clone()).or_insert_with(|| InstanceStatus {
                id: e.instance.clone(),
                state: InstanceState::Starting,
                restarts: 0,
                started_at_ms: None,
                exit_code: None,
                reason: None,
            });
            status.restarts = e.restarts;
            match e.kind {
                EventKind::Starting => status.state = InstanceState::Starting,
                EventKind::Started { started_at_ms } => {
                    status.state = InstanceState::Running;
                    status.started_at_ms = Some(started_at_ms);
                    status.exit_code = None;
                    status.reason = None;
                }
                EventKind::Exited { code } => {
                    status.state = if code == 0 { InstanceState::Succeeded } else { InstanceState::Failed };
                    status.exit_code = Some(code);
                }
                EventKind::Trapped { reason } | EventKind::Failed { reason } => {
                    status.state = InstanceState::Failed;
                    status.reason = Some(reason);
                }
                EventKind::BackOff { delay_ms } => {
                    status.state = InstanceState::CrashLoopBackOff;
                    status.reason = Some(format!("back-off {delay_ms} ms before restarting"));
                }
                EventKind::Stopped => {
                    live.instances.remove(&e.instance);
                }
            }
        }
        track_running(live);
        if last != record.last_event_seq {
            let mut updated = record.clone();
            updated.last_event_seq = last;
            if let Err(e) = self.store.commit(&[Change::PutNode(&updated)]) {
                // Not acknowledged: the agent keeps them and sends them again.
                tracing::error!(node, error = %e, "cannot persist the event sequence; not acknowledging");
                return;
            }
            self.nodes.insert(node.to_string(), updated);
        }
        let _ = self.publish.send(Publish {
            topic: self.topics.node(node, Channel::Ack),
            payload: edge_proto::encode(&Message::EventsAck(last)),
            retain: false,
        });
    }

    fn on_logs(&mut self, node: &str, lines: Vec<LogLine>) {
        for line in lines {
            if let Some(key) = self.instance_index.get(&line.instance) {
                self.logs.push(key, node, line);
            }
        }
    }

    /// Serves one chunk of a module (WebAssembly bytes) or of its artifact for the agent's profile. An
    /// artifact still being built is answered when it is ready; one that cannot be built is refused with why.
    fn on_module_request(&mut self, node: &str, r: ModuleRequest) {
        let sha = hex::encode(r.module);
        let topic = self.topics.node(node, Channel::ModuleChunk);
        let payload = match r.artifact {
            None => module_bytes(&self.store, &self.module_cache, &sha).map(|b| {
                if !self.module_cache.contains_key(&sha) {
                    if self.module_cache.len() >= 16 {
                        self.module_cache.clear();
                    }
                    self.module_cache.insert(sha.clone(), b.clone());
                }
                (b, r.module)
            }),
            Some(profile) if self.modules.contains_key(&sha) => {
                let key = crate::artifacts::key(&sha, &profile);
                match self.artifacts.lookup(&key) {
                    Lookup::Ready(record) => {
                        let bytes = self.artifacts.cached(&key).or_else(|| {
                            let b = self.store.artifact_bytes(&key.0, &key.1).ok().flatten().map(std::sync::Arc::new);
                            if let Some(b) = &b {
                                self.artifacts.remember(key.clone(), b.clone());
                            }
                            b
                        });
                        let mut announced = [0u8; 32];
                        match (bytes, hex::decode_to_slice(&record.sha256, &mut announced)) {
                            (Some(b), Ok(())) => Some((b, announced)),
                            _ => None,
                        }
                    }
                    Lookup::Failed(reason) => {
                        let reply = ModuleReply::Refused { module: r.module, artifact: r.artifact, reason };
                        self.send_module_reply(topic, reply);
                        return;
                    }
                    Lookup::Missing => {
                        let (store, cache) = (&self.store, &self.module_cache);
                        self.artifacts.want(&sha, &profile, || module_bytes(store, cache, &sha));
                        self.artifacts.wait(key, node, r);
                        return;
                    }
                }
            }
            Some(_) => None,
        };
        let reply = match payload {
            Some((b, hash)) => {
                let start = (r.offset as usize).min(b.len());
                let len = (r.max_len.min(edge_proto::MODULE_CHUNK) as usize).min(b.len() - start);
                ModuleReply::Chunk(ModuleChunk {
                    module: r.module,
                    artifact: r.artifact,
                    sha256: hash,
                    offset: start as u64,
                    total: b.len() as u64,
                    data: b[start..start + len].to_vec(),
                })
            }
            None => ModuleReply::NotFound { module: r.module },
        };
        self.send_module_reply(topic, reply);
    }

    fn send_module_reply(&self, topic: String, reply: ModuleReply) {
        let _ = self.publish.send(Publish {
            topic,
            payload: edge_proto::encode(&Message::ModuleReply(reply)),
            retain: false,
        });
    }
}

/// The workload an instance belongs (or recently belonged) to.
fn workload_of<'a>(
    index: &'a HashMap<String, String>,
    retired: &'a VecDeque<(String, String)>,
    instance: &str,
) -> Option<&'a String> {
    index.get(instance).or_else(|| retired.iter().rev().find(|(id, _)| id == instance).map(|(_, key)| key))
}

/// A module's WebAssembly bytes, from the cache or the store.
fn module_bytes(
    store: &Store,
    cache: &HashMap<String, std::sync::Arc<Vec<u8>>>,
    sha: &str,
) -> Option<std::sync::Arc<Vec<u8>>> {
    if let Some(b) = cache.get(sha) {
        return Some(b.clone());
    }
    store.module_bytes(sha).ok().flatten().map(std::sync::Arc::new)
}

/// Keeps `running_since` in step with the reported states: set when an instance is first seen Running, cleared
/// when it is not.
fn track_running(live: &mut NodeLive) {
    let running: HashSet<&String> =
        live.instances.iter().filter(|(_, s)| s.state == InstanceState::Running).map(|(id, _)| id).collect();
    live.running_since.retain(|id, _| running.contains(id));
    for id in running {
        live.running_since.entry(id.clone()).or_insert_with(Instant::now);
    }
}

fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    edge_proto::validate_name(name).map_err(|e| ApiError::BadRequest(format!("{what} {name:?}: {e}")))
}

/// Instance ids `{workload}-{5 random chars}`, never one already taken.
fn unique_ids(mut taken: std::collections::HashSet<String>) -> impl FnMut(&str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    move |name: &str| loop {
        let mut rng = rand::rng();
        let suffix: String = (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
        let id = format!("{name}-{suffix}");
        if taken.insert(id.clone()) {
            return id;
        }
    }
}

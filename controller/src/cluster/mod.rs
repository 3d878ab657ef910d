//! The controller's state and every operation on it. One owner (`crate::owner`) holds the [`Cluster`] and runs
//! each API call and each agent message to completion, one at a time; nothing here is shared or locked.
//!
//! Layout, one concern per file:
//! - this file: the state ([`Cluster`], [`NodeLive`]), loading it from the store, small shared helpers.
//! - [`pass`]: the reconcile pass (scale, roll out, replace lost instances, place, derive and publish node
//!   specs), the periodic tick, and [`Cluster::flush`], which serves the coalesced work agent messages leave.
//! - [`workloads`], [`nodes`]: the operations users ask for (deploy a validated spec, delete, undo; cordon,
//!   drain, label, delete a node; namespaces; modules).
//! - [`members`]: join tokens, nodes joining with them, deleting (revoking) a node.
//! - [`uplink`]: what agents say (hello, heartbeat, events, logs, status).
//! - [`reports`]: members' report tags checked before anything they say is believed (keys, replay windows).
//! - [`delivery`]: module and artifact chunks served to agents, finished builds.
//! - [`liveness`], [`ledger`]: pure rules for node readiness and for event sequence numbers.
//! - [`error`]: [`ClusterError`], the cluster's failures in its own terms.
//!
//! **Invariants:**
//! - Every change a user asked for is committed to the store before the call that made it returns.
//! - A node's spec generation grows by one exactly when the content of its spec changes, and only from values
//!   this store published (a wire value is never adopted as a generation; see `edge_proto::NodeSpec`).
//! - Events are applied at most once per (node, store id, sequence number): the watermark is committed with
//!   the node's record before the agent is told (`EventsAck`) that it may forget them.
//! - Agent messages never run a reconcile pass themselves: they mark the cluster dirty and the owner runs one
//!   pass for a whole batch of them ([`Cluster::flush`]).

pub mod credentials;
mod delivery;
pub mod error;
pub(crate) mod event;
pub mod ledger;
pub mod liveness;
mod members;
mod nodes;
mod pass;
mod reports;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bounds;
#[cfg(test)]
mod tests_reports;
mod uplink;
mod workloads;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_proto::{InstanceState, InstanceStatus, Message, Outage, Topics};
use tokio::sync::mpsc::UnboundedSender;

pub use self::error::ClusterError;
use self::ledger::Ledger;
use self::liveness::{Liveness, Policy};
use crate::artifacts::Artifacts;
use crate::logbook::LogBook;
use crate::model::{MemberRecord, ModuleRecord, NamespaceRecord, NodeRecord, TokenRecord, WorkloadRecord};
use crate::reconcile::{Readiness, Rollout};
use crate::registry::{hash_from_hex, Registry};
use crate::store::{Store, StoreError};

/// An MQTT message for the shell to publish.
#[derive(Debug, Clone)]
pub struct Publish {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// Timing of the control loops.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A node silent for this long is NotReady.
    pub node_timeout: Duration,
    /// A node NotReady for this long is lost: its reschedulable instances are placed elsewhere.
    pub reschedule_after: Duration,
    /// A replica is ready once Running this long without restarting; rollouts wait for it.
    pub min_ready: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            node_timeout: edge_proto::timing::NODE_TIMEOUT,
            reschedule_after: edge_proto::timing::RESCHEDULE_AFTER,
            min_ready: edge_proto::timing::MIN_READY,
        }
    }
}

/// What is known only while the controller runs: liveness and reported state of one node.
#[derive(Debug)]
pub(crate) struct NodeLive {
    pub liveness: Liveness,
    /// When the node, heard from without a known `Hello`, was last asked for one.
    pub hello_requested: Option<Instant>,
    pub last_seen_ms: Option<u64>,
    pub applied_generation: u64,
    /// The protocol version of the node's last message.
    pub protocol: u16,
    pub instances: HashMap<String, InstanceStatus>,
    /// When this controller first saw each instance Running (its own clock: immune to agent clock skew), and
    /// its restart count then: a restart since means it is not ready.
    pub running_since: HashMap<String, (Instant, u32)>,
    /// The agent-clock time of the last heartbeat: older events only count, they no longer change state.
    pub heartbeat_at_ms: u64,
    pub agent_last_event_seq: u64,
    pub agent_events_dropped: u64,
    pub last_outage: Option<Outage>,
    pub ledger: Ledger,
    pub recent_events: VecDeque<String>,
    /// The node's last usage report (`edgectl top`), of instances placed on it only.
    pub usage: Option<LastUsage>,
}

/// What a node's agent last said its instances consume, when it arrived (controller clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LastUsage {
    pub received_ms: u64,
    pub window_ms: u64,
    /// By instance id; at most as many as a heartbeat's statuses.
    pub instances: HashMap<String, edge_proto::Resources>,
}

impl NodeLive {
    fn new(watermark: u64) -> NodeLive {
        NodeLive {
            liveness: Liveness::default(),
            hello_requested: None,
            last_seen_ms: None,
            applied_generation: 0,
            protocol: edge_proto::PROTOCOL_VERSION,
            instances: HashMap::new(),
            running_since: HashMap::new(),
            heartbeat_at_ms: 0,
            agent_last_event_seq: 0,
            agent_events_dropped: 0,
            last_outage: None,
            ledger: Ledger::new(watermark),
            recent_events: VecDeque::new(),
            usage: None,
        }
    }

    /// Keeps `running_since` in step with the reported states: set when an instance is first seen Running,
    /// cleared when it is not or when it restarted since.
    fn track_running(&mut self, now: Instant) {
        let instances = &self.instances;
        self.running_since.retain(|id, (_, restarts)| {
            instances.get(id).is_some_and(|s| s.state == InstanceState::Running && s.restarts == *restarts)
        });
        for (id, s) in instances.iter().filter(|(_, s)| s.state == InstanceState::Running) {
            self.running_since.entry(id.clone()).or_insert((now, s.restarts));
        }
    }

    /// Whether instance `id` is ready: Running for `min_ready` without restarting, or Succeeded.
    pub fn readiness(&self, id: &str, min_ready: Duration, now: Instant) -> Readiness {
        match self.instances.get(id).map(|s| s.state) {
            Some(InstanceState::Succeeded) => Readiness::Ready,
            Some(InstanceState::CrashLoopBackOff | InstanceState::Failed) => Readiness::Failing,
            Some(InstanceState::Running)
                if self.running_since.get(id).is_some_and(|(t, _)| now.saturating_duration_since(*t) >= min_ready) =>
            {
                Readiness::Ready
            }
            _ => Readiness::NotYet,
        }
    }
}

/// Counters of messages handled since the controller started.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub hellos: u64,
    pub heartbeats: u64,
    pub events: u64,
    /// Messages dropped as undecodable, of the wrong kind, or from an invalid name.
    pub rejected: u64,
}

pub struct Cluster {
    pub(crate) store: Store,
    topics: Topics,
    /// This store's issuer id, carried by every node spec.
    issuer: u64,
    pub(crate) policy: Policy,
    /// A replica is ready once Running this long; each new instance of a rollout waits for it.
    pub(crate) min_ready: Duration,
    /// Ready and lost nodes as of the last reconcile pass; the periodic tick reconciles when they change.
    last_ready: BTreeSet<String>,
    last_lost: BTreeSet<String>,
    /// A full pass is owed: an agent message changed something a pass acts on, or a pass failed.
    dirty: bool,
    /// The first instant at which some node's readiness (Ready, NotReady, lost) may change by time alone, as of
    /// the last look at the fleet; until then the tick need not look again.
    liveness_due: Instant,
    /// The scheduler's view as the last pass left it, for scoped passes (`pass.rs`); `None` when a node's
    /// resources, labels or engine changed since, or an artifact build finished (then the next pass is full).
    sched: Option<crate::scheduler::Snapshot>,
    /// Where each workload's rollout stood after the last pass.
    pub(crate) rollouts: HashMap<String, Rollout>,
    publish: UnboundedSender<Publish>,
    pub(crate) workloads: BTreeMap<String, WorkloadRecord>,
    pub(crate) nodes: BTreeMap<String, NodeRecord>,
    pub(crate) live: HashMap<String, NodeLive>,
    pub(crate) modules: BTreeMap<String, ModuleRecord>,
    pub(crate) namespaces: BTreeMap<String, NamespaceRecord>,
    /// Module bytes recently served to agents, so a chunked fetch does not read the store per chunk.
    module_cache: HashMap<String, Arc<Vec<u8>>>,
    /// Precompiled modules per engine profile.
    pub(crate) artifacts: Artifacts,
    /// Instance id → workload key, rebuilt after every reconcile pass.
    instance_index: HashMap<String, String>,
    /// Instances recently removed from a workload, with its key, oldest first (at most [`RETIRED_INSTANCES`]).
    retired: VecDeque<(String, String)>,
    pub(crate) logs: LogBook,
    /// Recent events per workload key, for `describe workload`.
    pub(crate) workload_events: HashMap<String, VecDeque<String>>,
    pub(crate) counters: Counters,
    /// Each node's instances as of the last committed pass, to skip unchanged nodes.
    last_specs: HashMap<String, Vec<edge_proto::InstanceSpec>>,
    /// Node records changed in memory (hellos, event watermarks) and not yet committed; the next
    /// [`Cluster::flush`] writes them.
    unsaved_nodes: BTreeSet<String>,
    /// Messages that may go out only once [`Cluster::unsaved_nodes`] are committed (event acknowledgements).
    after_commit: Vec<Publish>,
    /// Instances without a node after the last pass.
    pending: usize,
    /// Join tokens by id, and registered nodes by name (see `members.rs`).
    pub(crate) tokens: BTreeMap<String, TokenRecord>,
    pub(crate) members: BTreeMap<String, MemberRecord>,
    /// Members' report keys, replay windows and refused-report counts (see `reports.rs`).
    pub(crate) reports: reports::Reports,
    /// The external Mosquitto's password and ACL files, where this controller keeps them.
    mosquitto: Option<crate::mosquitto::Keeper>,
    /// The cluster signing key (`{data}/cluster.key`).
    cluster_key: Arc<edge_trust::ClusterKey>,
    /// What the embedded broker's policy reads; kept current here.
    registry: Arc<Registry>,
    /// The embedded broker, to disconnect and revoke nodes; `None` with an external broker.
    broker: Option<edge_broker::BrokerHandle>,
    /// Nodes deleted since this controller started: never believed again until they join anew.
    deleted: std::collections::HashSet<String>,
    /// Whether nodes that never joined are believed (an external broker, or `--mqtt-allow-anonymous`).
    open: bool,
    /// API credentials and the audit trail (see `credentials.rs`).
    pub(crate) access: credentials::Credentials,
}

/// How the cluster proves itself and decides whom to believe (see [`Cluster::set_trust`]).
pub struct Trust {
    pub key: Arc<edge_trust::ClusterKey>,
    pub registry: Arc<Registry>,
    pub broker: Option<edge_broker::BrokerHandle>,
    /// Believe nodes that never joined (see [`Cluster::accepts_from`]).
    pub open: bool,
    /// Keep an external Mosquitto's files (`--mosquitto-dir`) in step with tokens and members.
    pub mosquitto: Option<crate::mosquitto::Keeper>,
}

/// Recent events kept per node for `describe node`, and per workload for `describe workload`.
const RECENT_EVENTS: usize = 20;
const WORKLOAD_EVENTS: usize = 50;
/// Removed instances whose late events still reach `describe workload`.
const RETIRED_INSTANCES: usize = 1_024;
/// The namespace that exists without being created.
pub const DEFAULT_NAMESPACE: &str = "default";

impl Cluster {
    pub fn load(
        store: Store,
        topics: Topics,
        timing: Timing,
        publish: UnboundedSender<Publish>,
    ) -> Result<Cluster, StoreError> {
        let workloads = store.load_workloads()?.into_iter().map(|w| (w.key(), w)).collect();
        let nodes = store.load_nodes()?.into_iter().map(|n| (n.name.clone(), n)).collect();
        let modules = store.load_modules()?.into_iter().map(|m| (m.sha256.clone(), m)).collect();
        let namespaces = store.load_namespaces()?.into_iter().map(|n| (n.name.clone(), n)).collect();
        let artifacts = Artifacts::new(store.load_artifacts()?);
        let tokens = store.load_tokens()?.into_iter().map(|t| (t.id.clone(), t)).collect();
        let members = store.load_members()?.into_iter().map(|m| (m.name.clone(), m)).collect();
        let access = credentials::Credentials::load(&store)?;
        let mut cluster = Cluster {
            issuer: store.issuer(),
            store,
            topics,
            policy: Policy {
                started: Instant::now(),
                node_timeout: timing.node_timeout,
                reschedule_after: timing.reschedule_after,
            },
            min_ready: timing.min_ready,
            last_ready: BTreeSet::new(),
            last_lost: BTreeSet::new(),
            dirty: false,
            liveness_due: Instant::now(),
            sched: None,
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
            after_commit: Vec::new(),
            pending: 0,
            tokens,
            members,
            reports: reports::Reports::default(),
            mosquitto: None,
            // Replaced by `set_trust`; a throwaway key until then (tests that never join need none).
            cluster_key: Arc::new(edge_trust::ClusterKey::from_secret_bytes(&rand::random())),
            registry: Arc::new(Registry::default()),
            broker: None,
            deleted: std::collections::HashSet::new(),
            open: true,
            access,
        };
        cluster.rebuild_index();
        cluster.pending = cluster.workloads.values().flat_map(|w| &w.instances).filter(|i| i.node.is_none()).count();
        Ok(cluster)
    }

    /// Sets the cluster key, the registry the broker reads (filled here from the stored tokens and members),
    /// the broker handle and whether unjoined nodes are believed.
    pub fn set_trust(&mut self, trust: Trust) {
        for t in self.tokens.values() {
            if let Some(hash) = hash_from_hex(&t.secret_sha256) {
                trust.registry.set_token(&t.id, hash);
            }
        }
        for m in self.members.values() {
            if let Some(hash) = hash_from_hex(&m.password_sha256) {
                trust.registry.set_member(&m.name, hash);
            }
        }
        self.cluster_key = trust.key;
        self.registry = trust.registry;
        self.broker = trust.broker;
        self.open = trust.open;
        self.mosquitto = trust.mosquitto;
    }

    /// Where precompilation jobs go (the controller's builder task); without one, artifacts are never built.
    pub fn set_artifact_builder(&mut self, jobs: UnboundedSender<crate::artifacts::Job>) {
        self.artifacts.set_builder(jobs);
    }

    pub(crate) fn is_ready(&self, node: &str) -> bool {
        self.live.get(node).is_some_and(|l| l.liveness.is_ready(&self.policy, Instant::now()))
    }

    /// The live state of `node`, created on first contact with the persisted event watermark.
    fn live_mut(&mut self, node: &str) -> &mut NodeLive {
        let watermark = self.nodes.get(node).map_or(0, |n| n.last_event_seq);
        self.live.entry(node.to_string()).or_insert_with(|| NodeLive::new(watermark))
    }

    /// The protocol version to write in for `node`: what it last spoke, else what its record says.
    fn protocol_of(&self, node: &str) -> u16 {
        self.live
            .get(node)
            .map(|l| l.protocol)
            .or_else(|| self.nodes.get(node).map(|n| n.protocol))
            .unwrap_or(edge_proto::PROTOCOL_VERSION)
    }

    /// Queues `message` for `node` on `channel`, encoded in the protocol the node speaks, signed where a
    /// joined node requires it ([`Cluster::signature_for`]).
    fn send(&self, node: &str, channel: edge_proto::Channel, message: &Message, retain: bool) {
        let auth = self.signature_for(node, message);
        let payload = edge_proto::encode_for_with_auth(self.protocol_of(node), message, auth.as_ref().map(|s| &s[..]));
        // The node could not receive it: a retained one would cut it off until replaced. The scheduler's spec
        // budget (`crate::spec_size`) keeps specs smaller; this guards what was stored before it existed.
        if payload.len() > edge_proto::MAX_PAYLOAD {
            let (bytes, limit) = (payload.len(), edge_proto::MAX_PAYLOAD);
            tracing::error!(%node, bytes, limit, ?channel, "message too large for its node; not sent");
            return;
        }
        let _ = self.publish.send(Publish { topic: self.topics.node(node, channel), payload, retain });
    }

    /// The cluster key's signature on what a node must not take on the broker's word (see `edge_proto::auth`):
    /// its spec, bound to its name, and the statement tying an artifact to its module and engine profile.
    /// Every node gets them (about 20 µs each); nodes that never joined have no key to check them with.
    fn signature_for(&self, node: &str, message: &Message) -> Option<[u8; edge_proto::auth::SIGNATURE_LEN]> {
        use edge_proto::auth::{artifact_document, spec_document};
        let (context, document) = match message {
            Message::Spec(spec) => (edge_trust::Context::SPEC, spec_document(node, spec)),
            Message::ModuleReply(edge_proto::ModuleReply::Chunk(c)) => {
                let profile = c.artifact.as_ref()?;
                (edge_trust::Context::ARTIFACT, artifact_document(&c.module, profile, &c.sha256, c.total))
            }
            _ => return None,
        };
        Some(*edge_trust::sign(&self.cluster_key, context, document).signature())
    }

    /// The workload an instance belongs (or recently belonged) to.
    fn workload_of(&self, instance: &str) -> Option<&String> {
        self.instance_index
            .get(instance)
            .or_else(|| self.retired.iter().rev().find(|(id, _)| id == instance).map(|(_, key)| key))
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

/// The name rule, with the refusal echoing the name truncated (`crate::api::bounds::check_name`).
fn check_name(what: &str, name: &str) -> Result<(), ClusterError> {
    crate::api::bounds::check_name(what, name)
}

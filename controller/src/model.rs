//! Records the controller stores: workloads with their instances, nodes, and module metadata.
//!
//! These are serialised as JSON into redb (see [`crate::store`]); new fields must come with `#[serde(default)]`
//! so older stores keep opening.

use std::collections::BTreeMap;

use edge_proto::{EngineTarget, Resources, RestartPolicy};
use serde::{Deserialize, Serialize};

/// What a user asked for: the template every replica runs, and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    /// sha256 of the module, lowercase hex.
    pub module: String,
    pub replicas: u32,
    pub cpu_millis: u32,
    pub memory_bytes: u64,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default)]
    pub on_node_loss: NodeLossPolicy,
    /// Node labels a node must carry to run a replica (`nodeSelector`).
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
}

/// What happens to a workload's instances when their node is lost (NotReady for `--reschedule-after`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeLossPolicy {
    /// Place them on another node; the lost node stops its copies when it comes back.
    #[default]
    Reschedule,
    /// Keep them bound to their node, shown as `Unknown` until it returns.
    Stay,
}

impl NodeLossPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeLossPolicy::Reschedule => "reschedule",
            NodeLossPolicy::Stay => "stay",
        }
    }
}

impl std::str::FromStr for NodeLossPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reschedule" => Ok(NodeLossPolicy::Reschedule),
            "stay" => Ok(NodeLossPolicy::Stay),
            _ => Err(format!("unknown node-loss policy {s:?} (expected reschedule or stay)")),
        }
    }
}

impl WorkloadSpec {
    pub fn request(&self) -> Resources {
        Resources { cpu_millis: self.cpu_millis, memory_bytes: self.memory_bytes }
    }

    /// True when the two specs run the same thing (everything but the replica count and placement policy).
    pub fn same_template(&self, other: &WorkloadSpec) -> bool {
        let bare =
            |s: &WorkloadSpec| WorkloadSpec { replicas: 0, on_node_loss: NodeLossPolicy::default(), ..s.clone() };
        bare(self) == bare(other)
    }
}

/// A workload and its instances as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadRecord {
    pub namespace: String,
    pub name: String,
    pub spec: WorkloadSpec,
    /// Bumped whenever the template changes; instances carry the revision they run.
    pub revision: u64,
    pub instances: Vec<InstanceRecord>,
    pub created_ms: u64,
}

impl WorkloadRecord {
    pub fn key(&self) -> String {
        workload_key(&self.namespace, &self.name)
    }
}

/// The store key of a workload: `namespace/name` (neither part may contain `/`).
pub fn workload_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// One replica: where it is placed, or why it is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub id: String,
    pub revision: u64,
    /// The node it is bound to; `None` while Pending.
    pub node: Option<String>,
    /// Why it is Pending (the scheduler's words).
    #[serde(default)]
    pub reason: Option<String>,
}

/// A node as last announced by its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub board: String,
    pub arch: String,
    pub engine: EngineTarget,
    pub agent_version: String,
    pub capacity: Resources,
    pub labels: BTreeMap<String, String>,
    /// The generation of the last spec the controller published for this node.
    pub spec_generation: u64,
    /// sha256 hex of the last published spec's instances, so an unchanged spec keeps its generation.
    #[serde(default)]
    pub spec_hash: String,
    pub first_seen_ms: u64,
    /// The agent store's id (from its hello); a new one restarts event numbering.
    #[serde(default)]
    pub store_id: u64,
    /// Highest event sequence number applied from this node; events at or below it are duplicates.
    #[serde(default)]
    pub last_event_seq: u64,
    /// Last time the node was heard from, as of the last time this record was written.
    #[serde(default)]
    pub last_seen_ms: u64,
    /// Set by `edgectl cordon`: the scheduler places nothing new here.
    #[serde(default)]
    pub cordoned: bool,
    /// Labels set with `edgectl label node`; they override the agent's labels with the same key.
    #[serde(default)]
    pub user_labels: BTreeMap<String, String>,
}

impl NodeRecord {
    /// The labels the scheduler matches: the agent's, overridden by the user's.
    pub fn effective_labels(&self) -> BTreeMap<String, String> {
        let mut l = self.labels.clone();
        l.extend(self.user_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        l
    }
}

/// A module's metadata; its bytes are stored beside it under the same key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRecord {
    pub sha256: String,
    pub size: u64,
    pub uploaded_ms: u64,
}

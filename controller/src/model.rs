//! Records the controller stores: workloads with their instances, nodes, namespaces, modules and artifacts.
//!
//! These are serialised as JSON into redb (see [`crate::store`]); new fields must come with `#[serde(default)]`
//! so older stores keep opening.

use std::collections::BTreeMap;

pub use edge_api::{Quota, Usage};
use edge_proto::mcu::ModuleAbi;
use edge_proto::{EngineProfile, EngineTarget, Resources, RestartPolicy, VolumeSpec};
use serde::{Deserialize, Serialize};

/// What a user asked for: the template every replica runs, and how many.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Cap on the guest's memory; `None` caps it at the request.
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
    /// CPU cap in millicores; 0: none beyond fair sharing.
    #[serde(default)]
    pub cpu_limit_millis: u32,
    /// A run is stopped after this long; 0: never.
    #[serde(default)]
    pub timeout_ms: u64,
    /// Per-instance directories with a quota, preopened as `/{name}`.
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
    /// The workload's own labels (for selecting it; not a node selector). Not part of the template: changing
    /// them makes no new revision. Records stored before labels existed read as none.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The host ABI of the module, copied from its record at deploy (not sent by clients): the scheduler places
    /// MCU-ABI modules only on wasmi nodes and WASI modules only on wasmtime ones. Older records read as WASI.
    #[serde(default)]
    pub abi: ModuleAbi,
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
    /// The memory cap the runtime enforces.
    pub fn memory_limit(&self) -> u64 {
        self.memory_limit_bytes.unwrap_or(self.memory_bytes)
    }

    pub fn request(&self) -> Resources {
        Resources { cpu_millis: self.cpu_millis, memory_bytes: self.memory_bytes }
    }

    /// True when the two specs run the same thing (everything but the replica count, placement policy and
    /// labels).
    pub fn same_template(&self, other: &WorkloadSpec) -> bool {
        let bare = |s: &WorkloadSpec| WorkloadSpec {
            replicas: 0,
            on_node_loss: NodeLossPolicy::default(),
            labels: BTreeMap::new(),
            ..s.clone()
        };
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
    /// The most recent templates, oldest first, for `rollout history` and `rollout undo`.
    #[serde(default)]
    pub history: Vec<RevisionRecord>,
}

/// One revision of a workload's template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionRecord {
    pub revision: u64,
    pub spec: WorkloadSpec,
    pub created_ms: u64,
}

/// Revisions kept per workload.
pub const HISTORY_LIMIT: usize = 10;

impl WorkloadRecord {
    /// Records `spec` as revision `revision` (trimming the history to [`HISTORY_LIMIT`]).
    pub fn remember(&mut self, revision: u64, spec: &WorkloadSpec, now_ms: u64) {
        self.history.push(RevisionRecord { revision, spec: spec.clone(), created_ms: now_ms });
        let excess = self.history.len().saturating_sub(HISTORY_LIMIT);
        self.history.drain(..excess);
    }
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
    /// The full engine profile the agent announced (artifacts are compiled for it).
    #[serde(default)]
    pub engine_profile: Option<EngineProfile>,
    pub agent_version: String,
    pub capacity: Resources,
    /// Kept back for the agent and the OS, as the agent announced it.
    #[serde(default)]
    pub reserved: Resources,
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
    /// The protocol version the node's agent speaks (from the envelope of its hello): what the controller
    /// encodes its specs, acks and module replies in. Records from before protocol 4 read as 3.
    #[serde(default = "protocol_3")]
    pub protocol: u16,
    /// The highest report counter accepted from the node (a member; 0: none), where its replay window resumes
    /// after a controller restart. Written with the record, never alone for every report (see
    /// `cluster/reports.rs`); records from before it read as 0.
    #[serde(default)]
    pub report_counter: u64,
}

fn protocol_3() -> u16 {
    edge_proto::MIN_PROTOCOL_VERSION
}

impl NodeRecord {
    /// What the scheduler may hand out: capacity minus the reserve.
    pub fn allocatable(&self) -> Resources {
        self.capacity.saturating_sub(self.reserved)
    }

    /// The labels the scheduler matches: the agent's, overridden by the user's.
    pub fn effective_labels(&self) -> BTreeMap<String, String> {
        let mut l = self.labels.clone();
        l.extend(self.user_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        l
    }
}

/// What the store keeps about one artifact (its bytes are stored beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    pub module: String,
    pub fingerprint: String,
    pub profile: EngineProfile,
    pub size: u64,
    /// sha256 hex of the artifact's bytes, announced to agents so they can verify a download.
    pub sha256: String,
    pub built_ms: u64,
    /// Set when the module cannot be compiled for this profile; then there are no bytes.
    pub error: Option<String>,
}

impl ArtifactRecord {
    pub fn key(&self) -> crate::artifacts::Key {
        (self.module.clone(), self.fingerprint.clone())
    }
}

/// A module's metadata; its bytes are stored beside it under the same key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRecord {
    pub sha256: String,
    pub size: u64,
    pub uploaded_ms: u64,
    /// The host ABI it was validated for (`crate::validate`); records from before MCU nodes read as WASI.
    #[serde(default)]
    pub abi: ModuleAbi,
    /// For an MCU-ABI module, the RAM one instance needs (`edge_proto::mcu::memory_need`).
    #[serde(default)]
    pub mcu_memory_bytes: u64,
}

/// A namespace: a folder for a team's workloads, with an optional quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    pub name: String,
    #[serde(default)]
    pub quota: Quota,
    pub created_ms: u64,
}

/// What a namespace's workloads request in total.
pub fn usage_of<'a>(specs: impl IntoIterator<Item = &'a WorkloadSpec>) -> Usage {
    let mut u = Usage::default();
    for s in specs {
        let n = s.replicas as u64;
        u.cpu_millis = u.cpu_millis.saturating_add(n.saturating_mul(s.cpu_millis as u64));
        u.memory_bytes = u.memory_bytes.saturating_add(n.saturating_mul(s.memory_bytes));
        u.instances = u.instances.saturating_add(n);
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(replicas: u32, cpu: u32, mem: u64) -> WorkloadSpec {
        WorkloadSpec { module: String::new(), replicas, cpu_millis: cpu, memory_bytes: mem, ..Default::default() }
    }

    #[test]
    fn quotas_name_the_bound_and_the_amounts() {
        let q = Quota { cpu_millis: Some(1000), memory_bytes: Some(64 << 20), instances: Some(3) };
        let ok = usage_of([&spec(2, 250, 32 << 20)]);
        assert_eq!(q.exceeded_by(ok), None);
        let mem = usage_of([&spec(2, 250, 32 << 20), &spec(1, 100, 1 << 20)]);
        assert_eq!(q.exceeded_by(mem).as_deref(), Some("memory: 65Mi requested in total, quota 64Mi"));
        assert_eq!(
            q.exceeded_by(usage_of([&spec(3, 500, 1)])).as_deref(),
            Some("cpu: 1500m requested in total, quota 1")
        );
        assert_eq!(
            q.exceeded_by(usage_of([&spec(4, 1, 1)])).as_deref(),
            Some("instances: 4 requested in total, quota 3")
        );
        assert_eq!(Quota::default().exceeded_by(usage_of([&spec(1000, 1000, 1 << 40)])), None);
    }
}

/// A join token as the controller keeps it: never the secret, only its sha256 (see `edge_trust::token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The token's public id, 16 lowercase hex digits.
    pub id: String,
    /// sha256 of the secret, hex.
    pub secret_sha256: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub uses: u32,
    pub uses_left: u32,
    /// Only a node of this name may join with it.
    pub node: Option<String>,
    /// Labels given to every node that joins with it.
    pub labels: BTreeMap<String, String>,
    /// Nodes that joined with it, in order (bounded by `uses`).
    pub joined: Vec<String>,
    /// The join login's password (the secret in hex) as an external Mosquitto's password file holds it
    /// (`$7$…`, salted PBKDF2-SHA512; see `mosquitto.rs`): computable only while the secret is known, at
    /// creation. Absent in tokens made before it was kept; those cannot log in to Mosquitto.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mosquitto_hash: Option<String>,
}

/// A node's registration: who it is, proven at join. Kept apart from [`NodeRecord`] (what it announced in
/// its hello), so a node may join before its first hello and a hello never changes who it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub name: String,
    /// The node's ed25519 public key, hex.
    pub public_key: String,
    /// sha256 of its MQTT password, hex.
    pub password_sha256: String,
    pub joined_ms: u64,
    /// The id of the token it joined with.
    pub token: String,
    /// The token's labels, given to the node's record as user labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// An API credential as the controller keeps it: never the bearer token, only its sha256 (see `crate::access`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    pub name: String,
    /// `admin`, `edit` or `view` (`crate::access::Role`).
    pub role: String,
    /// `None`: every namespace.
    pub namespace: Option<String>,
    /// sha256 of the whole bearer token, hex.
    pub token_sha256: String,
    pub created_ms: u64,
    /// `None`: never expires.
    pub expires_ms: Option<u64>,
}

/// One mutating API call, as the audit trail keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Increasing, never reused (the store's key).
    pub seq: u64,
    pub at_ms: u64,
    /// The credential's name.
    pub who: String,
    /// `METHOD /path`, the path truncated to a bound.
    pub what: String,
    pub status: u16,
    /// Why it was refused (403), as the caller was told.
    pub reason: Option<String>,
}

//! `edge-api`: the JSON shapes of the controller's HTTP API, the contract between the controller and `edgectl`
//! (or any other client). Serde types only: no HTTP, no I/O, no controller internals.
//!
//! **Compatibility promise:** later versions add fields (with serde defaults); they never rename or remove
//! these, so an older `edgectl` keeps working against a newer controller.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod access;
pub use access::{AuditView, CredentialCreated, CredentialRequest, CredentialView};

/// Body of `PUT /v1/namespaces/{ns}/workloads/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRequest {
    /// sha256 hex of a module uploaded with `POST /v1/modules`.
    pub module: String,
    #[serde(default = "one")]
    pub replicas: u32,
    pub cpu_millis: u32,
    pub memory_bytes: u64,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    #[serde(default)]
    pub args: Vec<String>,
    /// `always` (default), `on-failure` or `never`.
    #[serde(default)]
    pub restart: Option<String>,
    /// `reschedule` (default): replicas on a lost node are placed elsewhere; `stay`: they wait for it.
    #[serde(default)]
    pub on_node_loss: Option<String>,
    /// Labels a node must carry to run a replica (`nodeSelector`).
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    /// Cap on the guest's memory (default: `memory_bytes`); not below the request.
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
    /// CPU cap in millicores (default: none beyond fair sharing).
    #[serde(default)]
    pub cpu_limit_millis: Option<u32>,
    /// Stop a run after this many milliseconds (run-to-completion workloads).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Per-instance directories with a size quota, preopened in the guest as `/{name}`.
    #[serde(default)]
    pub volumes: Vec<edge_proto::VolumeSpec>,
    /// The workload's own labels (`metadata.labels`, `deploy --label`), which `get workloads -l` and `get pods
    /// -l` select on; not a node selector. Changing them rolls nothing out (no new revision).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Body of `PUT /v1/nodes/{name}/labels`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabelRequest {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourcesView {
    pub cpu_millis: u32,
    pub memory_bytes: u64,
}

/// One replica as `get workloads` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceView {
    pub id: String,
    pub node: Option<String>,
    /// `Pending`, `Starting`, `Running`, `Succeeded`, `Failed`, `CrashLoopBackOff` or `Unknown`.
    pub state: String,
    pub restarts: u32,
    /// RFC 3339, when the agent last started it.
    pub started_at: Option<String>,
    pub exit_code: Option<i32>,
    /// Why it is Pending, Failed or crash-looping.
    pub reason: Option<String>,
    /// Ready: it has been Running for the controller's min-ready time without restarting since (or it
    /// Succeeded). A crash-looping instance is never ready, however often it is briefly Running.
    #[serde(default)]
    pub ready: bool,
    /// The workload revision whose template it runs (`WorkloadView::revision` is the current one).
    #[serde(default)]
    pub revision: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadView {
    pub name: String,
    pub namespace: String,
    pub replicas: u32,
    pub module: String,
    pub cpu_millis: u32,
    pub memory_bytes: u64,
    pub restart: String,
    /// `reschedule` or `stay`.
    pub on_node_loss: String,
    pub selector: BTreeMap<String, String>,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    /// Cap on the guest's memory; `None`: the request (`memory_bytes`).
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
    /// CPU cap in millicores; `None`: no cap beyond fair sharing.
    #[serde(default)]
    pub cpu_limit_millis: Option<u32>,
    /// A run is stopped after this many milliseconds; `None`: never.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub volumes: Vec<edge_proto::VolumeSpec>,
    /// The workload's own labels, which its instances carry too (empty from an older controller).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub revision: u64,
    /// RFC 3339 of when the workload was first deployed (`None` from an older controller).
    #[serde(default)]
    pub created: Option<String>,
    pub instances: Vec<InstanceView>,
    pub rollout: RolloutView,
    /// Recent revisions, oldest first (`rollout history`).
    pub revisions: Vec<RevisionView>,
}

/// Where a workload's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutView {
    /// `complete` (every replica of the current revision ready), `progressing`, `halted` (a new revision
    /// failed; the old replicas serve) or `degraded` (no rollout under way, but replicas of the current revision
    /// crash-loop or failed; `reason` names one).
    pub state: String,
    pub reason: Option<String>,
    /// Instances of the current revision, and of those how many are ready.
    pub updated: usize,
    pub ready: usize,
    /// Instances of older revisions still serving.
    pub old: usize,
}

/// One kept revision: the whole template it rolled out (the fields after `args` came later; an older controller
/// leaves them at their defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionView {
    pub revision: u64,
    pub module: String,
    pub created: String,
    pub cpu_millis: u32,
    pub memory_bytes: u64,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    /// The replica count when the revision was made (a later scale makes no new revision).
    #[serde(default)]
    pub replicas: u32,
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    /// `always`, `on-failure` or `never` (empty from an older controller).
    #[serde(default)]
    pub restart: String,
    #[serde(default)]
    pub on_node_loss: String,
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
    #[serde(default)]
    pub cpu_limit_millis: Option<u32>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub volumes: Vec<edge_proto::VolumeSpec>,
}

/// Reply to a `PUT …?dry_run=true` (workload or namespace): what the request would do. Nothing was stored. The
/// request passed every check a real PUT makes (admission, the namespace, its quota), except that a workload's
/// module need not be uploaded yet: `module_missing` says so, and a real PUT is refused until it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRunView {
    /// The object does not exist: the PUT would create it.
    pub created: bool,
    /// The PUT would change what is stored (false: it would be a no-op).
    pub changed: bool,
    /// A workload's template would change: the PUT would roll out a new revision.
    #[serde(default)]
    pub new_revision: bool,
    /// The workload's module has not been uploaded (`POST /v1/modules`).
    #[serde(default)]
    pub module_missing: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeView {
    pub name: String,
    /// `Ready` or `NotReady`.
    pub status: String,
    pub capacity: ResourcesView,
    /// Capacity minus what the agent keeps back for itself and the OS: what the scheduler hands out.
    pub allocatable: ResourcesView,
    pub allocated: ResourcesView,
    /// The agent's labels, overridden by those set with `edgectl label node`.
    pub labels: BTreeMap<String, String>,
    /// Set by `edgectl cordon` (or `drain`): nothing new is placed here.
    pub cordoned: bool,
    pub board: String,
    pub arch: String,
    pub engine: String,
    pub agent_version: String,
    /// RFC 3339 of the last message from the node, if any since the controller started.
    pub last_seen: Option<String>,
    /// The spec generation the node reports as applied.
    pub generation: u64,
    /// The newest spec generation the controller published for it (equal to `generation` once applied).
    pub spec_generation: u64,
    /// True while the node is not connected and heartbeating (Last Will received, or silent too long).
    pub disconnected: bool,
    pub instances: usize,
    /// RFC 3339 of when the node joined with a token; `None` for a node that never joined (an open broker).
    #[serde(default)]
    pub joined: Option<String>,
    /// Messages claiming to be from this node refused since the controller started: a joined node's report
    /// without a valid tag under its key, or with a counter already seen (forged, replayed, or from another
    /// node). Always 0 for a node that never joined (it tags nothing).
    #[serde(default)]
    pub rejected_reports: u64,
    /// RFC 3339 of when the controller first heard from the node (`None` from an older controller).
    #[serde(default)]
    pub created: Option<String>,
}

/// `GET /v1/nodes/{name}`: what `edgectl describe node` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeDetail {
    pub node: NodeView,
    pub conditions: Vec<ConditionView>,
    pub instances: Vec<NodeInstanceView>,
    pub events: EventStatsView,
    /// The agent's last period without a broker connection, once it ended.
    pub last_outage: Option<OutageView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: bool,
    pub reason: String,
    /// RFC 3339: since when the condition has been false.
    pub since: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInstanceView {
    pub id: String,
    pub namespace: String,
    pub workload: String,
    pub state: String,
    pub restarts: u32,
    pub started_at: Option<String>,
    pub cpu_millis: u32,
    pub memory_bytes: u64,
}

/// Event delivery from one node, as the controller counted it since it started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventStatsView {
    /// Highest sequence number applied (persisted).
    pub applied_up_to: u64,
    /// Highest sequence number the agent has assigned (from its last heartbeat).
    pub agent_last_seq: u64,
    pub received: u64,
    pub duplicates: u64,
    /// Sequence numbers never received (dropped by a full agent outbox).
    pub missing: u64,
    /// Events the agent's outbox dropped since its store was created.
    pub dropped_by_agent: u64,
    /// The most recent events, one line each.
    pub recent: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutageView {
    pub started: String,
    pub ended: String,
    pub duration_ms: u64,
    pub events_buffered: u64,
    pub events_dropped: u64,
    pub logs_buffered: u64,
    pub logs_dropped: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModuleView {
    pub sha256: String,
    pub size: u64,
    /// Precompiled code per engine profile of the fleet (and targets it cannot be compiled for).
    #[serde(default)]
    pub artifacts: Vec<ArtifactView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactView {
    /// Engine target: x86_64, aarch64, pulley32, pulley64.
    pub target: String,
    /// Profile fingerprint (target, memory layout, wasmtime version).
    pub fingerprint: String,
    pub size: u64,
    pub sha256: String,
    /// Why the module cannot be compiled for this profile (then `size` is 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLineView {
    pub seq: u64,
    pub instance: String,
    pub node: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub at: String,
    pub line: String,
}

/// Body of `GET …/logs?since=N`: lines with `seq > since`, and the cursor to pass next time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogsResponse {
    pub lines: Vec<LogLineView>,
    pub next: u64,
}

/// One lifecycle event, as `GET /v1/events` lists them (oldest first) and `edgectl events` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    /// RFC 3339 with milliseconds, on the reporting agent's clock.
    pub at: String,
    /// `Normal` or `Warning` (kubectl's event types).
    #[serde(rename = "type")]
    pub kind: String,
    /// What it is about: `instance/ID`, or `node/NAME` for a node-level event (a refused spec).
    pub object: String,
    /// The node that reported it.
    pub node: String,
    /// The instance's workload, when it is known.
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub workload: Option<String>,
    /// A sentence: `Started`, `Exited with code 0`, `Back-off 2s before restarting`, `Rejected: …`.
    pub message: String,
    /// Its number on its node (with `node`, identifies it).
    pub seq: u64,
}

/// `GET /v1/version`: what the controller runs and which agent protocol versions it speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionView {
    pub version: String,
    /// The agent protocol it writes by default.
    pub protocol: u16,
    /// The oldest agent protocol it still reads and writes.
    pub min_protocol: u16,
}

/// Every error body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// Upper bounds on the sum of a namespace's requests (replicas × per-replica request); `None`: unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub instances: Option<u64>,
}

/// What a namespace's workloads request in total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub instances: u64,
}

impl Quota {
    /// The first bound `usage` exceeds, worded for the user: `memory: 96Mi requested, quota 64Mi`.
    pub fn exceeded_by(&self, usage: Usage) -> Option<String> {
        use edge_proto::quantity::{format_cpu, format_memory};
        if let Some(q) = self.cpu_millis.filter(|q| usage.cpu_millis > *q) {
            let fmt = |v: u64| format_cpu(v.min(u32::MAX as u64) as u32);
            return Some(format!("cpu: {} requested in total, quota {}", fmt(usage.cpu_millis), fmt(q)));
        }
        if let Some(q) = self.memory_bytes.filter(|q| usage.memory_bytes > *q) {
            return Some(format!(
                "memory: {} requested in total, quota {}",
                format_memory(usage.memory_bytes),
                format_memory(q)
            ));
        }
        if let Some(q) = self.instances.filter(|q| usage.instances > *q) {
            return Some(format!("instances: {} requested in total, quota {q}", usage.instances));
        }
        None
    }
}

/// Body of `PUT /v1/namespaces/{ns}` (create, or replace the quota of an existing one).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NamespaceRequest {
    #[serde(default)]
    pub quota: Quota,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamespaceView {
    pub name: String,
    pub quota: Quota,
    /// The sum of its workloads' requests (replicas × per-replica request).
    pub used: Usage,
    pub workloads: usize,
}

/// `GET /v1/stats`: counters since the controller started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatsView {
    pub nodes: usize,
    pub ready_nodes: usize,
    pub workloads: usize,
    pub instances: usize,
    /// Messages handled from agents, by kind.
    pub hellos: u64,
    pub heartbeats: u64,
    pub events: u64,
    /// Messages dropped: undecodable, of the wrong kind for their topic, or from an invalid node name.
    #[serde(default)]
    pub rejected: u64,
}

/// `POST /v1/tokens`: a new join token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenRequest {
    /// Lifetime in milliseconds; `None` means the default (24 h).
    #[serde(default)]
    pub ttl_ms: Option<u64>,
    /// How many nodes may join with it; `None` means 1.
    #[serde(default)]
    pub uses: Option<u32>,
    /// If set, only a node of this name may join with it.
    #[serde(default)]
    pub node: Option<String>,
    /// Labels every node joining with it gets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A join token as `edgectl token list` shows it (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenView {
    /// The token's public id (16 hex digits), the name `edgectl token delete` takes.
    pub id: String,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339.
    pub expires: String,
    pub expired: bool,
    /// Uses left (0 once used up).
    pub uses_left: u32,
    pub uses: u32,
    pub node: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Nodes that joined with it.
    pub joined: Vec<String>,
}

/// `POST /v1/tokens` answer: the token itself, shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenCreated {
    /// `EJ1<cluster fingerprint>::<id>.<secret>`: give it to `edge-agent --join`.
    pub token: String,
    pub view: TokenView,
    /// The cluster key's fingerprint (`sha256:…`), which the token carries.
    pub cluster_fingerprint: String,
}

/// `GET /v1/top/nodes`: one node's usage as its agent last reported it, for `edgectl top nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTopView {
    pub name: String,
    /// What the scheduler hands out: the denominator of `CPU%` and `MEMORY%`.
    pub allocatable: ResourcesView,
    /// The sum over the node's running instances; `None` before its first usage report, or while it is
    /// NotReady (its last report no longer describes it).
    pub usage: Option<ResourcesView>,
    /// RFC 3339 of when the controller received the report.
    pub timestamp: Option<String>,
    /// The window CPU figures average over (since the agent's previous report), in milliseconds.
    pub window_ms: u64,
}

/// `GET /v1/top/instances[?namespace=NS]`: one running instance's usage as its agent last reported it, for
/// `edgectl top instances`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceTopView {
    pub id: String,
    pub namespace: String,
    pub workload: String,
    pub node: String,
    pub usage: ResourcesView,
    /// RFC 3339 of when the controller received the report.
    pub timestamp: String,
    pub window_ms: u64,
}

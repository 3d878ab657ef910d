//! JSON shapes of the HTTP API, shared with `edgectl`. Later versions add fields; they never rename these.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Body of `PUT /v1/namespaces/{ns}/workloads/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    pub revision: u64,
    pub instances: Vec<InstanceView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeView {
    pub name: String,
    /// `Ready` or `NotReady`.
    pub status: String,
    pub capacity: ResourcesView,
    pub allocated: ResourcesView,
    pub labels: BTreeMap<String, String>,
    pub board: String,
    pub arch: String,
    pub engine: String,
    pub agent_version: String,
    /// RFC 3339 of the last message from the node, if any since the controller started.
    pub last_seen: Option<String>,
    /// The spec generation the node reports as applied.
    pub generation: u64,
    pub instances: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModuleView {
    pub sha256: String,
    pub size: u64,
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

/// Every error body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

//! Message bodies. Every field is plain data; times are Unix milliseconds (`*_ms`), sizes are bytes.
//!
//! Direction of each message (N = node/agent, C = controller):
//! `Hello`, `Heartbeat`, `Events`, `Logs`, `ModuleRequest`, `Status`, `Usage` go N → C; `Spec`, `ModuleReply`,
//! `EventsAck` and `HelloRequest` go C → N.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// A module's content address: the sha256 of its bytes.
pub type Sha256 = [u8; 32];

impl NodeSpec {
    /// Whether an agent that runs `current` should apply `self`: another issuer, or a newer generation of the
    /// same one. Pure comparison: nothing here can overflow, whatever the wire said.
    pub fn supersedes(&self, current: Option<&NodeSpec>) -> bool {
        match current {
            None => true,
            Some(c) => self.issuer != c.issuer || self.generation > c.generation,
        }
    }
}

/// Every message body, tagged by variant index on the wire (append new variants at the end only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    Hello(Hello),
    Heartbeat(Heartbeat),
    Spec(NodeSpec),
    Events(Vec<Event>),
    Logs(Vec<LogLine>),
    ModuleRequest(ModuleRequest),
    ModuleReply(ModuleReply),
    Status(NodeStatus),
    /// The controller has applied (and persisted) every event of this node's store up to and including a
    /// sequence number; the agent may forget them. Sent after every `Events` batch, duplicates included.
    EventsAck(EventsAck),
    /// The controller hears this node's heartbeats but never got its `Hello` (a broker under load may drop it):
    /// the agent sends its `Hello` again. Sent on the `ack` channel, at most every few seconds per node.
    HelloRequest,
    /// A node joining with a token (on `{p}/join/{id}/request`; see [`crate::join`]).
    JoinRequest(crate::join::JoinRequest),
    /// The controller's answer to a join (on `{p}/join/{id}/reply`).
    JoinReply(crate::join::JoinReply),
    /// What the node's instances consume, on the `heartbeat` channel at the heartbeat's refresh cadence (not
    /// with every change: usage always changes). Appended without a protocol bump: only nodes send it, and an
    /// agent is never newer than its controller (as for [`EventKind::Rejected`]).
    Usage(NodeUsage),
}

/// Resource usage of a node's running instances, measured by its agent. The node's total is their sum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeUsage {
    /// When it was measured (agent clock).
    pub at_ms: u64,
    /// The longest window any CPU figure averages over (since the previous report, or the instance's start).
    pub window_ms: u64,
    pub instances: Vec<InstanceUsage>,
}

/// One running instance's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceUsage {
    pub id: String,
    /// CPU time over the window, in millicores of one core (1000: one core busy throughout).
    pub cpu_millis: u32,
    /// Linear memory the instance holds at `at_ms`.
    pub memory_bytes: u64,
}

/// CPU in millicores and memory in bytes, as Kubernetes counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_millis: u32,
    pub memory_bytes: u64,
}

impl Resources {
    pub const ZERO: Resources = Resources { cpu_millis: 0, memory_bytes: 0 };

    pub fn saturating_add(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
        }
    }

    pub fn saturating_sub(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
        }
    }

    /// True when `request` fits in `self` on both axes.
    pub fn fits(self, request: Resources) -> bool {
        request.cpu_millis <= self.cpu_millis && request.memory_bytes <= self.memory_bytes
    }
}

/// What code a node can run: a Cranelift native target or Pulley, wasmtime's portable interpreter (Linux
/// agents, WASI modules); or, on microcontrollers, the wasmi interpreter with the MCU host ABI
/// ([`crate::mcu`]), or no WebAssembly engine at all.
///
/// `Wasmi` and `None` were appended without a protocol bump: only MCU nodes announce them, in their own hello
/// (nodes → controller), and an MCU node's module requests name no profile (it fetches WebAssembly bytes), so
/// no peer older than its controller is ever sent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EngineTarget {
    X86_64,
    Aarch64,
    Pulley32,
    Pulley64,
    /// wasmi, a `no_std` interpreter, running MCU-ABI modules (firmware on a board that can hold it).
    Wasmi,
    /// No WebAssembly engine: a microcontroller that runs the firmware core alone (no CAS atomics for wasmi).
    None,
}

impl EngineTarget {
    /// The targets wasmtime runs (what an agent's `--engine` names and artifacts are compiled for).
    pub const ALL: [EngineTarget; 4] =
        [EngineTarget::X86_64, EngineTarget::Aarch64, EngineTarget::Pulley32, EngineTarget::Pulley64];
    /// The targets of microcontroller nodes.
    pub const MCU: [EngineTarget; 2] = [EngineTarget::Wasmi, EngineTarget::None];

    pub fn as_str(self) -> &'static str {
        match self {
            EngineTarget::X86_64 => "x86_64",
            EngineTarget::Aarch64 => "aarch64",
            EngineTarget::Pulley32 => "pulley32",
            EngineTarget::Pulley64 => "pulley64",
            EngineTarget::Wasmi => "wasmi",
            EngineTarget::None => "none",
        }
    }

    /// Which modules this target runs: WASI modules under wasmtime, MCU-ABI modules under wasmi, none at all.
    pub fn runs(self) -> Option<crate::mcu::ModuleAbi> {
        match self {
            EngineTarget::X86_64 | EngineTarget::Aarch64 | EngineTarget::Pulley32 | EngineTarget::Pulley64 => {
                Some(crate::mcu::ModuleAbi::Wasi)
            }
            EngineTarget::Wasmi => Some(crate::mcu::ModuleAbi::Mcu),
            EngineTarget::None => None,
        }
    }
}

impl fmt::Display for EngineTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EngineTarget {
    type Err = UnknownEngineTarget;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EngineTarget::ALL.into_iter().find(|t| t.as_str() == s).ok_or(UnknownEngineTarget)
    }
}

/// The engine target named is not one of [`EngineTarget::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownEngineTarget;

impl fmt::Display for UnknownEngineTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown engine target (expected x86_64, aarch64, pulley32 or pulley64)")
    }
}

/// How an agent's wasmtime engine is set up, as far as it decides whether precompiled code can load: the
/// controller compiles one artifact per distinct profile it sees, and the agent accepts only artifacts built for
/// its own. Two agents with equal profiles share artifacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EngineProfile {
    pub target: EngineTarget,
    /// Virtual address space reserved per linear memory; below 4 GiB, code carries explicit bounds checks.
    pub memory_reservation: u64,
    /// Guard region after each linear memory.
    pub memory_guard: u64,
}

/// Sent by an agent on every (re)connect: who it is and what it can hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub agent_version: String,
    pub board: String,
    pub arch: String,
    pub engine: EngineProfile,
    pub capacity: Resources,
    pub labels: Vec<(String, String)>,
    /// The spec generation the agent has persisted and is running.
    pub applied_generation: u64,
    /// Random, fixed when the agent's store is created. A new value means a new store whose event sequence
    /// numbers start again from 1, so the controller forgets the sequence numbers it has seen from this node.
    pub store_id: u64,
    /// Kept back for the agent and the OS (from the board profile or flags); the scheduler hands out
    /// `capacity - reserved`.
    pub reserved: Resources,
}

/// Periodic liveness plus the actual state of every instance on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub at_ms: u64,
    pub applied_generation: u64,
    pub instances: Vec<InstanceStatus>,
    /// Events dropped from the agent's outbox because it was full, since the agent's store was created.
    pub events_dropped: u64,
    /// The highest event sequence number the agent has assigned (0: none yet). The controller is caught up
    /// when it has applied this one.
    pub last_event_seq: u64,
    /// The oldest event still in the agent's outbox (0: the outbox is empty). Every event numbered below it was
    /// either acknowledged or dropped by a full outbox: the controller stops waiting for the ones it lacks.
    pub oldest_unacked_seq: u64,
    /// The agent's last period without a broker connection, once it has ended.
    pub last_outage: Option<Outage>,
    /// The agent store's id (as in [`Hello::store_id`]): sequence numbers are only comparable within one store,
    /// so a controller that missed the `Hello` of a reset store does not take its new, low numbers for
    /// duplicates. 0 from a protocol 3 peer, which did not send it.
    pub store_id: u64,
}

/// The acknowledgement of a node's events: every event of store `store_id` numbered up to `up_to` is applied
/// and persisted. An agent ignores an acknowledgement for another store (its store was reset since).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsAck {
    pub store_id: u64,
    pub up_to: u64,
}

/// A period during which the agent had no broker connection, and what it buffered meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    pub started_ms: u64,
    pub ended_ms: u64,
    /// Events created while disconnected (kept in the outbox and sent on reconnect).
    pub events_buffered: u64,
    /// Of those, how many the full outbox had to drop.
    pub events_dropped: u64,
    /// Log lines kept in the agent's ring while disconnected, and lines the full ring dropped.
    pub logs_buffered: u64,
    pub logs_dropped: u64,
}

/// Lifecycle state of one instance, as `edgectl get workloads` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InstanceState {
    Pending,
    Starting,
    Running,
    Succeeded,
    Failed,
    CrashLoopBackOff,
    Unknown,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "Pending",
            InstanceState::Starting => "Starting",
            InstanceState::Running => "Running",
            InstanceState::Succeeded => "Succeeded",
            InstanceState::Failed => "Failed",
            InstanceState::CrashLoopBackOff => "CrashLoopBackOff",
            InstanceState::Unknown => "Unknown",
        }
    }
}

/// The agent's view of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub id: String,
    pub state: InstanceState,
    pub restarts: u32,
    /// When the agent last started this instance (agent clock), if it has.
    pub started_at_ms: Option<u64>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

/// The whole desired state of one node.
///
/// Generations are ordered only within one `issuer` (the id of the controller store that numbered them): an
/// agent applies a spec whose issuer differs from the one it persisted, or whose generation is newer than the
/// persisted one. So a controller never needs to adopt a generation it did not publish (a replaced store starts
/// again from 1 under a new issuer), and a forged generation of `u64::MAX` pins nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Random, fixed when the controller's store is created; never 0 from a protocol 4 controller (0 means a
    /// protocol 3 document, which had no issuer).
    pub issuer: u64,
    pub generation: u64,
    pub instances: Vec<InstanceSpec>,
}

/// One instance to run. Its `id` is unique per template: any change of module, args, env or limits comes
/// with a new id, so an agent never has to compare templates to know whether to restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    pub id: String,
    pub namespace: String,
    pub workload: String,
    pub module: Sha256,
    pub module_size: u64,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cpu_millis: u32,
    /// Cap on the guest's linear memories, in bytes.
    pub memory_limit_bytes: u64,
    pub restart: RestartPolicy,
    /// Most CPU the instance may use, in millicores of one core; 0 means no limit beyond fair yielding.
    pub cpu_limit_millis: u32,
    /// A run longer than this is stopped (run-to-completion workloads); 0 means no deadline.
    pub timeout_ms: u64,
    /// Writable directories, each preopened in the guest as `/{name}`; nothing else of the filesystem is visible.
    pub volumes: Vec<VolumeSpec>,
}

/// A per-instance directory on the node with a size quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub name: String,
    pub size_bytes: u64,
}

/// When an exited instance is started again (always with exponential back-off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        }
    }

    /// Whether an instance that ended with `exit_code` (None: trapped or failed to start) runs again.
    pub fn restarts_after(self, exit_code: Option<i32>) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != Some(0),
            RestartPolicy::Never => false,
        }
    }
}

impl FromStr for RestartPolicy {
    type Err = UnknownRestartPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" | "Always" => Ok(RestartPolicy::Always),
            "on-failure" | "OnFailure" => Ok(RestartPolicy::OnFailure),
            "never" | "Never" => Ok(RestartPolicy::Never),
            _ => Err(UnknownRestartPolicy),
        }
    }
}

/// The restart policy named is not `always`, `on-failure` or `never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownRestartPolicy;

impl fmt::Display for UnknownRestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown restart policy (expected always, on-failure or never)")
    }
}

/// A lifecycle event. `seq` is per node and strictly increasing; the controller de-duplicates by (node, seq).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub at_ms: u64,
    pub instance: String,
    pub restarts: u32,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The agent is fetching the module or instantiating it.
    Starting,
    /// The guest's entry point is running.
    Started { started_at_ms: u64 },
    /// The guest returned or called `proc_exit`.
    Exited { code: i32 },
    /// The guest trapped (or hit a limit); the reason says which.
    Trapped { reason: String },
    /// The instance could not be started at all (module missing or invalid).
    Failed { reason: String },
    /// Waiting before the next restart.
    BackOff { delay_ms: u64 },
    /// Stopped because the spec no longer holds it.
    Stopped,
    /// A node-level event (`instance` empty): the agent refused a spec or an artifact that did not verify
    /// (unsigned, signed by another key, for another node, a replayed generation); the reason says which.
    /// Appended without a protocol bump: only nodes send events, and an agent is never newer than its
    /// controller (see [`crate::envelope`]).
    Rejected { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line a guest wrote (without its newline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub instance: String,
    pub stream: LogStream,
    pub at_ms: u64,
    pub line: String,
}

/// An agent asks for `[offset, offset + max_len)` of a module: its WebAssembly bytes (`artifact: None`) or the
/// code precompiled for an engine profile (`artifact: Some`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRequest {
    pub module: Sha256,
    pub artifact: Option<EngineProfile>,
    pub offset: u64,
    pub max_len: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModuleReply {
    Chunk(ModuleChunk),
    NotFound {
        module: Sha256,
    },
    /// The module cannot be compiled for the profile asked for; the reason says why.
    Refused {
        module: Sha256,
        artifact: Option<EngineProfile>,
        reason: String,
    },
}

/// Part of a transfer. `sha256` is the hash of the whole payload (the module's own hash for WebAssembly bytes,
/// the artifact's hash for precompiled code), the same in every chunk; the agent checks it once all `total` bytes
/// have arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleChunk {
    pub module: Sha256,
    pub artifact: Option<EngineProfile>,
    pub sha256: Sha256,
    pub offset: u64,
    pub total: u64,
    pub data: Vec<u8>,
}

/// Retained on `{p}/nodes/{node}/status`; the agent's Last Will publishes `online: false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub online: bool,
}

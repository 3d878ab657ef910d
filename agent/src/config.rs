//! Agent configuration, the bounds of the agent's local state, and what the agent announces about its node
//! (capacity, engine target, labels). Depends on no other module of the agent: everything else reads it.

use std::path::PathBuf;
use std::time::Duration;

use edge_proto::{EngineProfile, EngineTarget, Resources};

use crate::error::AgentError;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The node's name (a DNS label); also its MQTT client id.
    pub node: String,
    pub broker_host: String,
    pub broker_port: u16,
    /// Where the agent keeps its store (`agent.redb`).
    pub data_dir: PathBuf,
    /// A board profile name from `edge-boards` (e.g. `rpi-4`).
    pub board: Option<String>,
    /// Overrides the CPU capacity (else the board profile, else what the system reports).
    pub cpu_millis: Option<u32>,
    /// Overrides the memory capacity (else the board profile, else what the system reports).
    pub memory_bytes: Option<u64>,
    /// Overrides the resources kept back for the agent and the OS (else the board profile's, else
    /// [`DEFAULT_RESERVE`]).
    pub reserved: Option<Resources>,
    pub labels: Vec<(String, String)>,
    /// The longest the agent goes without a heartbeat (default [`edge_proto::timing::HEARTBEAT`]); changes are
    /// reported at once, checked every [`edge_proto::timing::TICK`] (or this interval, when shorter).
    pub heartbeat: Duration,
    /// The MQTT topic prefix (default [`edge_proto::topic::DEFAULT_PREFIX`]).
    pub prefix: String,
    /// Bounds of the outbox and the module cache.
    pub limits: Limits,
    /// The engine target (else this CPU's: Cranelift where it has a backend, Pulley elsewhere).
    pub engine: Option<EngineTarget>,
    /// A join token (`edgectl token create`), used once: after joining, the node's identity is in its store.
    pub join: Option<String>,
    /// Notified once the agent is up (its store open, its session started), for systemd's `READY=1`.
    pub ready: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// MQTT over TLS (`--broker mqtts://…`), pinned to the cluster key: the join token's fingerprint while
    /// joining, the stored cluster key after. Needs an identity (a join token or an earlier join).
    pub broker_tls: bool,
}

impl AgentConfig {
    pub fn new(node: impl Into<String>, broker_host: impl Into<String>, broker_port: u16, data_dir: PathBuf) -> Self {
        AgentConfig {
            node: node.into(),
            broker_host: broker_host.into(),
            broker_port,
            data_dir,
            board: None,
            cpu_millis: None,
            memory_bytes: None,
            reserved: None,
            labels: Vec::new(),
            heartbeat: edge_proto::timing::HEARTBEAT,
            prefix: edge_proto::topic::DEFAULT_PREFIX.to_string(),
            limits: Limits::default(),
            engine: None,
            join: None,
            ready: None,
            broker_tls: false,
        }
    }
}

/// Events kept unacknowledged by default; beyond the bound the oldest are dropped and counted.
pub const OUTBOX_LIMIT: usize = 10_000;
/// Default disk budget for cached modules.
pub const MODULE_BUDGET: u64 = 256 * 1024 * 1024;

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

/// Kept back on a machine without a board profile: about what the agent itself needs.
pub const DEFAULT_RESERVE: Resources = Resources { cpu_millis: 100, memory_bytes: 64 * 1024 * 1024 };

/// What the agent tells the controller about its node.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub board: String,
    pub arch: String,
    /// Target and memory layout of the wasmtime engine; artifacts are compiled for exactly this.
    pub engine: EngineProfile,
    pub capacity: Resources,
    pub reserved: Resources,
    pub labels: Vec<(String, String)>,
}

impl NodeIdentity {
    /// What this agent announces, from its flags, its board profile and the machine it runs on. A board
    /// profile that does not describe this machine (a microcontroller's, or another architecture's) is refused
    /// with both named: announcing it would make the scheduler trust capacity the node does not have.
    pub fn resolve(config: &AgentConfig) -> Result<NodeIdentity, AgentError> {
        Self::resolve_on(config, std::env::consts::ARCH)
    }

    /// [`NodeIdentity::resolve`] on a machine of architecture `host_arch` (`std::env::consts::ARCH`'s words).
    fn resolve_on(config: &AgentConfig, host_arch: &str) -> Result<NodeIdentity, AgentError> {
        edge_proto::validate_name(&config.node)
            .map_err(|e| AgentError::Config(format!("node name {:?}: {e}", config.node)))?;
        let board = match &config.board {
            Some(name) => Some(edge_boards::find(name).ok_or_else(|| {
                AgentError::Config(format!("unknown board {name:?} (known: {})", edge_boards::names().join(", ")))
            })?),
            None => None,
        };
        if let Some(b) = board {
            if b.runtime == edge_boards::Runtime::Firmware {
                return Err(AgentError::Config(format!(
                    "board {} is a microcontroller profile ({}, for the no_std firmware, not edge-agent) but this \
                     machine is {host_arch}: drop --board (the agent then describes this machine as it is)",
                    b.name, b.arch
                )));
            }
            // The profiles say `armv7` or `armv6` where Rust says `arm`.
            if b.rust_arch() != host_arch {
                return Err(AgentError::Config(format!(
                    "board {} is an {} profile but this machine is {host_arch}: drop --board (the agent then \
                     describes this machine as it is), or run the agent on that board",
                    b.name, b.arch
                )));
            }
        }
        let capacity = Resources {
            cpu_millis: config
                .cpu_millis
                .or(board.map(|b| b.cpu_millis))
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1000, |n| n.get() as u32 * 1000)),
            memory_bytes: config.memory_bytes.or(board.map(|b| b.memory_bytes)).unwrap_or_else(system_memory),
        };
        let mut labels = config.labels.clone();
        if let Some(b) = board {
            if !labels.iter().any(|(k, _)| k == "board") {
                labels.push(("board".into(), b.name.into()));
            }
        }
        Ok(NodeIdentity {
            board: board.map_or_else(|| "generic".to_string(), |b| b.name.to_string()),
            arch: host_arch.to_string(),
            engine: edge_engine::profile_for(
                config.engine.unwrap_or_else(edge_engine::host_target),
                capacity.memory_bytes,
            ),
            capacity,
            reserved: config.reserved.unwrap_or(match board {
                Some(b) => Resources { cpu_millis: b.reserved_cpu_millis, memory_bytes: b.reserved_memory_bytes },
                None => DEFAULT_RESERVE,
            }),
            labels,
        })
    }
}

/// Total memory from /proc/meminfo, or 1 GiB when it cannot be read.
pub fn system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(1 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_board_which_overrides_the_system() {
        let mut c = AgentConfig::new("n1", "h", 1, PathBuf::from("/tmp"));
        let sys = NodeIdentity::resolve(&c).unwrap();
        assert!(sys.capacity.cpu_millis >= 1000 && sys.capacity.memory_bytes > 0);
        c.board = Some("rpi-4".into());
        let pi = NodeIdentity::resolve_on(&c, "aarch64").unwrap();
        assert_eq!(pi.capacity.cpu_millis, 4000);
        assert_eq!(pi.reserved.cpu_millis, 200);
        assert_eq!(sys.reserved, DEFAULT_RESERVE);
        assert_eq!(pi.labels, [("board".to_string(), "rpi-4".to_string())]);
        c.cpu_millis = Some(1500);
        assert_eq!(NodeIdentity::resolve_on(&c, "aarch64").unwrap().capacity.cpu_millis, 1500);
        c.board = Some("rpi-99".into());
        assert!(NodeIdentity::resolve(&c).unwrap_err().to_string().contains("rpi-4"));
        c.board = None;
        c.node = "Bad Name".into();
        assert!(NodeIdentity::resolve(&c).is_err());
    }

    #[test]
    fn a_board_that_is_not_this_machine_is_refused_naming_both() {
        let mut c = AgentConfig::new("n1", "h", 1, PathBuf::from("/tmp"));
        c.board = Some("pico-w".into());
        let e = NodeIdentity::resolve_on(&c, "x86_64").unwrap_err().to_string();
        assert!(e.contains("pico-w") && e.contains("microcontroller") && e.contains("x86_64"), "{e}");
        c.board = Some("rpi-4".into());
        let e = NodeIdentity::resolve_on(&c, "x86_64").unwrap_err().to_string();
        assert!(e.contains("rpi-4 is an aarch64 profile") && e.contains("this machine is x86_64"), "{e}");
        for board in ["rpi-2", "rpi-3-32", "rpi-zero-w"] {
            c.board = Some(board.into());
            assert!(NodeIdentity::resolve_on(&c, "arm").is_ok(), "{board}: armv7 and armv6 are Rust's arm");
            let e = NodeIdentity::resolve_on(&c, "aarch64").unwrap_err().to_string();
            assert!(e.contains(board) && e.contains("this machine is aarch64"), "{e}");
        }
        for board in ["rpi-5", "rpi-4", "rpi-3", "rpi-zero-2w"] {
            c.board = Some(board.into());
            assert!(NodeIdentity::resolve_on(&c, "aarch64").is_ok(), "{board}");
            assert!(NodeIdentity::resolve_on(&c, "arm").is_err(), "{board} on a 32-bit OS");
        }
        c.board = Some("esp32-c3".into());
        assert!(NodeIdentity::resolve_on(&c, "riscv32").unwrap_err().to_string().contains("microcontroller"));
    }
}

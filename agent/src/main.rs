//! `edge-agent`: runs one node agent until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Parser;
use edge_agent::{AgentConfig, AgentError};

#[derive(Parser)]
#[command(version, about = "The edge orchestrator's node agent: runs WebAssembly workloads on this board")]
struct Args {
    /// This node's name (lowercase letters, digits and '-').
    #[arg(long, required_unless_present = "standalone")]
    node: Option<String>,
    /// The MQTT broker, mqtt://HOST:PORT.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    broker: String,
    /// Directory of the agent's store (created if missing).
    #[arg(long, default_value = "edge-agent-data")]
    data: PathBuf,
    /// Board profile (rpi-5, rpi-4, rpi-3, rpi-zero-2w, …).
    #[arg(long)]
    board: Option<String>,
    /// CPU capacity in millicores (overrides the board and the system).
    #[arg(long)]
    cpu: Option<u32>,
    /// Memory capacity in bytes (overrides the board and the system).
    #[arg(long)]
    memory: Option<u64>,
    /// CPU kept back for the agent and the OS, e.g. 200m (overrides the board's reserve).
    #[arg(long)]
    reserve_cpu: Option<String>,
    /// Memory kept back for the agent and the OS, e.g. 256Mi (overrides the board's reserve).
    #[arg(long)]
    reserve_memory: Option<String>,
    /// A node label k=v (repeatable).
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
    /// Longest interval between heartbeats, e.g. 60s or 500ms (bare numbers are seconds); changes are reported
    /// at once.
    #[arg(long, default_value_t = Interval(edge_proto::timing::HEARTBEAT))]
    heartbeat: Interval,
    /// MQTT topic prefix (the controller's --topic-prefix must match).
    #[arg(long = "topic-prefix", alias = "prefix", default_value = edge_proto::topic::DEFAULT_PREFIX)]
    topic_prefix: String,
    /// Events kept for the controller until it acknowledges them; beyond this the oldest are dropped and counted.
    #[arg(long, default_value_t = edge_agent::core::OUTBOX_LIMIT)]
    outbox_limit: usize,
    /// Disk budget of the module cache (e.g. 256Mi); unused modules are evicted least recently used first.
    #[arg(long, default_value = "256Mi")]
    module_cache: String,
    /// The engine: auto (this CPU: Cranelift code on x86_64 and aarch64, Pulley elsewhere), pulley (wasmtime's
    /// portable interpreter), or a target name (x86_64, aarch64, pulley32, pulley64).
    #[arg(long, default_value = "auto")]
    engine: String,
    /// Run without a controller or broker: the workloads of --manifest, with the same runtime and policies.
    #[arg(long, requires = "manifest")]
    standalone: bool,
    /// The TOML manifest for --standalone ([[workload]] tables: name, module, replicas, cpu, memory, restart,
    /// args, env).
    #[arg(long, requires = "standalone")]
    manifest: Option<PathBuf>,
    /// Join the cluster with this token (`edgectl token create`). Used once: the node's identity is then kept in
    /// --data, and later starts need no token.
    #[arg(long, value_name = "TOKEN", env = "EDGE_JOIN", hide_env_values = true)]
    join: Option<String>,
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info".parse().expect("static filter")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let args = Args::parse();
    let (host, port) = edge_proto::parse_broker_url(&args.broker)?;
    let node = args.node.unwrap_or_else(|| "standalone".to_string());
    let mut config = AgentConfig::new(node, host, port, args.data);
    if args.outbox_limit == 0 {
        return Err(anyhow!("--outbox-limit must be at least 1"));
    }
    config.limits.outbox = args.outbox_limit;
    config.limits.module_budget =
        edge_proto::quantity::parse_memory(&args.module_cache).map_err(|e| anyhow!("--module-cache: {e}"))?;
    config.engine = match args.engine.as_str() {
        "auto" => None,
        "pulley" => Some(edge_engine::pulley_target()),
        name => Some(name.parse().map_err(|e| anyhow!("--engine {name:?}: {e}, auto or pulley"))?),
    };
    config.board = args.board;
    config.cpu_millis = args.cpu;
    config.memory_bytes = args.memory;
    config.prefix = args.topic_prefix;
    if args.reserve_cpu.is_some() || args.reserve_memory.is_some() {
        let cpu = edge_proto::quantity::parse_cpu(args.reserve_cpu.as_deref().unwrap_or("0"))
            .map_err(|e| anyhow!("--reserve-cpu: {e}"))?;
        let memory = edge_proto::quantity::parse_memory(args.reserve_memory.as_deref().unwrap_or("0"))
            .map_err(|e| anyhow!("--reserve-memory: {e}"))?;
        config.reserved = Some(edge_proto::Resources { cpu_millis: cpu, memory_bytes: memory });
    }
    config.heartbeat = args.heartbeat.0;
    config.join = args.join;
    for kv in &args.labels {
        let (k, v) = kv.split_once('=').ok_or_else(|| anyhow!("--label {kv:?}: expected K=V"))?;
        config.labels.push((k.to_string(), v.to_string()));
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = tx.send(true);
    });
    match args.manifest {
        Some(manifest) => {
            if config.join.is_some() {
                tracing::warn!("--join ignored: a standalone node joins no cluster");
            }
            edge_agent::run_standalone(config, &manifest, rx).await.context("agent failed")
        }
        // A refused join is the operator's to fix, not an agent failure: its line says what to do.
        None => edge_agent::run(config, rx).await.map_err(|e| match e {
            e @ (AgentError::Join(_) | AgentError::OtherNode { .. }) => anyhow::Error::new(e),
            e => anyhow::Error::new(e).context("agent failed"),
        }),
    }
}

/// A periodic interval flag in the shared duration syntax ([`edge_proto::quantity::parse_duration`]), within
/// (0, 1h]: a zero interval would spin, a longer one never reports. Displayed the way it is parsed.
#[derive(Debug, Clone, Copy)]
struct Interval(Duration);

impl std::str::FromStr for Interval {
    type Err = String;

    fn from_str(s: &str) -> Result<Interval, String> {
        let d = edge_proto::quantity::parse_duration(s)?;
        if d.is_zero() || d > Duration::from_secs(3600) {
            return Err(format!("{s:?} is not between 1ms and 1h"));
        }
        Ok(Interval(d))
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&edge_proto::quantity::format_duration(self.0))
    }
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

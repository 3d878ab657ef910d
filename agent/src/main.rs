//! `edge-agent`: runs one node agent until Ctrl-C or SIGTERM.
//!
//! Settings come from the flags laid over the config file (`--config`, [`config_file`]); under systemd the agent
//! reports `READY=1` once up and `STOPPING=1` when it stops ([`notify`]).

mod config_file;
mod notify;

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{CommandFactory, FromArgMatches, Parser};
use config_file::{Launch, Settings, Text};
use edge_agent::AgentError;
use notify::Notifier;

#[derive(Parser)]
#[command(version, about = "The edge orchestrator's node agent: runs WebAssembly workloads on this board")]
struct Args {
    /// A config file (TOML; deploy/agent.toml is the commented example): every flag below is a key there, and
    /// a flag given here overrides its key.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// This node's name (lowercase letters, digits and '-'); required unless --standalone.
    #[arg(long)]
    node: Option<String>,
    /// The MQTT broker, mqtt://HOST:PORT.
    #[arg(long, default_value = config_file::DEFAULT_BROKER)]
    broker: Option<String>,
    /// Directory of the agent's store (created if missing) [default: $STATE_DIRECTORY, else edge-agent-data].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Board profile (`edgectl boards` lists them: rpi-5, rpi-4, rpi-3, rpi-zero-2w, rpi-2, …).
    #[arg(long)]
    board: Option<String>,
    /// CPU capacity in millicores (overrides the board and the system).
    #[arg(long)]
    cpu: Option<u32>,
    /// Memory capacity, in bytes or as a quantity like 2Gi (overrides the board and the system).
    #[arg(long)]
    memory: Option<String>,
    /// CPU kept back for the agent and the OS, e.g. 200m (overrides the board's reserve).
    #[arg(long)]
    reserve_cpu: Option<String>,
    /// Memory kept back for the agent and the OS, e.g. 256Mi (overrides the board's reserve).
    #[arg(long)]
    reserve_memory: Option<String>,
    /// A node label k=v (repeatable; overrides the config file's label k).
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
    /// Longest interval between heartbeats, e.g. 60s or 500ms (bare numbers are seconds); changes are reported
    /// at once.
    #[arg(long, value_parser = config_file::interval, default_value = HEARTBEAT_DEFAULT.as_str())]
    heartbeat: Option<Duration>,
    /// MQTT topic prefix (the controller's --topic-prefix must match).
    #[arg(long = "topic-prefix", alias = "prefix", default_value = edge_proto::topic::DEFAULT_PREFIX)]
    topic_prefix: Option<String>,
    /// Events kept for the controller until it acknowledges them; beyond this the oldest are dropped and counted.
    #[arg(long, default_value = OUTBOX_DEFAULT.as_str())]
    outbox_limit: Option<usize>,
    /// Disk budget of the module cache (e.g. 256Mi); unused modules are evicted least recently used first.
    #[arg(long, default_value = config_file::DEFAULT_MODULE_CACHE)]
    module_cache: Option<String>,
    /// The engine: auto (this CPU: Cranelift code on x86_64 and aarch64, Pulley elsewhere), pulley (wasmtime's
    /// portable interpreter), or a target name (x86_64, aarch64, pulley32, pulley64).
    #[arg(long, default_value = config_file::DEFAULT_ENGINE)]
    engine: Option<String>,
    /// Run without a controller or broker: the workloads of --manifest, with the same runtime and policies.
    #[arg(long)]
    standalone: bool,
    /// The TOML manifest for --standalone ([[workload]] tables: name, module, replicas, cpu, memory, restart,
    /// args, env).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Join the cluster with this token (`edgectl token create`). Used once: the node's identity is then kept in
    /// --data, and later starts need no token.
    #[arg(long, value_name = "TOKEN", env = "EDGE_JOIN", hide_env_values = true)]
    join: Option<String>,
}

/// Defaults `--help` shows that are not string constants.
static HEARTBEAT_DEFAULT: LazyLock<String> =
    LazyLock::new(|| edge_proto::quantity::format_duration(edge_proto::timing::HEARTBEAT));
static OUTBOX_DEFAULT: LazyLock<String> = LazyLock::new(|| edge_agent::core::OUTBOX_LIMIT.to_string());

impl Args {
    /// The flags as given: clap fills in the defaults `--help` shows, and those must not hide the config file's
    /// keys, so a value that came from its default is dropped here (the defaults apply again after the merge).
    fn parse_given() -> Args {
        let matches = Args::command().get_matches();
        let mut args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let defaulted = |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::DefaultValue);
        if defaulted("broker") {
            args.broker = None;
        }
        if defaulted("heartbeat") {
            args.heartbeat = None;
        }
        if defaulted("topic_prefix") {
            args.topic_prefix = None;
        }
        if defaulted("outbox_limit") {
            args.outbox_limit = None;
        }
        if defaulted("module_cache") {
            args.module_cache = None;
        }
        if defaulted("engine") {
            args.engine = None;
        }
        args
    }

    /// The flags given, as settings to lay over the config file's.
    fn settings(self) -> anyhow::Result<Settings> {
        let mut labels = std::collections::BTreeMap::new();
        for kv in &self.labels {
            let (k, v) = kv.split_once('=').ok_or_else(|| anyhow!("--label {kv:?}: expected K=V"))?;
            labels.insert(k.to_string(), v.to_string());
        }
        Ok(Settings {
            node: self.node,
            broker: self.broker,
            data: self.data,
            join: self.join,
            board: self.board,
            cpu: self.cpu,
            memory: self.memory.map(Text),
            reserve_cpu: self.reserve_cpu.map(Text),
            reserve_memory: self.reserve_memory.map(Text),
            labels,
            heartbeat: self.heartbeat.map(|d| Text(edge_proto::quantity::format_duration(d))),
            topic_prefix: self.topic_prefix,
            outbox_limit: self.outbox_limit,
            module_cache: self.module_cache.map(Text),
            engine: self.engine,
            standalone: self.standalone.then_some(true),
            manifest: self.manifest,
        })
    }
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
    let args = Args::parse_given();
    let file = match &args.config {
        Some(path) => Settings::read(path)?,
        None => Settings::default(),
    };
    let state_directory = std::env::var_os("STATE_DIRECTORY")
        // systemd may list several directories separated by ':'; the unit names one.
        .and_then(|v| v.to_string_lossy().split(':').next().map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty());
    let Launch { mut config, manifest } = args.settings()?.over(file).resolve(state_directory)?;
    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        tracing::warn!("NOTIFY_SOCKET unusable, no readiness for systemd: {e}");
        None
    });
    let notifier = notifier.map(std::sync::Arc::new);
    let ready = std::sync::Arc::new(tokio::sync::Notify::new());
    config.ready = Some(ready.clone());
    if let Some(n) = notifier.clone() {
        tokio::spawn(async move {
            ready.notified().await;
            notify::notify(Some(&n), "READY=1");
        });
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopping = notifier.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        notify::notify(stopping.as_deref(), "STOPPING=1");
        let _ = tx.send(true);
    });
    match manifest {
        Some(manifest) => {
            if config.join.is_some() {
                tracing::warn!("join token ignored: a standalone node joins no cluster");
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

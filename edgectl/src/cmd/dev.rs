//! `edgectl dev`: a whole local cluster in one process: a controller with its embedded broker and N agents.
//! Zero setup: once the controller's API is up, dev creates one single-use join token per agent through it (the
//! same client as `edgectl token create`) and hands it to that agent, so the agents join as real nodes do.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use edge_api::TokenRequest;
use edge_controller::{BrokerMode, ControllerConfig};
use tokio::sync::watch;

use edge_proto::quantity::{format_cpu, format_memory};
use edge_proto::Resources;

use crate::cli::DevArgs;
use crate::client::Client;
use crate::config;

/// How long a dev agent's join token lives: it is used within seconds, or the agent failed to start.
const JOIN_TTL: Duration = Duration::from_secs(600);

pub async fn run(args: DevArgs) -> Result<()> {
    // Keep the temporary directory alive for the whole run; it is removed when `_temp` drops.
    let (data, _temp): (PathBuf, Option<tempfile::TempDir>) = match args.data {
        Some(d) => (d, None),
        None => {
            let t = tempfile::Builder::new().prefix("edge-dev-").tempdir().context("cannot create a temp dir")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let controller_dir = data.join("controller");
    let config = ControllerConfig::new(controller_dir.clone(), args.api, BrokerMode::Embedded(args.mqtt));
    let controller = edge_controller::start(config).await.context("cannot start the controller")?;
    // The admin credential the controller made at its first start (kept in its data dir): what the agents'
    // join tokens are made with, and what the `dev` context carries.
    let admin_file = controller_dir.join(edge_controller::server::ADMIN_TOKEN_FILE);
    let admin = std::fs::read_to_string(&admin_file)
        .map(|t| t.trim().to_string())
        .with_context(|| format!("cannot read the admin credential {}", admin_file.display()))?;
    // The API listens once `start` returns, so the agents' join tokens come through it, as an operator's would.
    let scheme = if controller.api_tls { "https" } else { "http" };
    let api = format!("{scheme}://{}", controller.api_addr);
    // Beyond loopback the API speaks TLS: the context pins the cluster's CA file.
    let ca = controller.api_tls.then(|| controller_dir.join(edge_controller::server::CA_FILE).display().to_string());
    let client = Client::connect(&api, Some(admin.clone()), ca.as_deref())?;
    let (stop_agents, stop_rx) = watch::channel(false);
    let share = share(args.agents, args.agent_cpu, args.agent_memory);
    let mut agents = Vec::new();
    for i in 1..=args.agents {
        let name = format!("dev-{i}");
        let mut cfg = edge_agent::AgentConfig::new(
            name.clone(),
            controller.mqtt.0.clone(),
            controller.mqtt.1,
            data.join("agents").join(&name),
        );
        cfg.join = Some(join_token(&client, &name).await?);
        cfg.cpu_millis = Some(share.cpu_millis);
        cfg.memory_bytes = Some(share.memory_bytes);
        let rx = stop_rx.clone();
        agents.push(tokio::spawn(async move {
            if let Err(e) = edge_agent::run(cfg, rx).await {
                tracing::error!(agent = %name, error = %e, "agent stopped");
            }
        }));
    }
    println!(
        "edge dev cluster running: {} agent(s) of cpu {}, memory {} each, state in {}",
        args.agents,
        format_cpu(share.cpu_millis),
        format_memory(share.memory_bytes),
        data.display()
    );
    println!("API:  {api}");
    println!("MQTT: {}:{}", controller.mqtt.0, controller.mqtt.1);
    // The `dev` context makes every later edgectl talk to this cluster with no --server; if it cannot be written
    // (no home, a broken file), the cluster still runs and `try:` names the server.
    let plain = match remember(&api, &admin, ca.as_deref()) {
        Ok(line) => {
            println!("{line}");
            std::env::var("EDGE_SERVER").map_or(true, |s| s.trim().is_empty())
        }
        Err(e) => {
            println!("context: not written ({e:#})");
            false
        }
    };
    let server = if plain { String::new() } else { format!("--server {api} ") };
    println!("try:  edgectl {server}deploy tick examples/ticker.wasm --replicas 2 --wait");
    println!("Ctrl-C stops everything.");
    wait_for_signal().await?;
    println!("stopping…");
    let _ = stop_agents.send(true);
    for a in agents {
        let _ = a.await;
    }
    controller.shutdown().await;
    Ok(())
}

/// Writes the `dev` context with `api` and makes it current; the banner line that says so.
fn remember(api: &str, token: &str, ca: Option<&str>) -> Result<String> {
    let path = config::path().context("neither $XDG_CONFIG_HOME nor $HOME is set")?;
    config::make_current(&path, config::DEV_CONTEXT, api, Some(token), ca)?;
    Ok(format!("context: {} (current; in {}; other contexts untouched)", config::DEV_CONTEXT, path.display()))
}

/// What each local agent announces: the flags, else the host's CPUs and memory split evenly between the
/// agents (they share one machine: each announcing all of it would promise the scheduler N times the host).
fn share(agents: u32, cpu: Option<u32>, memory: Option<u64>) -> Resources {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    split(agents, cpus * 1000, edge_agent::config::system_memory(), cpu, memory)
}

/// [`share`] of a host with `host_cpu` millicores and `host_memory` bytes (pure, for tests). Never below 100m
/// and 64Mi: an agent with nothing to hand out is of no use.
fn split(agents: u32, host_cpu: u32, host_memory: u64, cpu: Option<u32>, memory: Option<u64>) -> Resources {
    let n = agents.max(1);
    Resources {
        cpu_millis: cpu.unwrap_or((host_cpu / n).max(100)),
        memory_bytes: memory.unwrap_or((host_memory / u64::from(n)).max(64 << 20)),
    }
}

/// A token for one agent: one use, bound to its name, living long enough for a slow first start. An agent that
/// already joined (a `--data` directory kept from an earlier run) keeps its identity and ignores it.
async fn join_token(client: &Client, agent: &str) -> Result<String> {
    let req = TokenRequest {
        ttl_ms: Some(JOIN_TTL.as_millis() as u64),
        uses: Some(1),
        node: Some(agent.to_string()),
        labels: Default::default(),
    };
    let created = client.create_token(&req).await.with_context(|| format!("cannot create a join token for {agent}"))?;
    Ok(created.token)
}

/// Ctrl-C, or SIGTERM (how process supervisors and scripts stop us).
async fn wait_for_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install a SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C"),
        _ = term.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn agents_split_the_host_unless_told() {
        let r = split(2, 2000, 4 << 30, None, None);
        assert_eq!((r.cpu_millis, r.memory_bytes), (1000, 2 << 30));
        let r = split(3, 2000, 3 << 30, None, None);
        assert_eq!((r.cpu_millis, r.memory_bytes), (666, 1 << 30));
        let r = split(2, 2000, 4 << 30, Some(500), Some(256 << 20));
        assert_eq!((r.cpu_millis, r.memory_bytes), (500, 256 << 20));
        let r = split(100, 1000, 1 << 30, None, None);
        assert_eq!((r.cpu_millis, r.memory_bytes), (100, 64 << 20), "never nothing");
        assert_eq!(split(0, 2000, 1 << 30, None, None).cpu_millis, 2000);
    }
}

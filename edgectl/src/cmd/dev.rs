//! `edgectl dev`: a whole local cluster in one process: a controller with its embedded broker and N agents.

use std::path::PathBuf;

use anyhow::{Context, Result};
use edge_controller::{BrokerMode, ControllerConfig};
use tokio::sync::watch;

use crate::cli::DevArgs;

pub async fn run(args: DevArgs) -> Result<()> {
    // Keep the temporary directory alive for the whole run; it is removed when `_temp` drops.
    let (data, _temp): (PathBuf, Option<tempfile::TempDir>) = match args.data {
        Some(d) => (d, None),
        None => {
            let t = tempfile::Builder::new().prefix("edge-dev-").tempdir().context("cannot create a temp dir")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let config = ControllerConfig::new(data.join("controller"), args.api, BrokerMode::Embedded(args.mqtt));
    let controller = edge_controller::start(config).await.context("cannot start the controller")?;
    let (stop_agents, stop_rx) = watch::channel(false);
    let mut agents = Vec::new();
    for i in 1..=args.agents {
        let name = format!("dev-{i}");
        let cfg = edge_agent::AgentConfig::new(
            name.clone(),
            controller.mqtt.0.clone(),
            controller.mqtt.1,
            data.join("agents").join(&name),
        );
        let rx = stop_rx.clone();
        agents.push(tokio::spawn(async move {
            if let Err(e) = edge_agent::run(cfg, rx).await {
                tracing::error!(agent = %name, error = %e, "agent stopped");
            }
        }));
    }
    println!("edge dev cluster running: {} agent(s), state in {}", args.agents, data.display());
    println!("API:  http://{}", controller.api_addr);
    println!("MQTT: {}:{}", controller.mqtt.0, controller.mqtt.1);
    println!(
        "try:  edgectl --server http://{} deploy tick examples/ticker.wasm --replicas 2 --wait",
        controller.api_addr
    );
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

/// Ctrl-C, or SIGTERM (how process supervisors and scripts stop us).
async fn wait_for_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install a SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C"),
        _ = term.recv() => Ok(()),
    }
}

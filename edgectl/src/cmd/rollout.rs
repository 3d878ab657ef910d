//! `edgectl rollout status|history|undo NAME`: follow, list and roll back a workload's revisions.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::cli::RolloutCommand;
use crate::client::Client;
use crate::table::Table;
use edge_proto::quantity::{format_cpu, format_memory};

pub async fn run(client: &Client, ns: &str, command: RolloutCommand) -> Result<()> {
    match command {
        RolloutCommand::Status { name, timeout } => status(client, ns, &name, Duration::from_secs(timeout)).await,
        RolloutCommand::History { name } => {
            let w = client.workload(ns, &name).await?;
            let mut t = Table::new(["REVISION", "CREATED", "MODULE", "CPU", "MEMORY", "ENV", "ARGS"]);
            for r in &w.revisions {
                let env: Vec<String> = r.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                t.row([
                    if r.revision == w.revision { format!("{} (current)", r.revision) } else { r.revision.to_string() },
                    r.created.clone(),
                    r.module.chars().take(12).collect(),
                    format_cpu(r.cpu_millis),
                    format_memory(r.memory_bytes),
                    env.join(","),
                    r.args.join(" "),
                ]);
            }
            print!("{}", t.render());
            Ok(())
        }
        RolloutCommand::Undo { name, to_revision } => {
            let w = client.undo(ns, &name, to_revision).await?;
            println!("workload {ns}/{name} rolled back (now revision {})", w.revision);
            Ok(())
        }
    }
}

async fn status(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let w = client.workload(ns, name).await?;
        let r = &w.rollout;
        let line = format!(
            "revision {}: {} of {} updated replicas ready, {} old replicas serving",
            w.revision, r.ready, w.replicas, r.old
        );
        if line != last {
            println!("{line}");
            last = line;
        }
        match r.state.as_str() {
            "complete" if r.ready as u32 >= w.replicas || w.replicas == 0 => {
                println!("rollout of {ns}/{name} complete");
                return Ok(());
            }
            "halted" => bail!(
                "rollout of {ns}/{name} halted: {}; the old instances keep serving (edgectl rollout undo {name})",
                r.reason.as_deref().unwrap_or("a new instance is failing")
            ),
            _ => {}
        }
        if start.elapsed() >= timeout {
            bail!("rollout of {ns}/{name} not complete after {} s", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

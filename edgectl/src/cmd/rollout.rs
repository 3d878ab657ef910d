//! `edgectl rollout status|history|undo NAME`: follow, list and roll back a workload's revisions.

use std::time::Duration;

use anyhow::{bail, Result};
use edge_api::WorkloadView;
use edge_proto::quantity::{format_cpu, format_duration, format_memory};

use crate::cli::RolloutCommand;
use crate::client::Client;
use crate::follow::{follow, Ended};
use crate::table::Table;
use crate::watch::{self, count, Watch};

pub async fn run(client: &Client, ns: &str, command: RolloutCommand) -> Result<()> {
    match command {
        RolloutCommand::Status { name, timeout } => status(client, ns, &name, timeout).await,
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

/// Follows the current revision until every replica is ready, one is failing, or `timeout` passes.
async fn status(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<()> {
    let w = client.workload(ns, name).await?;
    println!("waiting up to {} for {}", format_duration(timeout), watch::goal(&w));
    let mut last = String::new();
    let progress = |w: &WorkloadView| {
        let r = &w.rollout;
        let line = format!(
            "revision {}: {} of {} ready, {} serving",
            w.revision,
            r.ready,
            count(w.replicas as usize, "updated replica"),
            count(r.old, "old replica")
        );
        if line != last {
            println!("{line}");
            last = line;
        }
    };
    let watch = Watch::new(Some(&w), w.revision);
    match follow(client, (ns, name), watch, timeout, Duration::from_millis(200), progress).await? {
        Ended::Ready(_) => {
            println!("rollout of {ns}/{name} complete");
            Ok(())
        }
        Ended::Failing(why) => bail!("rollout of {ns}/{name} failed: {why}"),
        Ended::TimedOut(w) => {
            bail!("rollout of {ns}/{name} not complete after {}: {}", format_duration(timeout), watch::shortfall(&w))
        }
    }
}

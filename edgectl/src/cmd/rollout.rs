//! `edgectl rollout status|history|undo|restart NAME`: follow, list, roll back and restart a workload's revisions.

use std::time::Duration;

use anyhow::{bail, Result};
use edge_api::WorkloadView;
use edge_proto::quantity::{format_cpu, format_duration, format_memory};

use crate::cli::RolloutCommand;
use crate::client::Client;
use crate::follow::{follow, Ended};
use crate::progress::Progress;
use crate::table::Table;
use crate::template;
use crate::watch::{self, count, Watch};

pub async fn run(client: &Client, ns: &str, command: RolloutCommand) -> Result<()> {
    match command {
        RolloutCommand::Status { name, timeout } => status(client, ns, &name, timeout).await,
        RolloutCommand::History { name } => {
            let w = client.workload(ns, &name).await?;
            print!("{}", history_table(&w));
            Ok(())
        }
        RolloutCommand::Restart { name } => super::edit::restart(client, ns, &name).await,
        RolloutCommand::Undo { name, to_revision } => {
            let w = client.undo(ns, &name, to_revision).await?;
            println!("workload {ns}/{name} rolled back (now revision {})", w.revision);
            Ok(())
        }
    }
}

/// One row per kept revision, with what changed since the one before it (`created` for the first).
fn history_table(w: &WorkloadView) -> String {
    let mut t = Table::new(["REVISION", "CREATED", "MODULE", "CPU", "MEMORY", "CHANGE"]);
    let mut previous: Option<edge_api::DeployRequest> = None;
    for r in &w.revisions {
        let this = template::from_revision(r);
        let change = match &previous {
            None if r.revision == 1 => "created".to_string(),
            // The history was trimmed: what came before is not known any more.
            None => "-".to_string(),
            Some(p) => {
                let changes: Vec<String> = template::template_changes(p, &this).iter().map(short).collect();
                if changes.is_empty() {
                    "(same template)".into()
                } else {
                    changes.join("; ")
                }
            }
        };
        t.row([
            if r.revision == w.revision { format!("{} (current)", r.revision) } else { r.revision.to_string() },
            r.created.clone(),
            r.module.chars().take(12).collect(),
            format_cpu(r.cpu_millis),
            format_memory(r.memory_bytes),
            change,
        ]);
        previous = Some(this);
    }
    t.render()
}

/// A change for a table cell: long values (a module's sha256, a long variable) cut short.
fn short(c: &template::Change) -> String {
    if c.field == format!("env.{}", template::RESTARTED_AT) {
        return "restarted".into();
    }
    let cut = |v: &Option<String>| match v {
        None => "(unset)".to_string(),
        Some(v) if v.chars().count() > 24 => format!("{}…", v.chars().take(19).collect::<String>()),
        Some(v) => v.clone(),
    };
    format!("{} {} → {}", c.field, cut(&c.before), cut(&c.after))
}

/// Follows the current revision until every replica is ready, one is failing, or `timeout` passes.
async fn status(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<()> {
    let w = client.workload(ns, name).await?;
    println!("waiting up to {} for {}", format_duration(timeout), watch::goal(&w));
    let mut last = String::new();
    // On a terminal a spinner runs below the lines; piped, the lines alone.
    let spinner = Progress::spinner(format!("rollout of {ns}/{name}"));
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
            spinner.println(&line);
            last = line;
        }
    };
    let watch = Watch::new(Some(&w), w.revision);
    let ended = follow(client, (ns, name), watch, timeout, Duration::from_millis(200), progress).await;
    spinner.finish();
    match ended? {
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

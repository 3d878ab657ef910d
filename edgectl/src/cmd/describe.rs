//! `edgectl describe node|workload NAME [-o json]`: a node in depth (capacity, allocation, labels, conditions,
//! its instances, event delivery, what it buffered during its last disconnection), or a workload (its template,
//! rollout, revisions, instances and recent events).

use anyhow::Result;
use edge_api::{NodeDetail, WorkloadView};
use edge_proto::quantity::{format_cpu, format_memory};

use crate::cli::Output;
use crate::client::Client;
use crate::table::Table;

pub async fn node(client: &Client, name: &str, output: Output) -> Result<()> {
    let d = client.node(name).await?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&d)?),
        Output::Yaml => print!("{}", crate::manifest::render::json(&serde_json::to_value(&d)?)),
        Output::Table => print!("{}", render(&d)),
    }
    Ok(())
}

pub async fn workload(client: &Client, ns: &str, name: &str, output: Output) -> Result<()> {
    let w = client.workload(ns, name).await?;
    let events = client.workload_events(ns, name).await?;
    match output {
        Output::Json => {
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({"workload": w, "events": events}))?)
        }
        Output::Yaml => {
            print!("{}", crate::manifest::render::json(&serde_json::json!({"workload": w, "events": events})))
        }
        Output::Table => print!("{}", render_workload(&w, &events)),
    }
    Ok(())
}

fn render_workload(w: &WorkloadView, events: &[String]) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<14}{v}\n"));
    line("Name:", format!("{}/{}", w.namespace, w.name));
    line("Module:", w.module.clone());
    line("Replicas:", w.replicas.to_string());
    line("Requests:", format!("cpu {}, memory {}", format_cpu(w.cpu_millis), format_memory(w.memory_bytes)));
    line("Restart:", w.restart.clone());
    line("On node loss:", w.on_node_loss.clone());
    let sel: Vec<String> = w.selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    line("Selector:", if sel.is_empty() { "<none>".into() } else { sel.join(", ") });
    let labels: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    line("Labels:", if labels.is_empty() { "<none>".into() } else { labels.join(", ") });
    let r = &w.rollout;
    line(
        "Rollout:",
        format!(
            "revision {} {}{} ({} updated, {} ready, {} old)",
            w.revision,
            r.state,
            r.reason.as_ref().map(|x| format!(": {x}")).unwrap_or_default(),
            r.updated,
            r.ready,
            r.old
        ),
    );
    let revs: Vec<String> = w.revisions.iter().map(|r| r.revision.to_string()).collect();
    line("Revisions:", revs.join(", "));
    out.push_str("Instances:\n");
    let mut t = Table::new(["  INSTANCE", "NODE", "STATE", "RESTARTS", "STARTED", "REASON"]);
    for i in &w.instances {
        t.row([
            format!("  {}", i.id),
            i.node.clone().unwrap_or_else(|| "-".into()),
            i.state.clone(),
            i.restarts.to_string(),
            i.started_at.clone().unwrap_or_else(|| "-".into()),
            i.reason.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&t.render());
    out.push_str("Events:\n");
    if events.is_empty() {
        out.push_str("  <none>\n");
    }
    for e in events {
        out.push_str(&format!("  {e}\n"));
    }
    out
}

fn render(d: &NodeDetail) -> String {
    let n = &d.node;
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<14}{v}\n"));
    line("Name:", n.name.clone());
    line("Status:", n.status.clone());
    line("Board:", format!("{} ({}, engine {})", n.board, n.arch, n.engine));
    line("Agent:", n.agent_version.clone());
    line("Last seen:", n.last_seen.clone().unwrap_or_else(|| "never".into()));
    line("Generation:", format!("{} applied, {} published", n.generation, n.spec_generation));
    let labels: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    line("Labels:", if labels.is_empty() { "<none>".into() } else { labels.join(", ") });
    line(
        "Capacity:",
        format!("cpu {}, memory {}", format_cpu(n.capacity.cpu_millis), format_memory(n.capacity.memory_bytes)),
    );
    line(
        "Allocatable:",
        format!("cpu {}, memory {}", format_cpu(n.allocatable.cpu_millis), format_memory(n.allocatable.memory_bytes)),
    );
    line(
        "Allocated:",
        format!("cpu {}, memory {}", format_cpu(n.allocated.cpu_millis), format_memory(n.allocated.memory_bytes)),
    );
    out.push_str("Conditions:\n");
    let mut t = Table::new(["  TYPE", "STATUS", "SINCE", "REASON"]);
    for c in &d.conditions {
        t.row([
            format!("  {}", c.kind),
            if c.status { "True" } else { "False" }.into(),
            c.since.clone().unwrap_or_else(|| "-".into()),
            c.reason.clone(),
        ]);
    }
    out.push_str(&t.render());
    out.push_str("Instances:\n");
    if d.instances.is_empty() {
        out.push_str("  <none>\n");
    } else {
        let mut t =
            Table::new(["  NAMESPACE", "WORKLOAD", "INSTANCE", "STATE", "RESTARTS", "STARTED", "CPU", "MEMORY"]);
        for i in &d.instances {
            t.row([
                format!("  {}", i.namespace),
                i.workload.clone(),
                i.id.clone(),
                i.state.clone(),
                i.restarts.to_string(),
                i.started_at.clone().unwrap_or_else(|| "-".into()),
                format_cpu(i.cpu_millis),
                format_memory(i.memory_bytes),
            ]);
        }
        out.push_str(&t.render());
    }
    let e = &d.events;
    out.push_str(&format!(
        "Events:       {} received, {} duplicates ignored, {} missing; applied up to #{} of #{} ({} dropped by the \
         agent's outbox since its store was created)\n",
        e.received, e.duplicates, e.missing, e.applied_up_to, e.agent_last_seq, e.dropped_by_agent
    ));
    match &d.last_outage {
        Some(o) => out.push_str(&format!(
            "Last outage:  {} to {} ({:.1} s): {} events buffered, {} dropped; {} log lines buffered, {} dropped\n",
            o.started,
            o.ended,
            o.duration_ms as f64 / 1000.0,
            o.events_buffered,
            o.events_dropped,
            o.logs_buffered,
            o.logs_dropped
        )),
        None => out.push_str("Last outage:  none reported\n"),
    }
    // Only a joined node tags its reports; for one that never joined this stays 0.
    out.push_str(&format!(
        "Rejected reports: {} (bad, missing or replayed tag, since the controller started)\n",
        n.rejected_reports
    ));
    if !e.recent.is_empty() {
        out.push_str("Recent events:\n");
        for r in &e.recent {
            out.push_str(&format!("  {r}\n"));
        }
    }
    out
}

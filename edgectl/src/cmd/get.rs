//! `edgectl get nodes|workloads|namespaces|modules [-o table|json]`.

use anyhow::Result;
use edge_api::{ModuleView, NamespaceView, NodeView, WorkloadView};

use crate::cli::{GetWhat, Output};
use crate::client::Client;
use crate::table::Table;
use edge_proto::quantity::{format_cpu, format_memory};

pub async fn run(client: &Client, ns: Option<&str>, what: GetWhat, output: Output) -> Result<()> {
    match what {
        GetWhat::Nodes => {
            let nodes = client.nodes().await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&nodes)?),
                Output::Table => print!("{}", nodes_table(&nodes)),
            }
        }
        GetWhat::Namespaces => {
            let namespaces = client.namespaces().await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&namespaces)?),
                Output::Table => print!("{}", namespaces_table(&namespaces)),
            }
        }
        GetWhat::Modules => {
            let modules = client.modules().await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&modules)?),
                Output::Table => print!("{}", modules_table(&modules)),
            }
        }
        GetWhat::Workloads => {
            let workloads = client.workloads(ns).await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&workloads)?),
                Output::Table => print!("{}", workloads_table(&workloads)),
            }
        }
    }
    Ok(())
}

fn nodes_table(nodes: &[NodeView]) -> String {
    let mut t = Table::new([
        "NAME",
        "STATUS",
        "CPU (USED/ALLOCATABLE)",
        "MEMORY (USED/ALLOCATABLE)",
        "ARCH",
        "ENGINE",
        "INSTANCES",
        "GENERATION",
        "LAST SEEN",
    ]);
    for n in nodes {
        t.row([
            n.name.clone(),
            if n.cordoned { format!("{},SchedulingDisabled", n.status) } else { n.status.clone() },
            format!("{}/{}", format_cpu(n.allocated.cpu_millis), format_cpu(n.allocatable.cpu_millis)),
            format!("{}/{}", format_memory(n.allocated.memory_bytes), format_memory(n.allocatable.memory_bytes)),
            n.arch.clone(),
            n.engine.clone(),
            n.instances.to_string(),
            if n.generation == n.spec_generation {
                n.generation.to_string()
            } else {
                format!("{} (want {})", n.generation, n.spec_generation)
            },
            n.last_seen.clone().unwrap_or_else(|| "never".into()),
        ]);
    }
    t.render()
}

fn modules_table(modules: &[ModuleView]) -> String {
    let mut t = Table::new(["SHA256", "SIZE", "ARTIFACTS"]);
    for m in modules {
        let artifacts: Vec<String> = m
            .artifacts
            .iter()
            .map(|a| match &a.error {
                Some(e) => format!("{}: cannot compile ({e})", a.target),
                None => format!("{} {}", a.target, format_memory(a.size)),
            })
            .collect();
        t.row([
            m.sha256[..12.min(m.sha256.len())].to_string(),
            format_memory(m.size),
            if artifacts.is_empty() { "-".to_string() } else { artifacts.join(", ") },
        ]);
    }
    t.render()
}

fn namespaces_table(namespaces: &[NamespaceView]) -> String {
    let mut t = Table::new(["NAME", "WORKLOADS", "CPU (USED/QUOTA)", "MEMORY (USED/QUOTA)", "INSTANCES (USED/QUOTA)"]);
    let cpu = |v: u64| format_cpu(v.min(u32::MAX as u64) as u32);
    for n in namespaces {
        let q = &n.quota;
        t.row([
            n.name.clone(),
            n.workloads.to_string(),
            format!("{}/{}", cpu(n.used.cpu_millis), q.cpu_millis.map_or("-".into(), cpu)),
            format!("{}/{}", format_memory(n.used.memory_bytes), q.memory_bytes.map_or("-".into(), format_memory)),
            format!("{}/{}", n.used.instances, q.instances.map_or("-".into(), |i| i.to_string())),
        ]);
    }
    t.render()
}

fn workloads_table(workloads: &[WorkloadView]) -> String {
    let mut t = Table::new(["NAMESPACE", "WORKLOAD", "INSTANCE", "NODE", "STATE", "RESTARTS", "STARTED", "REASON"]);
    for w in workloads {
        if w.instances.is_empty() {
            t.row([
                w.namespace.clone(),
                w.name.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "".into(),
            ]);
        }
        for i in &w.instances {
            t.row([
                w.namespace.clone(),
                w.name.clone(),
                i.id.clone(),
                i.node.clone().unwrap_or_else(|| "-".into()),
                i.state.clone(),
                i.restarts.to_string(),
                i.started_at.clone().unwrap_or_else(|| "-".into()),
                i.reason.clone().unwrap_or_default(),
            ]);
        }
    }
    t.render()
}

//! `edgectl get nodes|workloads|namespaces|modules [NAME] [-o table|json|yaml]`. With `-o yaml` workloads and
//! namespaces print as manifests (`apply -f` reads them back as `unchanged`).

use anyhow::{anyhow, Result};
use edge_api::{ModuleView, NamespaceView, NodeView, WorkloadView};

use crate::cli::{GetWhat, Output};
use crate::client::Client;
use crate::manifest::render;
use crate::table::Table;
use edge_proto::quantity::{format_cpu, format_memory};
use time::OffsetDateTime;

pub async fn run(client: &Client, ns: Option<&str>, what: GetWhat, name: Option<&str>, output: Output) -> Result<()> {
    match what {
        GetWhat::Nodes => {
            let mut nodes = client.nodes().await?;
            if let Some(name) = name {
                nodes.retain(|n| n.name == name);
                if nodes.is_empty() {
                    return Err(anyhow!("node {name} not found"));
                }
            }
            match output {
                Output::Json => println!("{}", json_of(&nodes, name.is_some())?),
                Output::Yaml => print!("{}", render::json(&value_of(&nodes, name.is_some())?)),
                Output::Table => print!("{}", nodes_table(&nodes, OffsetDateTime::now_utc())),
            }
        }
        GetWhat::Namespaces => {
            let mut namespaces = client.namespaces().await?;
            if let Some(name) = name {
                namespaces.retain(|n| n.name == name);
                if namespaces.is_empty() {
                    return Err(anyhow!("namespace {name} not found"));
                }
            }
            match output {
                Output::Json => println!("{}", json_of(&namespaces, name.is_some())?),
                Output::Yaml => print!("{}", namespaces.iter().map(render::namespace).collect::<String>()),
                Output::Table => print!("{}", namespaces_table(&namespaces)),
            }
        }
        GetWhat::Modules => {
            let modules = match name {
                Some(sha) => vec![client.module(sha).await?.ok_or_else(|| anyhow!("module {sha} not found"))?],
                None => client.modules().await?,
            };
            match output {
                Output::Json => println!("{}", json_of(&modules, name.is_some())?),
                Output::Yaml => print!("{}", render::json(&value_of(&modules, name.is_some())?)),
                Output::Table => print!("{}", modules_table(&modules)),
            }
        }
        GetWhat::Workloads => {
            let workloads = match name {
                Some(name) => vec![client.workload(ns.unwrap_or("default"), name).await?],
                None => client.workloads(ns).await?,
            };
            match output {
                Output::Json => println!("{}", json_of(&workloads, name.is_some())?),
                Output::Yaml => print!("{}", workloads.iter().map(render::workload).collect::<String>()),
                Output::Table => print!("{}", workloads_table(&workloads)),
            }
        }
    }
    Ok(())
}

/// A list, or its one item when one was asked for by name.
fn value_of<T: serde::Serialize>(items: &[T], one: bool) -> Result<serde_json::Value> {
    Ok(match (one, items.first()) {
        (true, Some(item)) => serde_json::to_value(item)?,
        _ => serde_json::to_value(items)?,
    })
}

fn json_of<T: serde::Serialize>(items: &[T], one: bool) -> Result<String> {
    Ok(serde_json::to_string_pretty(&value_of(items, one)?)?)
}

/// `now` is an argument so that the JOINED ages render deterministically under test.
fn nodes_table(nodes: &[NodeView], now: OffsetDateTime) -> String {
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
        "JOINED",
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
            n.joined.as_deref().map_or_else(|| "-".into(), |j| crate::age::since(j, now)),
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

#[cfg(test)]
mod tests {
    use time::format_description::well_known::Rfc3339;

    use super::*;

    fn node(name: &str, joined: Option<&str>) -> NodeView {
        let r = serde_json::json!({"cpu_millis": 1000, "memory_bytes": 268_435_456u64});
        serde_json::from_value(serde_json::json!({
            "name": name, "status": "Ready", "capacity": r, "allocatable": r, "allocated": r, "labels": {},
            "cordoned": false, "board": "host", "arch": "x86_64", "engine": "x86_64-cranelift",
            "agent_version": "0.1.0", "last_seen": "2025-06-01T12:03:10Z", "generation": 3, "spec_generation": 3,
            "disconnected": false, "instances": 2, "joined": joined,
        }))
        .unwrap()
    }

    #[test]
    fn nodes_table_shows_joined_age() {
        let now = OffsetDateTime::parse("2025-06-01T12:03:12Z", &Rfc3339).unwrap();
        let nodes = [node("dev-1", Some("2025-06-01T12:00:00Z")), node("old", None)];
        let table = nodes_table(&nodes, now);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].ends_with("LAST SEEN              JOINED"), "{}", lines[0]);
        assert!(lines[0].starts_with("NAME    STATUS   CPU (USED/ALLOCATABLE)"), "{}", lines[0]);
        assert!(lines[1].ends_with("2025-06-01T12:03:10Z   3m12s"), "{}", lines[1]);
        assert!(lines[2].ends_with("2025-06-01T12:03:10Z   -"), "{}", lines[2]);
    }

    #[test]
    fn nodes_without_joined_still_decode() {
        // An older controller sends no `joined`.
        let mut v = serde_json::to_value(node("n", None)).unwrap();
        v.as_object_mut().unwrap().remove("joined");
        let n: NodeView = serde_json::from_value(v).unwrap();
        assert!(n.joined.is_none());
    }
}

//! `edgectl top nodes` and `edgectl top instances [-n NS | -A]` (`pods`, `po`): CPU and memory as agents
//! measure and report them (every minute by default), in kubectl's columns. CPU is in millicores averaged over
//! the agent's last reporting window; memory is the instances' linear memory. A node's figures are the sum
//! over its instances (the agent's own overhead is not counted), its percentages against its allocatable.

use anyhow::Result;
use edge_api::{InstanceTopView, NodeTopView};

use crate::cli::{Output, TopArgs, TopWhat};
use crate::client::Client;
use crate::table::Table;

/// Why `top` may have nothing to show yet.
const WHY: &str = "(agents report it every minute)";

pub async fn run(client: &Client, ns: &str, args: &TopArgs) -> Result<()> {
    match args.what {
        TopWhat::Nodes => {
            let nodes = client.top_nodes().await?;
            match args.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&nodes)?),
                Output::Yaml => print!("{}", crate::manifest::render::json(&serde_json::to_value(&nodes)?)),
                Output::Table if nodes.iter().all(|n| n.usage.is_none()) => eprintln!("{}", nothing_yet(None)),
                Output::Table => print!("{}", nodes_table(&nodes).render()),
            }
        }
        TopWhat::Instances => {
            let scope = if args.all_namespaces { None } else { Some(ns) };
            let instances = client.top_instances(scope).await?;
            match args.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&instances)?),
                Output::Yaml => print!("{}", crate::manifest::render::json(&serde_json::to_value(&instances)?)),
                Output::Table if instances.is_empty() => eprintln!("{}", nothing_yet(scope)),
                Output::Table => print!("{}", instances_table(&instances, scope.is_none()).render()),
            }
        }
    }
    Ok(())
}

fn nothing_yet(scope: Option<&str>) -> String {
    match scope {
        Some(ns) => format!("No usage reported yet in {ns} namespace {WHY}."),
        None => format!("No usage reported yet {WHY}."),
    }
}

/// `NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%`; `<unknown>` for a node with no report (yet, or NotReady).
fn nodes_table(nodes: &[NodeTopView]) -> Table {
    let mut t = Table::new(["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]);
    for n in nodes {
        let cells = match &n.usage {
            Some(u) => [
                cpu(u.cpu_millis),
                percent(u64::from(u.cpu_millis), u64::from(n.allocatable.cpu_millis)),
                memory(u.memory_bytes),
                percent(u.memory_bytes, n.allocatable.memory_bytes),
            ],
            None => std::array::from_fn(|_| "<unknown>".to_string()),
        };
        let [c, cp, m, mp] = cells;
        t.row([n.name.clone(), c, cp, m, mp]);
    }
    t
}

/// `NAME CPU(cores) MEMORY(bytes)`, with NAMESPACE first for every namespace.
fn instances_table(instances: &[InstanceTopView], all: bool) -> Table {
    let mut header = vec!["NAME".to_string(), "CPU(cores)".into(), "MEMORY(bytes)".into()];
    if all {
        header.insert(0, "NAMESPACE".into());
    }
    let mut t = Table::with_header(header);
    for i in instances {
        let mut row = vec![i.id.clone(), cpu(i.usage.cpu_millis), memory(i.usage.memory_bytes)];
        if all {
            row.insert(0, i.namespace.clone());
        }
        t.push(row);
    }
    t
}

/// Millicores, always with `m` as kubectl prints them (`1500m`).
fn cpu(millis: u32) -> String {
    format!("{millis}m")
}

/// Whole mebibytes as kubectl prints them (`64Mi`), kibibytes below one (WebAssembly guests can be that small).
fn memory(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{}Mi", bytes >> 20)
    } else {
        format!("{}Ki", bytes >> 10)
    }
}

/// `used` as a whole percentage of `of` (rounded down); `-` against nothing.
fn percent(used: u64, of: u64) -> String {
    if of == 0 {
        return "-".to_string();
    }
    format!("{}%", u128::from(used) * 100 / u128::from(of))
}

#[cfg(test)]
mod tests {
    use edge_api::ResourcesView;

    use super::*;

    fn node(name: &str, usage: Option<(u32, u64)>) -> NodeTopView {
        NodeTopView {
            name: name.into(),
            allocatable: ResourcesView { cpu_millis: 3800, memory_bytes: 4 << 30 },
            usage: usage.map(|(cpu_millis, memory_bytes)| ResourcesView { cpu_millis, memory_bytes }),
            timestamp: usage.map(|_| "2025-06-01T12:00:00.000Z".to_string()),
            window_ms: 60_000,
        }
    }

    fn instance(ns: &str, id: &str, cpu_millis: u32, memory_bytes: u64) -> InstanceTopView {
        InstanceTopView {
            id: id.into(),
            namespace: ns.into(),
            workload: id.split('-').next().unwrap_or(id).into(),
            node: "rpi-1".into(),
            usage: ResourcesView { cpu_millis, memory_bytes },
            timestamp: "2025-06-01T12:00:00.000Z".into(),
            window_ms: 60_000,
        }
    }

    #[test]
    fn nodes_read_as_kubectl_top_nodes() {
        let nodes = [node("rpi-1", Some((950, 1 << 30))), node("rpi-2", Some((0, 0))), node("rpi-3", None)];
        assert_eq!(
            nodes_table(&nodes).render(),
            "NAME    CPU(cores)   CPU%        MEMORY(bytes)   MEMORY%\n\
             rpi-1   950m         25%         1024Mi          25%\n\
             rpi-2   0m           0%          0Ki             0%\n\
             rpi-3   <unknown>    <unknown>   <unknown>       <unknown>\n"
        );
    }

    #[test]
    fn instances_read_as_kubectl_top_pods() {
        let instances = [instance("default", "spin-x7k2p", 1000, 1_179_648), instance("prod", "tick-b4k9z", 3, 65_536)];
        assert_eq!(
            instances_table(&instances, false).render(),
            "NAME         CPU(cores)   MEMORY(bytes)\n\
             spin-x7k2p   1000m        1Mi\n\
             tick-b4k9z   3m           64Ki\n"
        );
        assert_eq!(
            instances_table(&instances[1..], true).render(),
            "NAMESPACE   NAME         CPU(cores)   MEMORY(bytes)\n\
             prod        tick-b4k9z   3m           64Ki\n"
        );
        assert_eq!(
            nothing_yet(Some("prod")),
            "No usage reported yet in prod namespace (agents report it every minute)."
        );
        assert_eq!(nothing_yet(None), "No usage reported yet (agents report it every minute).");
    }

    #[test]
    fn top_takes_kubectl_names() {
        use clap::Parser;
        let parse = |args: &[&str]| match crate::cli::Cli::try_parse_from(args).map(|c| c.command) {
            Ok(crate::cli::Command::Top(t)) => (t.what, t.all_namespaces),
            _ => panic!("{args:?} is not a top command"),
        };
        assert!(parse(&["edgectl", "top", "nodes"]) == (TopWhat::Nodes, false));
        assert!(parse(&["edgectl", "top", "no"]) == (TopWhat::Nodes, false));
        assert!(parse(&["edgectl", "top", "pods", "-A"]) == (TopWhat::Instances, true));
        assert!(parse(&["edgectl", "top", "po", "-n", "prod"]) == (TopWhat::Instances, false));
        assert!(parse(&["edgectl", "top", "instances"]) == (TopWhat::Instances, false));
    }

    #[test]
    fn percentages_round_down_and_never_divide_by_zero() {
        assert_eq!(percent(1, 3), "33%");
        assert_eq!(percent(5, 0), "-");
        assert_eq!(percent(u64::MAX, 1), format!("{}%", u128::from(u64::MAX) * 100));
        assert_eq!(memory(1023), "0Ki");
    }
}

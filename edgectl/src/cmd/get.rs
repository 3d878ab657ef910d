//! `edgectl get instances|workloads|nodes|namespaces|modules|events [NAME] [-o table|wide|json|yaml|name] [-l SEL]
//! [--show-labels] [-A] [-w]`, in kubectl's shapes: `get pods` is `NAME READY STATUS RESTARTS AGE NODE`, `get
//! workloads` is `NAME READY UP-TO-DATE AVAILABLE AGE`, an empty list says `No resources found in NS
//! namespace.` (on stderr, exit 0). With `-o yaml` workloads and namespaces print as manifests (`apply -f` reads
//! them back as `unchanged`).
//!
//! Instances come from the workload views (each carries its replicas), so `get pods` costs one request; an
//! instance carries its workload's labels (`get pods -l app=tick`). The tables are pure functions of the views and
//! of "now", so they render deterministically under test. `-w` is `get_watch.rs`'s, over [`table_of`].

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use edge_api::{InstanceView, ModuleView, NamespaceView, NodeView, WorkloadView};
use edge_proto::quantity::{format_cpu, format_memory};
use serde::Serialize;
use time::OffsetDateTime;

use crate::age;
use crate::cli::{GetArgs, GetOutput, GetWhat};
use crate::client::Client;
use crate::manifest::render;
use crate::selector::{self, Selector};
use crate::table::Table;

/// How a list is shown, beyond its rows.
#[derive(Clone, Copy)]
pub struct Shape {
    wide: bool,
    show_labels: bool,
    /// Every namespace: a NAMESPACE column first.
    all: bool,
}

pub async fn run(client: &Client, ns: &str, args: GetArgs) -> Result<()> {
    let scope = if args.all_namespaces { None } else { Some(ns) };
    let selector = args.selector.as_deref().map(Selector::parse).transpose()?;
    if selector.is_some() && !matches!(args.what, GetWhat::Nodes | GetWhat::Workloads | GetWhat::Instances) {
        return Err(anyhow!("-l selects nodes, workloads and instances (pods), which carry labels"));
    }
    if args.watch && args.what != GetWhat::Events {
        return super::get_watch::run(client, ns, &args, selector.as_ref()).await;
    }
    let shape = Shape { wide: args.output == GetOutput::Wide, show_labels: args.show_labels, all: scope.is_none() };
    let name = args.name.as_deref();
    let now = OffsetDateTime::now_utc();
    let out = args.output;
    match args.what {
        GetWhat::Events => {
            let output = match out {
                GetOutput::Json => crate::cli::Output::Json,
                GetOutput::Yaml => crate::cli::Output::Yaml,
                GetOutput::Table | GetOutput::Wide => crate::cli::Output::Table,
                GetOutput::Name => return Err(anyhow!("-o name lists objects; events are not (try -o json)")),
            };
            let about = name.map(str::to_string);
            let events = crate::cli::EventsArgs {
                about,
                all_namespaces: args.all_namespaces,
                watch: args.watch,
                output,
                audit: false,
            };
            return super::events::run(client, ns, &events).await;
        }
        GetWhat::Credentials => return super::credential::list(client, name, out).await,
        GetWhat::Nodes => {
            let nodes = nodes(client, name, selector.as_ref(), true).await?;
            match out {
                GetOutput::Json => println!("{}", json_of(&nodes, name.is_some())?),
                GetOutput::Yaml => print!("{}", render::json(&value_of(&nodes, name.is_some())?)),
                GetOutput::Name => names("node", nodes.iter().map(|n| &n.name)),
                GetOutput::Table | GetOutput::Wide => table(nodes_table(&nodes, now, shape), None),
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
            match out {
                GetOutput::Json => println!("{}", json_of(&namespaces, name.is_some())?),
                GetOutput::Yaml => print!("{}", namespaces.iter().map(render::namespace).collect::<String>()),
                GetOutput::Name => names("namespace", namespaces.iter().map(|n| &n.name)),
                GetOutput::Table | GetOutput::Wide => table(namespaces_table(&namespaces), None),
            }
        }
        GetWhat::Modules => {
            let modules = match name {
                Some(sha) => vec![client.module(sha).await?.ok_or_else(|| anyhow!("module {sha} not found"))?],
                None => client.modules().await?,
            };
            match out {
                GetOutput::Json => println!("{}", json_of(&modules, name.is_some())?),
                GetOutput::Yaml => print!("{}", render::json(&value_of(&modules, name.is_some())?)),
                GetOutput::Name => names("module", modules.iter().map(|m| &m.sha256)),
                GetOutput::Table | GetOutput::Wide => table(modules_table(&modules), None),
            }
        }
        GetWhat::Workloads => {
            let workloads = workloads(client, ns, scope, name, selector.as_ref(), true).await?;
            match out {
                GetOutput::Json => println!("{}", json_of(&workloads, name.is_some())?),
                GetOutput::Yaml => print!("{}", workloads.iter().map(render::workload).collect::<String>()),
                GetOutput::Name => names("workload", workloads.iter().map(|w| &w.name)),
                GetOutput::Table | GetOutput::Wide => table(workloads_table(&workloads, now, shape), Some(scope)),
            }
        }
        GetWhat::Instances => {
            let workloads = client.workloads(scope).await?;
            let rows = instance_rows(&workloads, ns, name, selector.as_ref(), true)?;
            match out {
                GetOutput::Json => println!("{}", json_of(&rows, name.is_some())?),
                GetOutput::Yaml => print!("{}", render::json(&value_of(&rows, name.is_some())?)),
                GetOutput::Name => names("instance", rows.iter().map(|r| &r.i.id)),
                GetOutput::Table | GetOutput::Wide => table(instances_table(&rows, now, shape), Some(scope)),
            }
        }
    }
    Ok(())
}

/// The table `get` prints for nodes, workloads and instances, for `-w` to poll. `must_exist`: a NAME that is not
/// there is an error (else an empty table: what a watch sees once it was deleted).
pub async fn table_of(
    client: &Client,
    ns: &str,
    args: &GetArgs,
    selector: Option<&Selector>,
    now: OffsetDateTime,
    must_exist: bool,
) -> Result<Table> {
    let scope = if args.all_namespaces { None } else { Some(ns) };
    let shape = Shape { wide: args.output == GetOutput::Wide, show_labels: args.show_labels, all: scope.is_none() };
    let name = args.name.as_deref();
    Ok(match args.what {
        GetWhat::Nodes => nodes_table(&nodes(client, name, selector, must_exist).await?, now, shape),
        GetWhat::Workloads => {
            workloads_table(&workloads(client, ns, scope, name, selector, must_exist).await?, now, shape)
        }
        GetWhat::Instances => {
            let workloads = client.workloads(scope).await?;
            instances_table(&instance_rows(&workloads, ns, name, selector, must_exist)?, now, shape)
        }
        GetWhat::Namespaces | GetWhat::Modules | GetWhat::Events | GetWhat::Credentials => {
            return Err(anyhow!("-w watches nodes, workloads and instances (for events: `edgectl events -w`)"))
        }
    })
}

async fn nodes(client: &Client, name: Option<&str>, sel: Option<&Selector>, must_exist: bool) -> Result<Vec<NodeView>> {
    let mut nodes = client.nodes().await?;
    if let Some(name) = name {
        let name = name.strip_prefix("node/").unwrap_or(name);
        nodes.retain(|n| n.name == name);
        if nodes.is_empty() && must_exist {
            return Err(anyhow!("node {name} not found"));
        }
    }
    if let Some(sel) = sel {
        nodes.retain(|n| sel.matches(&n.labels));
    }
    Ok(nodes)
}

async fn workloads(
    client: &Client,
    ns: &str,
    scope: Option<&str>,
    name: Option<&str>,
    sel: Option<&Selector>,
    must_exist: bool,
) -> Result<Vec<WorkloadView>> {
    let mut workloads = match name.map(|n| n.strip_prefix("workload/").unwrap_or(n)) {
        Some(name) if must_exist => vec![client.workload(ns, name).await?],
        Some(name) => client.find_workload(ns, name).await?.into_iter().collect(),
        None => client.workloads(scope).await?,
    };
    if let Some(sel) = sel {
        workloads.retain(|w| sel.matches(&w.labels));
    }
    Ok(workloads)
}

/// The instances of `workloads` (those of workloads matching `sel`; the one named).
fn instance_rows<'a>(
    workloads: &'a [WorkloadView],
    ns: &str,
    name: Option<&str>,
    sel: Option<&Selector>,
    must_exist: bool,
) -> Result<Vec<InstanceRow<'a>>> {
    let mut rows: Vec<InstanceRow> = workloads
        .iter()
        .filter(|w| sel.is_none_or(|s| s.matches(&w.labels)))
        .flat_map(|w| {
            w.instances.iter().map(move |i| InstanceRow {
                namespace: &w.namespace,
                workload: &w.name,
                labels: &w.labels,
                i,
            })
        })
        .collect();
    if let Some(name) = name {
        let id = name.strip_prefix("instance/").or_else(|| name.strip_prefix("pod/")).unwrap_or(name);
        rows.retain(|r| r.i.id == id);
        if rows.is_empty() && must_exist {
            return Err(anyhow!("instance {id} not found in namespace {ns} (`edgectl get pods` lists them)"));
        }
    }
    Ok(rows)
}

/// An instance with the workload it is a replica of (`-o json` shows both, its workload's labels, then the
/// instance's fields).
#[derive(Serialize)]
struct InstanceRow<'a> {
    namespace: &'a str,
    workload: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
    #[serde(flatten)]
    i: &'a InstanceView,
}

/// Prints a table, or kubectl's sentence for an empty list (on stderr, so a pipe sees nothing): `scope` is
/// `Some(namespace)` for namespaced kinds (`Some(None)`: every namespace), `None` for cluster-scoped ones.
fn table(t: Table, scope: Option<Option<&str>>) {
    if t.is_empty() {
        eprintln!("{}", none_found(scope));
    } else {
        print!("{}", t.render());
    }
}

pub fn none_found(scope: Option<Option<&str>>) -> String {
    match scope {
        Some(Some(ns)) => format!("No resources found in {ns} namespace."),
        _ => "No resources found".to_string(),
    }
}

fn names<'a>(kind: &str, names: impl Iterator<Item = &'a String>) {
    for n in names {
        println!("{kind}/{n}");
    }
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

fn ago(instant: Option<&str>, now: OffsetDateTime) -> String {
    instant.map_or_else(|| "-".into(), |t| age::since(t, now))
}

fn header(shape: Shape, namespaced: bool, columns: &[&str], wide: &[&str]) -> Vec<String> {
    let mut h: Vec<String> = Vec::new();
    if namespaced && shape.all {
        h.push("NAMESPACE".into());
    }
    h.extend(columns.iter().map(|c| c.to_string()));
    if shape.wide {
        h.extend(wide.iter().map(|c| c.to_string()));
    }
    if shape.show_labels {
        h.push("LABELS".into());
    }
    h
}

fn nodes_table(nodes: &[NodeView], now: OffsetDateTime, shape: Shape) -> Table {
    let mut t = Table::with_header(header(
        shape,
        false,
        &["NAME", "STATUS", "CPU (USED/ALLOCATABLE)", "MEMORY (USED/ALLOCATABLE)", "INSTANCES", "AGE", "VERSION"],
        &["ARCH", "ENGINE", "BOARD", "GENERATION", "LAST SEEN", "JOINED"],
    ));
    for n in nodes {
        let mut row = vec![
            n.name.clone(),
            if n.cordoned { format!("{},SchedulingDisabled", n.status) } else { n.status.clone() },
            format!("{}/{}", format_cpu(n.allocated.cpu_millis), format_cpu(n.allocatable.cpu_millis)),
            format!("{}/{}", format_memory(n.allocated.memory_bytes), format_memory(n.allocatable.memory_bytes)),
            n.instances.to_string(),
            ago(n.created.as_deref().or(n.joined.as_deref()), now),
            n.agent_version.clone(),
        ];
        if shape.wide {
            row.extend([
                n.arch.clone(),
                n.engine.clone(),
                n.board.clone(),
                if n.generation == n.spec_generation {
                    n.generation.to_string()
                } else {
                    format!("{} (want {})", n.generation, n.spec_generation)
                },
                n.last_seen.as_deref().map_or_else(|| "never".into(), |s| format!("{} ago", age::since(s, now))),
                ago(n.joined.as_deref(), now),
            ]);
        }
        if shape.show_labels {
            row.push(selector::show(&n.labels));
        }
        t.push(row);
    }
    t
}

fn modules_table(modules: &[ModuleView]) -> Table {
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
    t
}

fn namespaces_table(namespaces: &[NamespaceView]) -> Table {
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
    t
}

/// kubectl's deployment columns: READY is ready replicas (of any revision) over the replicas asked for,
/// UP-TO-DATE the replicas of the current revision, AVAILABLE the ready ones.
fn workloads_table(workloads: &[WorkloadView], now: OffsetDateTime, shape: Shape) -> Table {
    let mut t = Table::with_header(header(
        shape,
        true,
        &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        &["SELECTOR", "MODULE"],
    ));
    for w in workloads {
        let ready = w.instances.iter().filter(|i| i.ready).count();
        let mut row = Vec::new();
        if shape.all {
            row.push(w.namespace.clone());
        }
        let created = w.created.as_deref().or(w.revisions.first().map(|r| r.created.as_str()));
        row.extend([
            w.name.clone(),
            format!("{ready}/{}", w.replicas),
            w.rollout.updated.to_string(),
            ready.to_string(),
            ago(created, now),
        ]);
        if shape.wide {
            row.push(if w.selector.is_empty() { "<none>".into() } else { selector::show(&w.selector) });
            row.push(w.module[..12.min(w.module.len())].to_string());
        }
        if shape.show_labels {
            row.push(selector::show(&w.labels));
        }
        t.push(row);
    }
    t
}

/// kubectl's pod columns; AGE is since the agent last started the instance (`-` before its first start).
fn instances_table(rows: &[InstanceRow], now: OffsetDateTime, shape: Shape) -> Table {
    let mut t = Table::with_header(header(
        shape,
        true,
        &["NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE"],
        &["WORKLOAD", "REVISION", "REASON"],
    ));
    for r in rows {
        let i = r.i;
        let mut row = Vec::new();
        if shape.all {
            row.push(r.namespace.to_string());
        }
        row.extend([
            i.id.clone(),
            if i.ready { "1/1" } else { "0/1" }.to_string(),
            i.state.clone(),
            i.restarts.to_string(),
            ago(i.started_at.as_deref(), now),
            i.node.clone().unwrap_or_else(|| "<none>".into()),
        ]);
        if shape.wide {
            row.extend([r.workload.to_string(), i.revision.to_string(), i.reason.clone().unwrap_or_default()]);
        }
        if shape.show_labels {
            row.push(selector::show(r.labels));
        }
        t.push(row);
    }
    t
}

#[cfg(test)]
mod tests {
    use time::format_description::well_known::Rfc3339;

    use super::*;

    const PLAIN: Shape = Shape { wide: false, show_labels: false, all: false };

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse("2025-06-01T12:03:12Z", &Rfc3339).unwrap()
    }

    fn node(name: &str, joined: Option<&str>) -> NodeView {
        let r = serde_json::json!({"cpu_millis": 1000, "memory_bytes": 268_435_456u64});
        serde_json::from_value(serde_json::json!({
            "name": name, "status": "Ready", "capacity": r, "allocatable": r, "allocated": r,
            "labels": {"zone": "a"}, "cordoned": false, "board": "generic", "arch": "x86_64", "engine": "x86_64",
            "agent_version": "0.1.0", "last_seen": "2025-06-01T12:03:10Z", "generation": 3, "spec_generation": 3,
            "disconnected": false, "instances": 2, "joined": joined, "created": "2025-06-01T12:00:00Z",
        }))
        .unwrap()
    }

    fn workload() -> WorkloadView {
        let instance = |id: &str, node: Option<&str>, state: &str, ready: bool, started: Option<&str>| {
            serde_json::json!({"id": id, "node": node, "state": state, "restarts": if ready { 0 } else { 4 },
                "started_at": started, "exit_code": null, "reason": if ready { None } else { Some("exited with code 1") },
                "ready": ready, "revision": 2})
        };
        serde_json::from_value(serde_json::json!({
            "name": "tick", "namespace": "default", "replicas": 3, "module": "0123456789abcdef0123",
            "cpu_millis": 100, "memory_bytes": 33_554_432u64, "restart": "always", "on_node_loss": "reschedule",
            "selector": {"role": "edge"}, "labels": {"app": "tick"}, "env": [], "args": [], "revision": 2, "created": "2025-05-30T08:00:00Z",
            "instances": [
                instance("tick-x7k2p", Some("dev-1"), "Running", true, Some("2025-06-01T12:02:27Z")),
                instance("tick-b9qzd", Some("dev-2"), "CrashLoopBackOff", false, Some("2025-06-01T12:03:00Z")),
                instance("tick-m4r8t", None, "Pending", false, None),
            ],
            "rollout": {"state": "progressing", "reason": null, "updated": 3, "ready": 1, "old": 0},
            "revisions": [],
        }))
        .unwrap()
    }

    #[test]
    fn nodes_table_has_age_and_version() {
        let nodes = [node("dev-1", Some("2025-06-01T12:00:00Z"))];
        assert_eq!(
            nodes_table(&nodes, now(), PLAIN).render(),
            "NAME    STATUS   CPU (USED/ALLOCATABLE)   MEMORY (USED/ALLOCATABLE)   INSTANCES   AGE     VERSION\n\
             dev-1   Ready    1/1                      256Mi/256Mi                 2           3m12s   0.1.0\n"
        );
    }

    #[test]
    fn nodes_wide_with_labels() {
        let nodes = [node("dev-1", Some("2025-06-01T12:00:00Z")), node("old", None)];
        let shape = Shape { wide: true, show_labels: true, all: false };
        let table = nodes_table(&nodes, now(), shape).render();
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0]
                .ends_with("AGE     VERSION   ARCH     ENGINE   BOARD     GENERATION   LAST SEEN   JOINED   LABELS"),
            "{table}"
        );
        assert!(
            lines[1]
                .ends_with("3m12s   0.1.0     x86_64   x86_64   generic   3            2s ago      3m12s    zone=a"),
            "{table}"
        );
        assert!(lines[2].ends_with("2s ago      -        zone=a"), "{table}");
    }

    #[test]
    fn workloads_table_is_kubectl_shaped() {
        assert_eq!(
            workloads_table(&[workload()], now(), PLAIN).render(),
            "NAME   READY   UP-TO-DATE   AVAILABLE   AGE\n\
             tick   1/3     3            1           2d4h\n"
        );
        let shape = Shape { wide: true, show_labels: false, all: true };
        assert_eq!(
            workloads_table(&[workload()], now(), shape).render(),
            "NAMESPACE   NAME   READY   UP-TO-DATE   AVAILABLE   AGE    SELECTOR    MODULE\n\
             default     tick   1/3     3            1           2d4h   role=edge   0123456789ab\n"
        );
    }

    #[test]
    fn instances_table_is_kubectl_shaped() {
        let w = workload();
        let rows: Vec<InstanceRow> = w
            .instances
            .iter()
            .map(|i| InstanceRow { namespace: "default", workload: "tick", labels: &w.labels, i })
            .collect();
        assert_eq!(
            instances_table(&rows, now(), PLAIN).render(),
            "NAME         READY   STATUS             RESTARTS   AGE   NODE\n\
             tick-x7k2p   1/1     Running            0          45s   dev-1\n\
             tick-b9qzd   0/1     CrashLoopBackOff   4          12s   dev-2\n\
             tick-m4r8t   0/1     Pending            4          -     <none>\n"
        );
        let wide = instances_table(&rows, now(), Shape { wide: true, show_labels: false, all: false }).render();
        assert!(wide.lines().nth(2).unwrap().ends_with("dev-2    tick       2          exited with code 1"), "{wide}");
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!((json["workload"].as_str(), json["id"].as_str()), (Some("tick"), Some("tick-x7k2p")));
    }

    #[test]
    fn labels_select_workloads_and_their_instances() {
        let w = workload();
        let mut other = workload();
        other.name = "other".into();
        other.labels.clear();
        let both = [w, other];
        let sel = Selector::parse("app=tick").unwrap();
        let rows = instance_rows(&both, "default", None, Some(&sel), true).unwrap();
        assert_eq!(rows.len(), 3, "the instances of tick only");
        assert!(rows.iter().all(|r| r.workload == "tick"));
        let shape = Shape { wide: false, show_labels: true, all: false };
        let pods = instances_table(&rows, now(), shape).render();
        assert!(pods.lines().nth(1).unwrap().ends_with("dev-1    app=tick"), "{pods}");
        let table = workloads_table(&both, now(), shape).render();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].ends_with("AGE    LABELS") && lines[1].ends_with("app=tick"), "{table}");
        assert!(lines[2].ends_with("<none>"), "{table}");
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(json["labels"]["app"], "tick");
        let none = Selector::parse("app=nope").unwrap();
        assert!(instance_rows(&both, "default", None, Some(&none), true).unwrap().is_empty());
        assert!(instance_rows(&both, "default", Some("tick-gone"), None, true).is_err());
        assert!(instance_rows(&both, "default", Some("tick-gone"), None, false).unwrap().is_empty());
    }

    #[test]
    fn an_empty_list_says_so_like_kubectl() {
        assert!(instances_table(&[], now(), PLAIN).is_empty());
        assert_eq!(none_found(Some(Some("team-a"))), "No resources found in team-a namespace.");
        assert_eq!(none_found(Some(None)), "No resources found");
        assert_eq!(none_found(None), "No resources found");
    }

    #[test]
    fn nodes_without_joined_still_decode() {
        // An older controller sends no `joined` and no `created`.
        let mut v = serde_json::to_value(node("n", None)).unwrap();
        v.as_object_mut().unwrap().remove("joined");
        v.as_object_mut().unwrap().remove("created");
        let n: NodeView = serde_json::from_value(v).unwrap();
        assert!(n.joined.is_none() && n.created.is_none());
        assert!(nodes_table(&[n], now(), PLAIN).render().contains("   -     0.1.0"));
    }
}

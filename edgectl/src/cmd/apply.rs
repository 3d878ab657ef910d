//! `edgectl apply -f`, `diff -f` and `delete -f`: manifests (see `crate::manifest`) against what the controller
//! holds. All manifests are read and checked before anything is sent; then namespaces go first, workloads in
//! document order. An object equal to what the controller holds is `unchanged` and not sent at all.
//!
//! `apply` stops at the first object the controller refuses (those before it stay applied); `delete -f` goes
//! through every object and then reports what failed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use edge_api::{DeployRequest, NamespaceRequest, Quota};
use edge_proto::quantity::{format_cpu, format_memory_exact};
use reqwest::StatusCode;

use crate::cli::DryRun;
use crate::client::{Client, Refused};
use crate::manifest::decode::{ModuleRef, Object};
use crate::manifest::source::{load, Loaded};
use crate::template::{self, Change};

/// One object of the manifests, next to what the controller holds for it.
// A command holds a few of these, briefly: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Item {
    Namespace {
        origin: String,
        name: String,
        desired: Quota,
        current: Option<Quota>,
    },
    Workload {
        origin: String,
        ns: String,
        name: String,
        desired: DeployRequest,
        current: Option<DeployRequest>,
        /// The module file and its bytes, when the manifest names a file (uploaded by `apply` if missing).
        file: Option<(String, Vec<u8>)>,
        /// Where `spec.module` is written.
        module_place: String,
    },
}

impl Item {
    fn label(&self) -> String {
        match self {
            Item::Namespace { name, .. } => format!("namespace/{name}"),
            Item::Workload { name, .. } => format!("workload/{name}"),
        }
    }

    fn origin(&self) -> &str {
        match self {
            Item::Namespace { origin, .. } | Item::Workload { origin, .. } => origin,
        }
    }

    /// `created`, `configured` or `unchanged`: what applying it does.
    fn state(&self) -> &'static str {
        let (exists, same) = match self {
            Item::Namespace { desired, current, .. } => (current.is_some(), current.as_ref() == Some(desired)),
            Item::Workload { desired, current, .. } => (current.is_some(), current.as_ref() == Some(desired)),
        };
        match (exists, same) {
            (false, _) => "created",
            (true, true) => "unchanged",
            (true, false) => "configured",
        }
    }

    /// The fields that differ, named as in the manifest (`spec.replicas`).
    fn changes(&self) -> Vec<Change> {
        let mut changes = match self {
            Item::Namespace { desired, current, .. } => {
                diff_fields(&current.map(|q| quota_fields(&q)).unwrap_or_default(), &quota_fields(desired))
            }
            Item::Workload { desired, current, .. } => match current {
                Some(current) => template::changes(current, desired),
                None => diff_fields(&[], &template::fields(desired)),
            },
        };
        for c in &mut changes {
            c.field = format!("spec.{}", c.field);
        }
        changes
    }
}

fn quota_fields(q: &Quota) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(c) = q.cpu_millis {
        out.push(("quota.cpu".to_string(), format_cpu(u32::try_from(c).unwrap_or(u32::MAX))));
    }
    if let Some(m) = q.memory_bytes {
        out.push(("quota.memory".to_string(), format_memory_exact(m)));
    }
    if let Some(i) = q.instances {
        out.push(("quota.instances".to_string(), i.to_string()));
    }
    out
}

fn diff_fields(before: &[(String, String)], after: &[(String, String)]) -> Vec<Change> {
    let old: BTreeMap<&str, &str> = before.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let new: BTreeMap<&str, &str> = after.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut out: Vec<Change> = after
        .iter()
        .filter(|(k, v)| old.get(k.as_str()) != Some(&v.as_str()))
        .map(|(k, v)| Change {
            field: k.clone(),
            before: old.get(k.as_str()).map(|s| s.to_string()),
            after: Some(v.clone()),
        })
        .collect();
    out.extend(before.iter().filter(|(k, _)| !new.contains_key(k.as_str())).map(|(k, v)| Change {
        field: k.clone(),
        before: Some(v.clone()),
        after: None,
    }));
    out
}

/// The namespace an object goes to: its own, or `-n`'s.
fn namespace_of(l: &Loaded, default_ns: &str) -> String {
    match &l.object {
        Object::Workload(w) => w.namespace.clone().unwrap_or_else(|| default_ns.to_string()),
        Object::Namespace(_) => String::new(),
    }
}

/// Refuses an object given twice, naming both places.
fn refuse_duplicates(loaded: &[Loaded], default_ns: &str) -> Result<()> {
    let mut seen: HashMap<(bool, String, String), String> = HashMap::new();
    for l in loaded {
        let (is_workload, name) = match &l.object {
            Object::Workload(w) => (true, w.name.clone()),
            Object::Namespace(n) => (false, n.name.clone()),
        };
        let place = l.place(l.at);
        if let Some(first) = seen.insert((is_workload, namespace_of(l, default_ns), name.clone()), place.clone()) {
            let kind = if is_workload { "workload" } else { "namespace" };
            bail!("{place}: {kind}/{name} is also defined at {first}");
        }
    }
    Ok(())
}

/// Reads the manifests and what the controller holds for each object.
async fn plan(client: &Client, default_ns: &str, loaded: &[Loaded]) -> Result<Vec<Item>> {
    refuse_duplicates(loaded, default_ns)?;
    let namespaces: HashMap<String, Quota> = if loaded.iter().any(|l| matches!(l.object, Object::Namespace(_))) {
        client.namespaces().await?.into_iter().map(|n| (n.name, n.quota)).collect()
    } else {
        HashMap::new()
    };
    let mut files: HashMap<PathBuf, (String, Vec<u8>)> = HashMap::new();
    let mut items = Vec::new();
    for l in loaded {
        let origin = l.place(l.at);
        match &l.object {
            Object::Namespace(n) => {
                warn_labels(l, n.labels_at, &n.labels, "namespaces");
                items.push(Item::Namespace {
                    origin,
                    name: n.name.clone(),
                    desired: n.quota,
                    current: namespaces.get(&n.name).copied(),
                })
            }
            Object::Workload(w) => {
                let module_place = format!("{}: spec.module", l.place(w.module_at));
                let (sha, file) = match &w.module {
                    ModuleRef::Sha256(sha) => (sha.clone(), None),
                    ModuleRef::Path(p) => {
                        let path = l.dir.join(p);
                        if !files.contains_key(&path) {
                            let bytes = std::fs::read(&path)
                                .map_err(|e| anyhow!("{module_place}: cannot read {}: {e}", path.display()))?;
                            if !bytes.starts_with(b"\0asm") {
                                bail!("{module_place}: {} is not a WebAssembly module", path.display());
                            }
                            files.insert(path.clone(), (crate::module::sha256(&bytes), bytes));
                        }
                        let (sha, bytes) = &files[&path];
                        (sha.clone(), Some((path.display().to_string(), bytes.clone())))
                    }
                };
                let ns = namespace_of(l, default_ns);
                let current = client.find_workload(&ns, &w.name).await?.map(|v| template::from_view(&v));
                let mut desired = DeployRequest { module: sha, ..w.request.clone() };
                if let Some(current) = &current {
                    template::keep_restart_marker(&mut desired, current);
                }
                items.push(Item::Workload {
                    origin,
                    ns,
                    name: w.name.clone(),
                    desired: template::normalize(desired),
                    current,
                    file,
                    module_place,
                })
            }
        }
    }
    // Namespaces first, so a workload can go into a namespace the same manifests create.
    items.sort_by_key(|i| !matches!(i, Item::Namespace { .. }));
    Ok(items)
}

/// The controller keeps no labels of namespaces yet: say so rather than drop them silently.
fn warn_labels(l: &Loaded, at: Option<crate::manifest::tree::Mark>, labels: &BTreeMap<String, String>, what: &str) {
    if let (Some(at), false) = (at, labels.is_empty()) {
        eprintln!(
            "warning: {}: metadata.labels: the controller does not keep labels of {what} yet; ignored",
            l.place(at)
        );
    }
}

pub async fn apply(client: &Client, default_ns: &str, files: &[String], dry_run: Option<DryRun>) -> Result<()> {
    let items = plan(client, default_ns, &load(files)?).await?;
    let mut new_namespaces = BTreeSet::new();
    for item in &items {
        let state = item.state();
        let at = |e: anyhow::Error| anyhow!("{}: {}: {e:#}", item.origin(), item.label());
        let mut suffix = match dry_run {
            None => String::new(),
            Some(DryRun::Server) => " (server dry run)".into(),
            Some(DryRun::Client) => " (dry run)".into(),
        };
        if state != "unchanged" {
            match item {
                Item::Namespace { name, desired, .. } => {
                    let req = NamespaceRequest { quota: *desired };
                    match dry_run {
                        None => drop(client.put_namespace(name, &req).await.map_err(at)?),
                        Some(DryRun::Server) => drop(client.namespace_dry_run(name, &req).await.map_err(at)?),
                        Some(DryRun::Client) => {}
                    }
                    if state == "created" {
                        new_namespaces.insert(name.clone());
                    }
                }
                Item::Workload { ns, name, desired, file, module_place, .. } => {
                    match dry_run {
                        None => {
                            if let Some((path, bytes)) = file {
                                crate::module::ensure_uploaded(client, path, bytes.clone()).await.map_err(at)?;
                            }
                            client.deploy(ns, name, desired).await.map_err(at)?;
                        }
                        // The namespace does not exist yet, so the controller would refuse: it is checked by the
                        // real apply, after the namespace is created.
                        Some(DryRun::Server) if new_namespaces.contains(ns) => {
                            suffix = format!(" (server dry run; not checked: namespace {ns} does not exist yet)");
                        }
                        Some(DryRun::Server) => {
                            let view = client.deploy_dry_run(ns, name, desired).await.map_err(at)?;
                            if view.module_missing && file.is_none() {
                                bail!("{module_place}: module sha256:{} has not been uploaded (name its .wasm file instead)", desired.module);
                            }
                        }
                        Some(DryRun::Client) => {}
                    }
                }
            }
        }
        println!("{} {state}{suffix}", item.label());
    }
    Ok(())
}

/// Prints what `apply` would change; true when something would.
pub async fn diff(client: &Client, default_ns: &str, files: &[String]) -> Result<bool> {
    let items = plan(client, default_ns, &load(files)?).await?;
    let mut any = false;
    for item in &items {
        if item.state() == "unchanged" {
            continue;
        }
        any = true;
        let live = match item {
            Item::Namespace { current: None, .. } | Item::Workload { current: None, .. } => "(does not exist)".into(),
            Item::Workload { ns, .. } => format!("(live, namespace {ns})"),
            Item::Namespace { .. } => "(live)".into(),
        };
        println!("--- {} {live}", item.label());
        println!("+++ {} ({})", item.label(), item.origin());
        for c in item.changes() {
            if let Some(b) = &c.before {
                println!("-  {}: {b}", c.field);
            }
            if let Some(a) = &c.after {
                println!("+  {}: {a}", c.field);
            }
        }
    }
    Ok(any)
}

/// Deletes the workloads of the manifests, last first.
pub async fn delete(client: &Client, default_ns: &str, files: &[String], ignore_not_found: bool) -> Result<()> {
    let loaded = load(files)?;
    refuse_duplicates(&loaded, default_ns)?;
    let mut failed: Vec<String> = Vec::new();
    for l in loaded.iter().rev() {
        match &l.object {
            Object::Namespace(n) => {
                println!("namespace/{} not deleted (the controller cannot delete namespaces yet)", n.name)
            }
            Object::Workload(w) => {
                let ns = namespace_of(l, default_ns);
                match client.delete(&ns, &w.name).await {
                    Ok(()) => println!("workload/{} deleted", w.name),
                    Err(e)
                        if ignore_not_found
                            && e.downcast_ref::<Refused>().is_some_and(|r| r.status == StatusCode::NOT_FOUND) => {}
                    Err(e) => failed.push(format!("{}: workload/{}: {e:#}", l.place(l.at), w.name)),
                }
            }
        }
    }
    // One `error:` line per workload that was not deleted; the last is the command's own.
    let last = failed.pop();
    for line in failed {
        eprintln!("error: {line}");
    }
    match last {
        None => Ok(()),
        Some(line) => Err(anyhow!("{line}")),
    }
}

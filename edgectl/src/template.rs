//! A workload's spec as a [`DeployRequest`], whatever it came from (a view from the controller, a kept revision,
//! a manifest, flags), in one normal form, listed field by field under the names manifests use
//! (`replicas`, `nodeSelector.zone`, `resources.memory`, `env.LEVEL`), and compared field by field: what `diff`,
//! `deploy`, `scale`, `set` and `rollout history` print. Pure.
//!
//! **Invariant:** two normal forms are equal exactly when [`changes`] between them is empty.

use std::collections::BTreeMap;
use std::fmt;

use edge_api::{DeployRequest, RevisionView, WorkloadView};
use edge_proto::quantity::{format_cpu, format_duration, format_memory_exact};

/// The environment variable `edgectl rollout restart` sets to the time of the restart: a change of template,
/// hence a new revision whose replicas replace the old ones (the controller has no other way to ask for one).
/// `apply` keeps it when a manifest does not name it, so re-applying a manifest does not undo a restart.
pub const RESTARTED_AT: &str = "EDGE_RESTARTED_AT";

/// The field name of the workload's own labels, as a manifest writes them.
pub const LABELS: &str = "metadata.labels";

/// Default request and policies of a new workload (what `edgectl deploy` and a manifest assume when not told).
pub const DEFAULT_CPU_MILLIS: u32 = 100;
pub const DEFAULT_MEMORY_BYTES: u64 = 32 << 20;

/// The request of a new workload before anything is given: one replica, the default request, no policies.
pub fn new_workload() -> DeployRequest {
    DeployRequest {
        module: String::new(),
        replicas: 1,
        cpu_millis: DEFAULT_CPU_MILLIS,
        memory_bytes: DEFAULT_MEMORY_BYTES,
        env: Vec::new(),
        args: Vec::new(),
        restart: None,
        on_node_loss: None,
        selector: BTreeMap::new(),
        memory_limit_bytes: None,
        cpu_limit_millis: None,
        timeout_ms: None,
        volumes: Vec::new(),
        labels: BTreeMap::new(),
    }
}

/// `restart` on the wire ↔ `restartPolicy` in a manifest (Kubernetes spelling).
pub const RESTART_POLICIES: [(&str, &str); 3] = [("always", "Always"), ("on-failure", "OnFailure"), ("never", "Never")];
/// `on_node_loss` on the wire ↔ `onNodeLoss` in a manifest.
pub const NODE_LOSS_POLICIES: [(&str, &str); 2] = [("reschedule", "Reschedule"), ("stay", "Stay")];

/// The manifest spelling of a wire value (the wire value itself when unknown, so nothing is hidden).
pub fn manifest_word(table: &[(&str, &'static str)], wire: &str) -> String {
    table.iter().find(|(w, _)| *w == wire).map_or_else(|| wire.to_string(), |(_, m)| m.to_string())
}

/// Puts a request in normal form: policies spelled out, "no cap" and "no timeout" as `None`.
pub fn normalize(mut r: DeployRequest) -> DeployRequest {
    r.module = r.module.to_ascii_lowercase();
    if r.restart.as_deref().is_none_or(str::is_empty) {
        r.restart = Some("always".into());
    }
    if r.on_node_loss.as_deref().is_none_or(str::is_empty) {
        r.on_node_loss = Some("reschedule".into());
    }
    r.cpu_limit_millis = r.cpu_limit_millis.filter(|c| *c > 0);
    r.timeout_ms = r.timeout_ms.filter(|t| *t > 0);
    r
}

/// What the controller holds for a workload, as the request that would set it again.
pub fn from_view(w: &WorkloadView) -> DeployRequest {
    normalize(DeployRequest {
        module: w.module.clone(),
        replicas: w.replicas,
        cpu_millis: w.cpu_millis,
        memory_bytes: w.memory_bytes,
        env: w.env.clone(),
        args: w.args.clone(),
        restart: Some(w.restart.clone()),
        on_node_loss: Some(w.on_node_loss.clone()),
        selector: w.selector.clone(),
        memory_limit_bytes: w.memory_limit_bytes,
        cpu_limit_millis: w.cpu_limit_millis,
        timeout_ms: w.timeout_ms,
        volumes: w.volumes.clone(),
        labels: w.labels.clone(),
    })
}

/// The template a kept revision rolled out.
pub fn from_revision(r: &RevisionView) -> DeployRequest {
    normalize(DeployRequest {
        module: r.module.clone(),
        replicas: r.replicas,
        cpu_millis: r.cpu_millis,
        memory_bytes: r.memory_bytes,
        env: r.env.clone(),
        args: r.args.clone(),
        restart: Some(r.restart.clone()),
        on_node_loss: Some(r.on_node_loss.clone()),
        selector: r.selector.clone(),
        memory_limit_bytes: r.memory_limit_bytes,
        cpu_limit_millis: r.cpu_limit_millis,
        timeout_ms: r.timeout_ms,
        volumes: r.volumes.clone(),
        // A revision is a template; labels are not part of one.
        labels: BTreeMap::new(),
    })
}

/// Keeps `current`'s restart marker in `desired` when `desired` does not set one itself.
pub fn keep_restart_marker(desired: &mut DeployRequest, current: &DeployRequest) {
    if desired.env.iter().any(|(k, _)| k == RESTARTED_AT) {
        return;
    }
    if let Some(marker) = current.env.iter().find(|(k, _)| k == RESTARTED_AT) {
        desired.env.push(marker.clone());
    }
}

/// Every field of a request in normal form, named as in a manifest, in manifest order.
pub fn fields(r: &DeployRequest) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = r.labels.iter().map(|(k, v)| (format!("{LABELS}.{k}"), v.clone())).collect();
    out.push(("module".to_string(), format!("sha256:{}", r.module)));
    out.push(("replicas".into(), r.replicas.to_string()));
    for (k, v) in &r.selector {
        out.push((format!("nodeSelector.{k}"), v.clone()));
    }
    out.push(("resources.cpu".into(), format_cpu(r.cpu_millis)));
    out.push(("resources.memory".into(), format_memory_exact(r.memory_bytes)));
    if let Some(c) = r.cpu_limit_millis {
        out.push(("limits.cpu".into(), format_cpu(c)));
    }
    if let Some(m) = r.memory_limit_bytes {
        out.push(("limits.memory".into(), format_memory_exact(m)));
    }
    out.extend(keyed("env", r.env.iter().map(|(k, v)| (k.clone(), v.clone()))));
    if !r.args.is_empty() {
        out.push(("args".into(), format!("{:?}", r.args)));
    }
    out.push(("restartPolicy".into(), manifest_word(&RESTART_POLICIES, r.restart.as_deref().unwrap_or_default())));
    out.push(("onNodeLoss".into(), manifest_word(&NODE_LOSS_POLICIES, r.on_node_loss.as_deref().unwrap_or_default())));
    if let Some(t) = r.timeout_ms {
        out.push(("timeout".into(), format_duration(std::time::Duration::from_millis(t))));
    }
    out.extend(keyed("volumes", r.volumes.iter().map(|v| (v.name.clone(), format_memory_exact(v.size_bytes)))));
    out
}

/// A list of named entries as `prefix.NAME` fields; by position (`prefix[i]`) when a name repeats, so nothing is
/// folded away.
fn keyed(prefix: &str, entries: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let entries: Vec<(String, String)> = entries.collect();
    let mut seen = std::collections::BTreeSet::new();
    if entries.iter().all(|(k, _)| seen.insert(k.as_str())) {
        entries.into_iter().map(|(k, v)| (format!("{prefix}.{k}"), v)).collect()
    } else {
        entries.into_iter().enumerate().map(|(i, (k, v))| (format!("{prefix}[{i}]"), format!("{k}={v}"))).collect()
    }
}

/// One field that differs; `None`: not set on that side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".into());
        write!(f, "{}: {} → {}", self.field, side(&self.before), side(&self.after))
    }
}

/// The fields that differ between two requests in normal form: `after`'s order, then fields only `before` had.
pub fn changes(before: &DeployRequest, after: &DeployRequest) -> Vec<Change> {
    let old: BTreeMap<String, String> = fields(before).into_iter().collect();
    let new = fields(after);
    let mut out: Vec<Change> = new
        .iter()
        .filter(|(k, v)| old.get(k) != Some(v))
        .map(|(k, v)| Change { field: k.clone(), before: old.get(k).cloned(), after: Some(v.clone()) })
        .collect();
    let new_keys: BTreeMap<&str, ()> = new.iter().map(|(k, _)| (k.as_str(), ())).collect();
    for (k, v) in fields(before) {
        if !new_keys.contains_key(k.as_str()) {
            out.push(Change { field: k, before: Some(v), after: None });
        }
    }
    // Same entries in another order are still a different template (the controller keeps the order).
    for (name, a, b) in [
        ("env", format!("{:?}", before.env), format!("{:?}", after.env)),
        ("volumes", format!("{:?}", before.volumes), format!("{:?}", after.volumes)),
    ] {
        if a != b && !out.iter().any(|c| c.field.starts_with(name)) {
            out.push(Change { field: format!("{name} (order)"), before: Some(a), after: Some(b) });
        }
    }
    out
}

/// The changes that make a new revision: everything but the replica count, the node-loss policy and labels.
pub fn template_changes(before: &DeployRequest, after: &DeployRequest) -> Vec<Change> {
    changes(before, after)
        .into_iter()
        .filter(|c| c.field != "replicas" && c.field != "onNodeLoss" && !c.field.starts_with(LABELS))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> DeployRequest {
        normalize(DeployRequest {
            module: "AB".repeat(32),
            replicas: 2,
            cpu_millis: 100,
            memory_bytes: 32 << 20,
            env: vec![("A".into(), "1".into())],
            args: vec![],
            restart: None,
            on_node_loss: None,
            selector: BTreeMap::from([("zone".into(), "a".into())]),
            memory_limit_bytes: None,
            cpu_limit_millis: Some(0),
            timeout_ms: Some(0),
            volumes: vec![],
            labels: BTreeMap::new(),
        })
    }

    #[test]
    fn normal_form_spells_defaults_out() {
        let r = request();
        assert_eq!(r.module, "ab".repeat(32));
        assert_eq!((r.restart.as_deref(), r.on_node_loss.as_deref()), (Some("always"), Some("reschedule")));
        assert_eq!((r.cpu_limit_millis, r.timeout_ms), (None, None));
        assert!(changes(&r, &r.clone()).is_empty());
    }

    #[test]
    fn changes_name_each_field_with_both_sides() {
        let a = request();
        let mut b = a.clone();
        b.replicas = 3;
        b.env.push(("B".into(), "2".into()));
        b.selector.clear();
        b.memory_limit_bytes = Some(64 << 20);
        let shown: Vec<String> = changes(&a, &b).iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "replicas: 2 → 3",
                "limits.memory: (unset) → 64Mi",
                "env.B: (unset) → 2",
                "nodeSelector.zone: a → (unset)"
            ]
        );
        let t: Vec<String> = template_changes(&a, &b).iter().map(|c| c.field.clone()).collect();
        assert!(!t.contains(&"replicas".to_string()), "{t:?}");
    }

    #[test]
    fn reordered_or_repeated_entries_still_differ() {
        let mut a = request();
        a.env = vec![("A".into(), "1".into()), ("B".into(), "2".into())];
        let mut b = a.clone();
        b.env.reverse();
        assert_eq!(changes(&a, &b)[0].field, "env (order)");
        b.env.push(("A".into(), "3".into()));
        assert!(changes(&a, &b).iter().any(|c| c.field == "env[2]"), "{:?}", changes(&a, &b));
    }

    #[test]
    fn exact_memory_reads_back_to_the_same_bytes() {
        for bytes in [1u64, 1000, 1024, 64 << 20, 100_000_000, (3 << 29) + 1, 1 << 62, u64::MAX] {
            let text = format_memory_exact(bytes);
            assert_eq!(edge_proto::quantity::parse_memory(&text), Ok(bytes), "{text}");
        }
        assert_eq!(format_memory_exact(64 << 20), "64Mi");
        assert_eq!(format_memory_exact(500_000_000), "500M");
    }

    #[test]
    fn the_restart_marker_survives_a_manifest_without_it() {
        let mut current = request();
        current.env.push((RESTARTED_AT.into(), "2026-01-01T00:00:00Z".into()));
        let mut desired = request();
        keep_restart_marker(&mut desired, &current);
        assert_eq!(desired, current);
    }
}

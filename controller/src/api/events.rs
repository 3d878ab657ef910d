//! `GET /v1/events[?namespace=NS][&for=KIND/NAME]`: recent lifecycle events as structured [`EventView`]s,
//! oldest first, for `edgectl events`.
//!
//! They come from the rings the cluster keeps (per workload and per node, bounded; see
//! `cluster/event.rs` for the line each holds): an instance's events from its workload's ring, a node-level
//! event (a refused spec) from its node's. Without `for`, a namespace's workloads' events, and with the
//! `default` namespace (or none: every namespace) the nodes' own, as kubectl files node events there.
//! `for` takes `workload/NAME`, `node/NAME` or `instance/ID` (kubectl's `pod/…` too); a workload or namespace
//! that does not exist is the error `get` gives.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use edge_api::EventView;
use serde::Deserialize;

use super::error::ApiError;
use super::routes::{call, Shared};
use crate::cluster::event::Record;
use crate::cluster::{Cluster, ClusterError, DEFAULT_NAMESPACE};

#[derive(Deserialize)]
pub struct EventsQuery {
    namespace: Option<String>,
    #[serde(rename = "for")]
    about: Option<String>,
}

pub async fn list_events(
    State(s): State<Shared>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    Ok(Json(call(&s, move |c| c.events_view(q.namespace.as_deref(), q.about.as_deref())).await??))
}

/// What `for` names.
#[derive(Debug, PartialEq, Eq)]
enum About<'a> {
    Workload(&'a str),
    Node(&'a str),
    Instance(&'a str),
}

fn about(s: &str) -> Result<About<'_>, ClusterError> {
    let bad = || {
        let s = super::bounds::truncated(s);
        ClusterError::Invalid(format!("for {s:?}: expected workload/NAME, node/NAME or instance/ID"))
    };
    let (kind, name) = s.split_once('/').ok_or_else(bad)?;
    if name.is_empty() {
        return Err(bad());
    }
    match kind {
        "workload" | "workloads" | "wl" => Ok(About::Workload(name)),
        "node" | "nodes" | "no" => Ok(About::Node(name)),
        "instance" | "instances" | "pod" | "pods" | "po" => Ok(About::Instance(name)),
        _ => Err(bad()),
    }
}

impl Cluster {
    /// The events `GET /v1/events` answers with (see the module doc).
    pub fn events_view(&self, namespace: Option<&str>, about_: Option<&str>) -> Result<Vec<EventView>, ClusterError> {
        if let Some(ns) = namespace {
            if ns != DEFAULT_NAMESPACE && !self.namespaces.contains_key(ns) {
                return Err(self.namespace_not_found(ns));
            }
        }
        let about_ = about_.map(about).transpose()?;
        let in_namespace = |key: &str| namespace.is_none_or(|ns| key.split_once('/').is_some_and(|(n, _)| n == ns));
        let mut out: Vec<(u64, EventView)> = Vec::new();
        let from_workload = |key: &str, keep: &dyn Fn(&Record) -> bool, out: &mut Vec<(u64, EventView)>| {
            let (ns, name) = key.split_once('/').unwrap_or((DEFAULT_NAMESPACE, key));
            for r in self.workload_events.get(key).into_iter().flatten().filter_map(|l| Record::parse(l)) {
                if keep(&r) {
                    out.push((r.at_ms, view(r, Some((ns, name)))));
                }
            }
        };
        match about_ {
            Some(About::Workload(name)) => {
                let ns = namespace.unwrap_or(DEFAULT_NAMESPACE);
                let key = crate::model::workload_key(ns, name);
                if !self.workloads.contains_key(&key) {
                    return Err(self.not_found(ns, name));
                }
                from_workload(&key, &|_| true, &mut out);
            }
            Some(About::Instance(id)) => {
                for key in self.workload_events.keys().filter(|k| in_namespace(k)) {
                    from_workload(key, &|r| r.instance() == Some(id), &mut out);
                }
            }
            Some(About::Node(node)) => {
                if !self.nodes.contains_key(node) {
                    return Err(ClusterError::NotFound(format!("node {} not found", super::bounds::truncated(node))));
                }
                // Which workload each current instance is of (events of instances gone since stay unattributed).
                let owners: HashMap<&str, (&str, &str)> = self
                    .workloads
                    .values()
                    .flat_map(|w| {
                        w.instances.iter().map(move |i| (i.id.as_str(), (w.namespace.as_str(), w.name.as_str())))
                    })
                    .collect();
                let ring = self.live.get(node).map(|l| &l.recent_events).into_iter().flatten();
                for r in ring.filter_map(|l| Record::parse(l)) {
                    let owner = r.instance().and_then(|i| owners.get(i).copied());
                    out.push((r.at_ms, view(r, owner)));
                }
            }
            None => {
                for key in self.workload_events.keys().filter(|k| in_namespace(k)) {
                    from_workload(key, &|_| true, &mut out);
                }
                if namespace.is_none_or(|ns| ns == DEFAULT_NAMESPACE) {
                    for live in self.live.values() {
                        for r in live.recent_events.iter().filter_map(|l| Record::parse(l)) {
                            if r.instance().is_none() {
                                out.push((r.at_ms, view(r, None)));
                            }
                        }
                    }
                }
            }
        }
        out.sort_by(|(a, x), (b, y)| (a, &x.node, x.seq).cmp(&(b, &y.node, y.seq)));
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }
}

fn view(r: Record, owner: Option<(&str, &str)>) -> EventView {
    EventView {
        at: crate::cluster::event::timestamp(r.at_ms),
        kind: r.severity.as_str().to_string(),
        object: r.object,
        node: r.node,
        namespace: owner.map(|(ns, _)| ns.to_string()),
        workload: owner.map(|(_, w)| w.to_string()),
        message: r.message,
        seq: r.seq,
    }
}

#[cfg(test)]
mod tests {
    use super::{about, About};

    #[test]
    fn for_names_a_kind_and_a_name() {
        assert_eq!(about("workload/tick").unwrap(), About::Workload("tick"));
        assert_eq!(about("wl/tick").unwrap(), About::Workload("tick"));
        assert_eq!(about("node/dev-1").unwrap(), About::Node("dev-1"));
        assert_eq!(about("pod/tick-x7k2p").unwrap(), About::Instance("tick-x7k2p"));
        for bad in ["tick", "workload/", "secret/x"] {
            assert!(about(bad).unwrap_err().to_string().contains("expected workload/NAME"), "{bad}");
        }
    }
}

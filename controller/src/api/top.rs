//! `GET /v1/top/nodes` and `GET /v1/top/instances[?namespace=NS]`: what agents last reported their instances
//! consume (CPU in millicores averaged over the report's window, linear memory in bytes), for `edgectl top`.
//!
//! Usage comes from each node's latest report, kept in memory only (`LastUsage` in its live state): nothing
//! before the first report after a controller start, and a node's total is the sum over its instances still
//! placed on it (a Ready node holding none uses nothing; its agent has nothing to report). A NotReady node's
//! report no longer describes it: its usage is `None`, as is that of a node whose first report is still due.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use edge_api::{InstanceTopView, NodeTopView, ResourcesView};
use edge_proto::Resources;
use serde::Deserialize;

use super::error::ApiError;
use super::routes::{call, Shared};
use crate::clock::rfc3339_ms;
use crate::cluster::{Cluster, ClusterError, DEFAULT_NAMESPACE};

#[derive(Deserialize)]
pub struct TopQuery {
    namespace: Option<String>,
}

pub async fn top_nodes(State(s): State<Shared>) -> Result<Json<Vec<NodeTopView>>, ApiError> {
    Ok(Json(call(&s, |c| c.top_nodes()).await?))
}

pub async fn top_instances(
    State(s): State<Shared>,
    Query(q): Query<TopQuery>,
) -> Result<Json<Vec<InstanceTopView>>, ApiError> {
    Ok(Json(call(&s, move |c| c.top_instances(q.namespace.as_deref())).await??))
}

fn view(r: Resources) -> ResourcesView {
    ResourcesView { cpu_millis: r.cpu_millis, memory_bytes: r.memory_bytes }
}

impl Cluster {
    /// Every known node, by name, with the sum of its instances' last reported usage.
    pub fn top_nodes(&self) -> Vec<NodeTopView> {
        // Sums over the instances still placed on each node (a report may name one that has left since).
        let mut sums: HashMap<&str, Resources> = HashMap::new();
        for i in self.workloads.values().flat_map(|w| &w.instances) {
            let Some(node) = i.node.as_deref() else { continue };
            sums.entry(node).or_insert(Resources::ZERO);
            if let Some(r) = self.live.get(node).and_then(|l| l.usage.as_ref()).and_then(|u| u.instances.get(&i.id)) {
                let sum = sums.entry(node).or_insert(Resources::ZERO);
                *sum = sum.saturating_add(*r);
            }
        }
        self.nodes
            .values()
            .map(|n| {
                let ready = self.is_ready(&n.name);
                let usage = self.live.get(&n.name).and_then(|l| l.usage.as_ref()).filter(|_| ready);
                let sum = sums.get(n.name.as_str()).copied();
                // A Ready node holding no instance uses nothing (its agent reports nothing: there is nothing to
                // say); one holding some is unknown until its first report.
                let used = match (usage, sum) {
                    (Some(_), sum) | (None, sum @ None) if ready => Some(sum.unwrap_or(Resources::ZERO)),
                    _ => None,
                };
                NodeTopView {
                    name: n.name.clone(),
                    allocatable: view(n.allocatable()),
                    usage: used.map(view),
                    timestamp: usage.map(|u| rfc3339_ms(u.received_ms)),
                    window_ms: usage.map_or(0, |u| u.window_ms),
                }
            })
            .collect()
    }

    /// The instances of `namespace` (every namespace without one) with a usage report from their node, by
    /// namespace then id.
    pub fn top_instances(&self, namespace: Option<&str>) -> Result<Vec<InstanceTopView>, ClusterError> {
        if let Some(ns) = namespace {
            if ns != DEFAULT_NAMESPACE && !self.namespaces.contains_key(ns) {
                return Err(self.namespace_not_found(ns));
            }
        }
        let mut out = Vec::new();
        for w in self.workloads.values().filter(|w| namespace.is_none_or(|ns| w.namespace == ns)) {
            for i in &w.instances {
                let Some(node) = i.node.as_deref() else { continue };
                let Some(usage) = self.live.get(node).and_then(|l| l.usage.as_ref()) else { continue };
                let Some(r) = usage.instances.get(&i.id) else { continue };
                out.push(InstanceTopView {
                    id: i.id.clone(),
                    namespace: w.namespace.clone(),
                    workload: w.name.clone(),
                    node: node.to_string(),
                    usage: view(*r),
                    timestamp: rfc3339_ms(usage.received_ms),
                    window_ms: usage.window_ms,
                });
            }
        }
        out.sort_by(|a, b| (&a.namespace, &a.id).cmp(&(&b.namespace, &b.id)));
        Ok(out)
    }
}

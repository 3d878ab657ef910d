//! Views: the cluster's state as the API's JSON shapes (`edge-api`). Read-only; every list is linear in what it
//! returns (an instance's status and readiness are looked up on its node, never searched for).

use std::collections::HashMap;
use std::time::Instant;

use edge_api::{
    ArtifactView, ConditionView, EventStatsView, InstanceView, LogsResponse, ModuleView, NamespaceView, NodeDetail,
    NodeInstanceView, NodeView, OutageView, ResourcesView, RevisionView, RolloutView, StatsView, WorkloadView,
};

use crate::clock::{now_ms, rfc3339_ms};
use crate::cluster::liveness::Liveness;
use crate::cluster::{Cluster, ClusterError, DEFAULT_NAMESPACE};
use crate::model::{usage_of, workload_key, WorkloadRecord, WorkloadSpec};
use crate::reconcile::{Readiness, Rollout};

impl Cluster {
    pub fn module(&self, sha: &str) -> Option<ModuleView> {
        self.modules.contains_key(sha).then(|| self.module_view(sha))
    }

    pub fn modules_view(&self) -> Vec<ModuleView> {
        self.modules.keys().map(|sha| self.module_view(sha)).collect()
    }

    pub(crate) fn module_view(&self, sha: &str) -> ModuleView {
        let mut artifacts: Vec<ArtifactView> = self
            .artifacts
            .of_module(sha)
            .map(|a| ArtifactView {
                target: a.profile.target.to_string(),
                fingerprint: a.fingerprint.clone(),
                size: a.size,
                sha256: a.sha256.clone(),
                error: a.error.clone(),
            })
            .collect();
        artifacts.sort_by(|a, b| (&a.target, &a.fingerprint).cmp(&(&b.target, &b.fingerprint)));
        ModuleView { sha256: sha.to_string(), size: self.modules.get(sha).map_or(0, |m| m.size), artifacts }
    }

    pub fn namespaces_view(&self) -> Vec<NamespaceView> {
        let mut names: Vec<&str> = self.namespaces.keys().map(String::as_str).collect();
        if !self.namespaces.contains_key(DEFAULT_NAMESPACE) {
            names.push(DEFAULT_NAMESPACE);
        }
        names.sort_unstable();
        names.into_iter().map(|n| self.namespace_view(n)).collect()
    }

    pub fn namespace_view(&self, name: &str) -> NamespaceView {
        let specs: Vec<&WorkloadSpec> =
            self.workloads.values().filter(|w| w.namespace == name).map(|w| &w.spec).collect();
        NamespaceView {
            name: name.to_string(),
            quota: self.namespaces.get(name).map(|n| n.quota).unwrap_or_default(),
            used: usage_of(specs.iter().copied()),
            workloads: specs.len(),
        }
    }

    /// Workloads of `namespace` (all when `None`); a namespace that does not exist is an error, not an empty
    /// list.
    pub fn workloads_view(&self, namespace: Option<&str>) -> Result<Vec<WorkloadView>, ClusterError> {
        if let Some(ns) = namespace {
            if ns != DEFAULT_NAMESPACE && !self.namespaces.contains_key(ns) {
                return Err(self.namespace_not_found(ns));
            }
        }
        let now = Instant::now();
        Ok(self
            .workloads
            .values()
            .filter(|w| namespace.is_none_or(|ns| w.namespace == ns))
            .map(|w| self.workload_view(w, now))
            .collect())
    }

    /// One page of [`Cluster::workloads_view`]: workloads after the key `after` (`namespace/name`, exclusive),
    /// in key order, at most `limit` of them and about [`super::bounds::PAGE_BYTES`] of JSON (at least one), and
    /// the key to continue after when more follow. Its cost follows the page, not the number of workloads.
    pub fn workloads_page(
        &self,
        namespace: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<WorkloadView>, Option<String>), ClusterError> {
        use std::ops::Bound;
        if let Some(ns) = namespace {
            if ns != DEFAULT_NAMESPACE && !self.namespaces.contains_key(ns) {
                return Err(self.namespace_not_found(ns));
            }
        }
        // Keys of one namespace are contiguous (`ns/…`; no name holds a `/`): start at its first or after `after`.
        let prefix = namespace.map(|ns| format!("{ns}/"));
        let start = match (after, &prefix) {
            (Some(a), Some(p)) if a < p.as_str() => Bound::Included(p.clone()),
            (Some(a), _) => Bound::Excluded(a.to_string()),
            (None, Some(p)) => Bound::Included(p.clone()),
            (None, None) => Bound::Unbounded,
        };
        let mut range = self
            .workloads
            .range::<String, _>((start, Bound::Unbounded))
            .take_while(|(k, _)| prefix.as_ref().is_none_or(|p| k.starts_with(p.as_str())))
            .peekable();
        let now = Instant::now();
        let (mut page, mut bytes) = (Vec::new(), 0usize);
        while let Some((_, w)) = range.peek() {
            let size = view_bytes(w);
            if page.len() >= limit.max(1) || (!page.is_empty() && bytes + size > super::bounds::PAGE_BYTES) {
                break;
            }
            bytes += size;
            page.push(self.workload_view(w, now));
            range.next();
        }
        let next = range.peek().is_some().then(|| page.last().map(|v| workload_key(&v.namespace, &v.name)));
        Ok((page, next.flatten()))
    }

    pub fn workload(&self, namespace: &str, name: &str) -> Result<WorkloadView, ClusterError> {
        self.workloads
            .get(&workload_key(namespace, name))
            .map(|w| self.workload_view(w, Instant::now()))
            .ok_or_else(|| self.not_found(namespace, name))
    }

    pub fn logs(&self, namespace: &str, name: &str, since: u64, limit: usize) -> Result<LogsResponse, ClusterError> {
        let key = workload_key(namespace, name);
        if !self.workloads.contains_key(&key) {
            return Err(self.not_found(namespace, name));
        }
        let (lines, next) = self.logs.read(&key, since, limit);
        Ok(LogsResponse { lines, next })
    }

    /// Recent lifecycle events of a workload's instances, oldest first.
    pub fn workload_events(&self, namespace: &str, name: &str) -> Result<Vec<String>, ClusterError> {
        let key = workload_key(namespace, name);
        if !self.workloads.contains_key(&key) {
            return Err(self.not_found(namespace, name));
        }
        Ok(self.workload_events.get(&key).map(|e| e.iter().cloned().collect()).unwrap_or_default())
    }

    fn instance_readiness(&self, node: Option<&str>, id: &str, now: Instant) -> Readiness {
        node.and_then(|n| self.live.get(n)).map_or(Readiness::NotYet, |l| l.readiness(id, self.min_ready, now))
    }

    fn workload_view(&self, w: &WorkloadRecord, now: Instant) -> WorkloadView {
        let instances: Vec<InstanceView> = w
            .instances
            .iter()
            .map(|i| {
                let mut view = InstanceView {
                    id: i.id.clone(),
                    node: i.node.clone(),
                    state: "Pending".into(),
                    restarts: 0,
                    started_at: None,
                    exit_code: None,
                    reason: i.reason.clone(),
                    ready: false,
                    revision: i.revision,
                };
                if let Some(node) = &i.node {
                    match self.live.get(node).and_then(|l| l.instances.get(&i.id)) {
                        Some(s) => {
                            view.state = s.state.as_str().into();
                            view.restarts = s.restarts;
                            view.started_at = s.started_at_ms.map(rfc3339_ms);
                            view.exit_code = s.exit_code;
                            view.reason = s.reason.clone();
                        }
                        None => view.reason = Some(format!("scheduled to {node}, waiting for its agent")),
                    }
                    if self.is_ready(node) {
                        view.ready = self.instance_readiness(Some(node), &i.id, now) == Readiness::Ready;
                    } else {
                        view.state = "Unknown".into();
                        view.reason = Some(format!("node {node} is not ready"));
                    }
                }
                view
            })
            .collect();
        WorkloadView {
            name: w.name.clone(),
            namespace: w.namespace.clone(),
            replicas: w.spec.replicas,
            module: w.spec.module.clone(),
            cpu_millis: w.spec.cpu_millis,
            memory_bytes: w.spec.memory_bytes,
            restart: w.spec.restart.as_str().into(),
            on_node_loss: w.spec.on_node_loss.as_str().into(),
            selector: w.spec.selector.clone(),
            env: w.spec.env.clone(),
            args: w.spec.args.clone(),
            memory_limit_bytes: w.spec.memory_limit_bytes,
            cpu_limit_millis: (w.spec.cpu_limit_millis > 0).then_some(w.spec.cpu_limit_millis),
            timeout_ms: (w.spec.timeout_ms > 0).then_some(w.spec.timeout_ms),
            volumes: w.spec.volumes.clone(),
            labels: w.spec.labels.clone(),
            revision: w.revision,
            created: Some(rfc3339_ms(w.created_ms)).filter(|_| w.created_ms > 0),
            rollout: self.rollout_view(w, &instances),
            instances,
            revisions: w
                .history
                .iter()
                .map(|h| RevisionView {
                    revision: h.revision,
                    module: h.spec.module.clone(),
                    created: rfc3339_ms(h.created_ms),
                    cpu_millis: h.spec.cpu_millis,
                    memory_bytes: h.spec.memory_bytes,
                    env: h.spec.env.clone(),
                    args: h.spec.args.clone(),
                    replicas: h.spec.replicas,
                    selector: h.spec.selector.clone(),
                    restart: h.spec.restart.as_str().into(),
                    on_node_loss: h.spec.on_node_loss.as_str().into(),
                    memory_limit_bytes: h.spec.memory_limit_bytes,
                    cpu_limit_millis: (h.spec.cpu_limit_millis > 0).then_some(h.spec.cpu_limit_millis),
                    timeout_ms: (h.spec.timeout_ms > 0).then_some(h.spec.timeout_ms),
                    volumes: h.spec.volumes.clone(),
                })
                .collect(),
        }
    }

    /// A rollout is complete only when every replica of the current revision is ready; a first revision whose
    /// replicas crash-loop is `degraded`, never complete.
    fn rollout_view(&self, w: &WorkloadRecord, instances: &[InstanceView]) -> RolloutView {
        let current: Vec<(&InstanceView, bool)> = w
            .instances
            .iter()
            .zip(instances)
            .filter(|(record, _)| record.revision == w.revision)
            .map(|(_, view)| (view, view.ready))
            .collect();
        let ready = current.iter().filter(|(_, r)| *r).count();
        let failing = current.iter().find(|(v, _)| matches!(v.state.as_str(), "CrashLoopBackOff" | "Failed"));
        let (state, reason) = match self.rollouts.get(&w.key()) {
            Some(Rollout::Halted(why)) => ("halted", Some(why.clone())),
            Some(Rollout::Progressing) => ("progressing", None),
            _ if ready >= w.spec.replicas as usize => ("complete", None),
            _ => match failing {
                Some((v, _)) => (
                    "degraded",
                    Some(format!(
                        "{ready} of {} ready: {} is {}{}",
                        w.spec.replicas,
                        v.id,
                        v.state,
                        v.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                    )),
                ),
                None => ("progressing", Some(format!("{ready} of {} ready", w.spec.replicas))),
            },
        };
        RolloutView {
            state: state.into(),
            reason,
            updated: current.len(),
            ready,
            old: w.instances.len() - current.len(),
        }
    }

    fn allocated(&self) -> HashMap<&str, edge_proto::Resources> {
        let mut out: HashMap<&str, edge_proto::Resources> = HashMap::new();
        for w in self.workloads.values() {
            for i in &w.instances {
                if let Some(n) = &i.node {
                    let e = out.entry(n.as_str()).or_default();
                    *e = e.saturating_add(w.spec.request());
                }
            }
        }
        out
    }

    pub fn nodes_view(&self) -> Vec<NodeView> {
        let allocated = self.allocated();
        self.nodes.keys().filter_map(|n| self.node_view_with(n, &allocated)).collect()
    }

    pub fn node_view(&self, name: &str) -> Result<NodeView, ClusterError> {
        self.node_view_with(name, &self.allocated())
            .ok_or_else(|| ClusterError::NotFound(format!("node {} not found", super::bounds::truncated(name))))
    }

    fn node_view_with(&self, name: &str, allocated: &HashMap<&str, edge_proto::Resources>) -> Option<NodeView> {
        let n = self.nodes.get(name)?;
        let live = self.live.get(name);
        let alloc = allocated.get(name).copied().unwrap_or_default();
        let ready = self.is_ready(name);
        Some(NodeView {
            name: n.name.clone(),
            status: if ready { "Ready" } else { "NotReady" }.into(),
            capacity: ResourcesView { cpu_millis: n.capacity.cpu_millis, memory_bytes: n.capacity.memory_bytes },
            allocatable: ResourcesView {
                cpu_millis: n.allocatable().cpu_millis,
                memory_bytes: n.allocatable().memory_bytes,
            },
            allocated: ResourcesView { cpu_millis: alloc.cpu_millis, memory_bytes: alloc.memory_bytes },
            labels: n.effective_labels(),
            cordoned: n.cordoned,
            board: n.board.clone(),
            arch: n.arch.clone(),
            engine: n.engine.to_string(),
            agent_version: n.agent_version.clone(),
            last_seen: live.and_then(|l| l.last_seen_ms).or(Some(n.last_seen_ms).filter(|ms| *ms > 0)).map(rfc3339_ms),
            generation: live.map_or(0, |l| l.applied_generation),
            spec_generation: n.spec_generation,
            disconnected: !ready,
            instances: live.map_or(0, |l| l.instances.len()),
            joined: self.joined_ms(name).map(rfc3339_ms),
            rejected_reports: self.reports.rejected(name),
            created: Some(rfc3339_ms(n.first_seen_ms)).filter(|_| n.first_seen_ms > 0),
        })
    }

    /// Everything `edgectl describe node` shows.
    pub fn node_detail(&self, name: &str) -> Result<NodeDetail, ClusterError> {
        let node = self.node_view(name)?;
        let record = &self.nodes[name];
        let live = self.live.get(name);
        let ready = self.is_ready(name);
        let mut instances = Vec::new();
        for w in self.workloads.values() {
            for i in w.instances.iter().filter(|i| i.node.as_deref() == Some(name)) {
                let status = live.and_then(|l| l.instances.get(&i.id));
                instances.push(NodeInstanceView {
                    id: i.id.clone(),
                    namespace: w.namespace.clone(),
                    workload: w.name.clone(),
                    state: match (ready, status) {
                        (false, _) => "Unknown".into(),
                        (true, Some(s)) => s.state.as_str().into(),
                        (true, None) => "Pending".into(),
                    },
                    restarts: status.map_or(0, |s| s.restarts),
                    started_at: status.and_then(|s| s.started_at_ms).map(rfc3339_ms),
                    cpu_millis: w.spec.cpu_millis,
                    memory_bytes: w.spec.memory_bytes,
                });
            }
        }
        let ledger = live.map(|l| &l.ledger);
        let events = EventStatsView {
            applied_up_to: record.last_event_seq,
            agent_last_seq: live.map_or(0, |l| l.agent_last_event_seq),
            received: ledger.map_or(0, |l| l.received),
            duplicates: ledger.map_or(0, |l| l.duplicates),
            missing: ledger.map_or(0, |l| l.missing),
            dropped_by_agent: live.map_or(0, |l| l.agent_events_dropped),
            recent: live.map_or_else(Vec::new, |l| l.recent_events.iter().cloned().collect()),
        };
        let last_outage = live.and_then(|l| l.last_outage).map(|o| OutageView {
            started: rfc3339_ms(o.started_ms),
            ended: rfc3339_ms(o.ended_ms),
            duration_ms: o.ended_ms.saturating_sub(o.started_ms),
            events_buffered: o.events_buffered,
            events_dropped: o.events_dropped,
            logs_buffered: o.logs_buffered,
            logs_dropped: o.logs_dropped,
        });
        Ok(NodeDetail { conditions: vec![self.ready_condition(name)], node, instances, events, last_outage })
    }

    fn ready_condition(&self, node: &str) -> ConditionView {
        let now = Instant::now();
        let live = self.live.get(node);
        let liveness = live.map_or(Liveness::default(), |l| l.liveness);
        let (status, reason) = liveness.condition(&self.policy, now, live.is_some());
        let since = liveness.not_ready_since(&self.policy, now).map(|t| {
            let ago = now.saturating_duration_since(t);
            rfc3339_ms(now_ms().saturating_sub(ago.as_millis() as u64))
        });
        ConditionView { kind: "Ready".into(), status, reason, since }
    }

    pub fn stats(&self) -> StatsView {
        StatsView {
            nodes: self.nodes.len(),
            ready_nodes: self.nodes.keys().filter(|n| self.is_ready(n)).count(),
            workloads: self.workloads.len(),
            instances: self.workloads.values().map(|w| w.instances.len()).sum(),
            hellos: self.counters.hellos,
            heartbeats: self.counters.heartbeats,
            events: self.counters.events,
            rejected: self.counters.rejected,
        }
    }
}

/// About how many bytes of JSON `w`'s view takes: its template and each kept revision (env and args make most
/// of them), and its instances. An estimate for cutting pages ([`Cluster::workloads_page`]), not a bound on
/// every byte (escaped characters take more).
fn view_bytes(w: &WorkloadRecord) -> usize {
    let template = |s: &WorkloadSpec| {
        512 + s.env.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>()
            + s.args.iter().map(|a| a.len() + 3).sum::<usize>()
            + s.volumes.iter().map(|v| v.name.len() + 40).sum::<usize>()
            + s.selector.iter().chain(&s.labels).map(|(k, v)| k.len() + v.len() + 6).sum::<usize>()
    };
    1024 + template(&w.spec) + w.history.iter().map(|h| template(&h.spec)).sum::<usize>() + w.instances.len() * 320
}

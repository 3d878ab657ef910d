//! The reconcile pass and what runs it: user operations (at once, committed before they answer), the periodic
//! tick (readiness changed, a rollout under way), and [`Cluster::flush`] after a batch of agent messages.
//!
//! A pass: scale and roll out each workload, replace instances on lost or drained nodes, place pending ones,
//! derive every node's spec, give each changed spec the next generation, commit all of it in one transaction,
//! then publish. Only nodes whose instance list changed are hashed and published.
//!
//! **Two sizes of pass.** A *full* pass reconciles every workload against a scheduler snapshot built afresh
//! from every node; it runs when the fleet changed (a node became Ready, NotReady or lost, said hello with new
//! resources, was cordoned, drained or labelled) or agent messages left work owed. A *scoped* pass
//! ([`Cluster::reconcile_only`]) reconciles a few workloads (a deploy, a delete, the rollouts under way) against
//! the snapshot the last pass left, after taking back those workloads' bookings, and derives the specs of only
//! the nodes those workloads were or are on: its cost follows the workloads it touches, not the fleet's size.
//!
//! **Invariant** (what makes a scoped pass equal to a full one): between passes, the kept snapshot books
//! exactly the bound instances of every workload, and its nodes' readiness and resources are current. Anything
//! that could break this drops the snapshot (`sched = None`) or marks the cluster dirty, and a scoped pass then
//! runs as a full one; so does a scoped pass once `liveness_due` (the first instant some node's readiness
//! changes by time alone) has passed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use edge_proto::{Channel, Message, NodeSpec};
use sha2::{Digest, Sha256};

use super::liveness::Liveness;
use super::{unique_ids, Cluster, ClusterError};
use crate::reconcile::{self, Readiness, Rollout};
use crate::scheduler::{Blocker, NodeSlot, Snapshot};
use crate::store::Change;

/// Which nodes a pass derives specs for.
enum Nodes<'a> {
    All,
    Only(&'a BTreeSet<String>),
}

impl Cluster {
    /// One idempotent full pass: replicas kept, pending instances placed, changed node specs committed and
    /// published.
    pub fn reconcile(&mut self) -> Result<(), ClusterError> {
        self.reconcile_with(&HashSet::new(), None)
    }

    /// Serves what agent messages left owed, once per batch of them: a pass if one is due, else a commit of the
    /// node records they changed; then the acknowledgements that waited for that commit.
    pub fn flush(&mut self) {
        if self.dirty {
            if let Err(e) = self.reconcile() {
                tracing::error!(error = %e, "reconcile pass failed; the next tick tries again");
            }
            return;
        }
        if let Err(e) = self.commit_unsaved() {
            tracing::error!(error = %e, "cannot persist node records; acknowledgements held back");
        }
    }

    /// Periodic work: a full pass when a node became Ready, NotReady or lost since the last one, a scoped pass
    /// over the rollouts under way, else what [`Cluster::flush`] does. Cheap when nothing is due: the fleet is
    /// looked at only once `liveness_due` has passed, not on every tick.
    pub fn tick(&mut self) {
        let now = Instant::now();
        if !self.dirty && now >= self.liveness_due {
            let (ready, lost, due) = self.liveness_now(now);
            if ready != self.last_ready || lost != self.last_lost {
                self.dirty = true;
            } else {
                self.liveness_due = due;
            }
        }
        let rolling: BTreeSet<String> =
            self.rollouts.iter().filter(|(_, r)| **r != Rollout::Complete).map(|(k, _)| k.clone()).collect();
        if self.dirty || rolling.is_empty() {
            return self.flush();
        }
        if let Err(e) = self.reconcile_only(&rolling, None) {
            tracing::error!(error = %e, "reconcile pass failed; the next tick tries again");
        }
    }

    /// Commits node records changed in memory, then releases what waited for them.
    fn commit_unsaved(&mut self) -> Result<(), ClusterError> {
        let batch: Vec<Change<'_>> =
            self.unsaved_nodes.iter().filter_map(|n| self.nodes.get(n)).map(Change::PutNode).collect();
        self.store.commit(&batch)?;
        self.unsaved_nodes.clear();
        self.release_after_commit();
        Ok(())
    }

    fn release_after_commit(&mut self) {
        for p in self.after_commit.drain(..) {
            let _ = self.publish.send(p);
        }
    }

    /// A pass that also moves reschedulable instances off `draining` nodes, as if those nodes were lost.
    pub(crate) fn reconcile_draining(&mut self, draining: &HashSet<String>) -> Result<(), ClusterError> {
        self.reconcile_with(draining, None)
    }

    /// Ready and lost nodes at `now`, and the first instant after it at which either set changes by time alone.
    fn liveness_now(&self, now: Instant) -> (BTreeSet<String>, BTreeSet<String>, Instant) {
        let (mut ready, mut lost) = (BTreeSet::new(), BTreeSet::new());
        // Past every deadline a pass could care about: only a message changes a lost node.
        let mut due = now + self.policy.node_timeout + self.policy.reschedule_after;
        for name in self.nodes.keys() {
            let l = self.live.get(name).map_or(Liveness::default(), |l| l.liveness);
            if l.is_ready(&self.policy, now) {
                ready.insert(name.clone());
            } else if l.is_lost(&self.policy, now) {
                lost.insert(name.clone());
            }
            if let Some(t) = l.next_change(&self.policy, now) {
                due = due.min(t);
            }
        }
        (ready, lost, due)
    }

    /// A full pass, also moving instances off `draining` nodes; commits workload `write` whether or not its
    /// instances change.
    fn reconcile_with(&mut self, draining: &HashSet<String>, write: Option<&str>) -> Result<(), ClusterError> {
        // Dropped before the new one is built: never two snapshots of the whole fleet alive at once.
        self.sched = None;
        let mut changed: Vec<String> = write.map(str::to_string).into_iter().collect();
        let mut new_id = self.id_generator();
        let now = Instant::now();
        let (ready, lost, due) = self.liveness_now(now);
        (self.last_ready, self.last_lost, self.liveness_due) = (ready, lost, due);
        let lost: HashSet<String> = self.last_lost.iter().chain(draining).cloned().collect();
        let all: Vec<String> = self.workloads.keys().cloned().collect();
        let readiness = self.readiness(&all, now);
        let mut rollouts = HashMap::new();
        for key in &all {
            let (rollout, moved) = self.prune_and_replace(key, &lost, &readiness, &mut new_id);
            rollouts.insert(key.clone(), rollout);
            if moved && !changed.contains(key) {
                changed.push(key.clone());
            }
        }
        self.rollouts = rollouts;
        let any_failed = self.artifacts.any_failed();
        let slots: Vec<NodeSlot> = self
            .nodes
            .values()
            .map(|n| {
                // Fingerprints (a sha256 per node) matter only when some module cannot run somewhere.
                let engine = if any_failed { n.engine_profile.as_ref().map(edge_engine::fingerprint) } else { None };
                let mut slot = NodeSlot::new(n.name.clone(), n.allocatable())
                    .with_labels(n.effective_labels())
                    .with_engine(engine)
                    .with_runs(n.engine.runs());
                if !self.last_ready.contains(&n.name) {
                    slot.blocker = Some(Blocker::NotReady);
                } else if n.cordoned {
                    slot.blocker = Some(Blocker::Cordoned);
                }
                slot
            })
            .collect();
        let mut snap = reconcile::snapshot(slots, self.workloads.values());
        self.place(&all, &mut snap, &mut changed);
        self.dirty = false;
        self.finish_pass(snap, &changed, Nodes::All)
    }

    /// A scoped pass over workload `keys` (deleted ones included: their bookings go) and every workload with
    /// pending instances, committing `write` whether or not its instances change. Runs as a full pass when the kept snapshot cannot be trusted (see the
    /// module's invariant).
    pub(crate) fn reconcile_only(&mut self, keys: &BTreeSet<String>, write: Option<&str>) -> Result<(), ClusterError> {
        let now = Instant::now();
        let kept = if self.dirty || now >= self.liveness_due { None } else { self.sched.take() };
        let Some(mut snap) = kept else { return self.reconcile_with(&HashSet::new(), write) };
        // Workloads with pending instances come too: what these workloads free may let them be placed.
        let mut keys = keys.clone();
        if self.pending > 0 {
            keys.extend(
                self.workloads.values().filter(|w| w.instances.iter().any(|i| i.node.is_none())).map(|w| w.key()),
            );
        }
        let mut changed: Vec<String> = write.map(str::to_string).into_iter().collect();
        let mut new_id = self.id_generator();
        // Every node these workloads were booked on or are bound to now: only their specs can change.
        let mut touched: BTreeSet<String> = BTreeSet::new();
        for key in &keys {
            touched.extend(snap.booked_nodes(key).map(str::to_string));
            snap.unbook_workload(key);
        }
        let present: Vec<String> = keys.iter().filter(|k| self.workloads.contains_key(*k)).cloned().collect();
        for key in keys.iter().filter(|k| !self.workloads.contains_key(*k)) {
            self.rollouts.remove(key);
        }
        let lost: HashSet<String> = self.last_lost.iter().cloned().collect();
        let readiness = self.readiness(&present, now);
        for key in &present {
            let (rollout, moved) = self.prune_and_replace(key, &lost, &readiness, &mut new_id);
            self.rollouts.insert(key.clone(), rollout);
            if moved && !changed.contains(key) {
                changed.push(key.clone());
            }
            let w = &self.workloads[key];
            let demand = reconcile::demand(w);
            for node in w.instances.iter().filter_map(|i| i.node.as_deref()) {
                snap.book(node, key, demand);
            }
        }
        self.place(&present, &mut snap, &mut changed);
        for key in &present {
            touched.extend(self.workloads[key].instances.iter().filter_map(|i| i.node.clone()));
        }
        self.finish_pass(snap, &changed, Nodes::Only(&touched))
    }

    /// New instance ids, never one in use.
    fn id_generator(&self) -> impl FnMut(&str) -> String {
        let taken: HashSet<String> =
            self.workloads.values().flat_map(|w| w.instances.iter().map(|i| i.id.clone())).collect();
        unique_ids(taken)
    }

    /// Steps 1 and 2 for workload `key`: its rollout, and whether its instance list changed.
    fn prune_and_replace(
        &mut self,
        key: &str,
        lost: &HashSet<String>,
        readiness: &HashMap<String, Readiness>,
        new_id: &mut impl FnMut(&str) -> String,
    ) -> (Rollout, bool) {
        let Some(w) = self.workloads.get_mut(key) else { return (Rollout::Complete, false) };
        let ready_of = |id: &str| readiness.get(id).copied().unwrap_or(Readiness::NotYet);
        let (pruned, rollout) = reconcile::prune(w, new_id, ready_of);
        if let Rollout::Halted(why) = &rollout {
            if self.rollouts.get(key) != Some(&rollout) {
                tracing::warn!(workload = %key, reason = %why, "rollout halted");
            }
        }
        let replaced = reconcile::replace_lost(w, lost, new_id);
        if replaced {
            tracing::info!(workload = %key, "rescheduling instances off lost or drained nodes");
        }
        (rollout, pruned || replaced)
    }

    /// Step 3 for workloads `keys`: binds their pending instances through `snap`.
    fn place(&mut self, keys: &[String], snap: &mut Snapshot, changed: &mut Vec<String>) {
        let artifacts = &self.artifacts;
        for key in keys {
            let Some(w) = self.workloads.get_mut(key) else { continue };
            let cannot_run = artifacts.failed_fingerprints(&w.spec.module);
            if reconcile::place_pending(w, snap, &cannot_run) && !changed.contains(key) {
                changed.push(key.clone());
            }
        }
    }

    /// Step 4 and the commit: derives the specs of `nodes`, gives each changed one the next generation, commits
    /// them with workloads `changed` and the node records agent messages left unsaved, keeps `snap` for the
    /// next scoped pass, then publishes.
    fn finish_pass(&mut self, snap: Snapshot, changed: &[String], nodes: Nodes<'_>) -> Result<(), ClusterError> {
        let modules = &self.modules;
        let size = |sha: &str| modules.get(sha).map(|m| m.size);
        let (mut specs, names): (_, Vec<&String>) = match nodes {
            Nodes::All => (reconcile::node_specs(self.workloads.values(), size), self.nodes.keys().collect()),
            Nodes::Only(only) => {
                let specs = reconcile::node_specs_on(self.workloads.values(), size, |n| only.contains(n));
                (specs, only.iter().filter(|n| self.nodes.contains_key(*n)).collect())
            }
        };
        // Nodes whose spec changed are updated in place (no clone of each record: with 10,000 new nodes that was
        // megabytes held across the commit); `undo` keeps what puts them back if the commit fails.
        let mut undo: Vec<(String, u64, String)> = Vec::new();
        let mut publishes: Vec<(String, NodeSpec)> = Vec::new();
        let mut seen: Vec<(String, Vec<edge_proto::InstanceSpec>)> = Vec::new();
        let names: Vec<String> = names.into_iter().cloned().collect();
        for name in names {
            let instances = specs.remove(&name).unwrap_or_default();
            // Unchanged since the last pass: skip hashing (with thousands of nodes, most passes change few).
            if self.last_specs.get(&name) == Some(&instances) {
                continue;
            }
            let hash = spec_hash(&instances);
            let Some(node) = self.nodes.get_mut(&name) else { continue };
            if hash != node.spec_hash {
                let Some(generation) = node.spec_generation.checked_add(1) else {
                    self.undo_node_specs(undo);
                    return Err(ClusterError::Conflict(format!("node {name}: spec generation exhausted")));
                };
                undo.push((name.clone(), node.spec_generation, std::mem::replace(&mut node.spec_hash, hash)));
                node.spec_generation = generation;
                let spec = NodeSpec { issuer: self.issuer, generation, instances: instances.clone() };
                publishes.push((name.clone(), spec));
            }
            seen.push((name, instances));
        }
        let mut batch: Vec<Change<'_>> =
            changed.iter().filter_map(|k| self.workloads.get(k)).map(Change::PutWorkload).collect();
        let updated: HashSet<&str> = undo.iter().map(|(n, _, _)| n.as_str()).collect();
        batch.extend(undo.iter().filter_map(|(n, _, _)| self.nodes.get(n)).map(Change::PutNode));
        batch.extend(
            self.unsaved_nodes
                .iter()
                .filter(|n| !updated.contains(n.as_str()))
                .filter_map(|n| self.nodes.get(n))
                .map(Change::PutNode),
        );
        let committed = self.store.commit(&batch);
        drop((batch, updated));
        if let Err(e) = committed {
            self.undo_node_specs(undo);
            self.dirty = true;
            self.sched = None;
            // Reload what the store holds so memory never runs ahead of it.
            if let Ok(ws) = self.store.load_workloads() {
                self.workloads = ws.into_iter().map(|w| (w.key(), w)).collect();
            }
            return Err(e.into());
        }
        self.sched = Some(snap);
        self.unsaved_nodes.clear();
        self.release_after_commit();
        self.last_specs.extend(seen);
        self.pending = self.workloads.values().flat_map(|w| &w.instances).filter(|i| i.node.is_none()).count();
        for (node, spec) in publishes {
            self.send(&node, Channel::Spec, &Message::Spec(spec), true);
        }
        self.rebuild_index();
        Ok(())
    }

    /// Puts back the spec generation and hash of nodes a failed pass had updated in place.
    fn undo_node_specs(&mut self, undo: Vec<(String, u64, String)>) {
        for (name, generation, hash) in undo {
            if let Some(node) = self.nodes.get_mut(&name) {
                node.spec_generation = generation;
                node.spec_hash = hash;
            }
        }
    }

    /// The spec `node` should run now, as last committed.
    pub(crate) fn current_spec(&self, node: &str) -> Option<NodeSpec> {
        let record = self.nodes.get(node)?;
        let instances = match self.last_specs.get(node) {
            Some(i) => i.clone(),
            None => {
                let modules = &self.modules;
                let mut specs = reconcile::node_specs(self.workloads.values(), |sha| modules.get(sha).map(|m| m.size));
                specs.remove(node).unwrap_or_default()
            }
        };
        Some(NodeSpec { issuer: self.issuer, generation: record.spec_generation, instances })
    }

    /// Every node's current spec, for re-publishing when the controller's MQTT connection comes (back) up.
    pub fn republish_all(&self) {
        let modules = &self.modules;
        let mut specs = reconcile::node_specs(self.workloads.values(), |sha| modules.get(sha).map(|m| m.size));
        for node in self.nodes.values() {
            let instances = specs.remove(&node.name).unwrap_or_default();
            let spec = NodeSpec { issuer: self.issuer, generation: node.spec_generation, instances };
            self.send(&node.name, Channel::Spec, &Message::Spec(spec), true);
        }
    }

    /// Readiness of the instances of workloads `keys` as their nodes report them, for rollouts.
    fn readiness(&self, keys: &[String], now: Instant) -> HashMap<String, Readiness> {
        let mut out = HashMap::new();
        for w in keys.iter().filter_map(|k| self.workloads.get(k)) {
            for i in &w.instances {
                let Some(live) = i.node.as_deref().and_then(|n| self.live.get(n)) else { continue };
                if live.instances.contains_key(&i.id) {
                    out.insert(i.id.clone(), live.readiness(&i.id, self.min_ready, now));
                }
            }
        }
        out
    }
}

/// The hash that decides whether a node's spec changed: its instances alone (issuer and generation excluded).
fn spec_hash(instances: &[edge_proto::InstanceSpec]) -> String {
    let body = NodeSpec { issuer: 0, generation: 0, instances: instances.to_vec() };
    hex::encode(Sha256::digest(edge_proto::encode(&Message::Spec(body))))
}

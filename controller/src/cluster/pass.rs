//! The reconcile pass and what runs it: user operations (at once, committed before they answer), the periodic
//! tick (readiness changed, a rollout under way), and [`Cluster::flush`] after a batch of agent messages.
//!
//! A pass: scale and roll out each workload, replace instances on lost or drained nodes, place pending ones,
//! derive every node's spec, give each changed spec the next generation, commit all of it in one transaction,
//! then publish. Only nodes whose instance list changed are hashed and published.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use edge_proto::{Channel, Message, NodeSpec};
use sha2::{Digest, Sha256};

use super::{unique_ids, Cluster, ClusterError};
use crate::model::NodeRecord;
use crate::reconcile::{self, Readiness, Rollout};
use crate::scheduler::{Blocker, NodeSlot};
use crate::store::Change;

impl Cluster {
    /// One idempotent pass: replicas kept, pending instances placed, changed node specs committed and published.
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

    /// Periodic work: a pass when a node became Ready, NotReady or lost since the last one, or a rollout is
    /// under way (cheap otherwise, so it runs often and notices a lost node promptly).
    pub fn tick(&mut self) {
        let ready: BTreeSet<String> = self.nodes.keys().filter(|n| self.is_ready(n)).cloned().collect();
        let lost: BTreeSet<String> = self.nodes.keys().filter(|n| self.is_lost(n)).cloned().collect();
        let rolling = self.rollouts.values().any(|r| *r != Rollout::Complete);
        if self.dirty || rolling || ready != self.last_ready || lost != self.last_lost {
            self.dirty = true;
        }
        self.flush();
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

    /// A pass that commits workload `write` whether or not its instances change (a deploy whose change is
    /// not in its instances: a new workload of 0 replicas, another node-loss policy).
    pub(crate) fn reconcile_writing(&mut self, write: &str) -> Result<(), ClusterError> {
        self.reconcile_with(&HashSet::new(), Some(write))
    }

    fn reconcile_with(&mut self, draining: &HashSet<String>, write: Option<&str>) -> Result<(), ClusterError> {
        let mut changed: Vec<String> = write.map(str::to_string).into_iter().collect();
        let taken: HashSet<String> =
            self.workloads.values().flat_map(|w| w.instances.iter().map(|i| i.id.clone())).collect();
        let mut new_id = unique_ids(taken);
        self.last_ready = self.nodes.keys().filter(|n| self.is_ready(n)).cloned().collect();
        self.last_lost = self.nodes.keys().filter(|n| self.is_lost(n)).cloned().collect();
        let lost: HashSet<String> = self.last_lost.iter().chain(draining).cloned().collect();
        let readiness = self.readiness();
        let ready_of = |id: &str| readiness.get(id).copied().unwrap_or(Readiness::NotYet);
        let mut rollouts = HashMap::new();
        for (key, w) in self.workloads.iter_mut() {
            let (pruned, rollout) = reconcile::prune(w, &mut new_id, ready_of);
            if let Rollout::Halted(why) = &rollout {
                if self.rollouts.get(key) != Some(&rollout) {
                    tracing::warn!(workload = %key, reason = %why, "rollout halted");
                }
            }
            rollouts.insert(key.clone(), rollout);
            let replaced = reconcile::replace_lost(w, &lost, &mut new_id);
            if replaced {
                tracing::info!(workload = %key, "rescheduling instances off lost or drained nodes");
            }
            if (pruned || replaced) && !changed.contains(key) {
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
                    .with_engine(engine);
                if !self.is_ready(&n.name) {
                    slot.blocker = Some(Blocker::NotReady);
                } else if n.cordoned {
                    slot.blocker = Some(Blocker::Cordoned);
                }
                slot
            })
            .collect();
        let mut snap = reconcile::snapshot(slots, self.workloads.values());
        let artifacts = &self.artifacts;
        for (key, w) in self.workloads.iter_mut() {
            let cannot_run = artifacts.failed_fingerprints(&w.spec.module);
            if reconcile::place_pending(w, &mut snap, &cannot_run) && !changed.contains(key) {
                changed.push(key.clone());
            }
        }
        let modules = &self.modules;
        let mut specs = reconcile::node_specs(self.workloads.values(), |sha| modules.get(sha).map(|m| m.size));
        let mut node_updates: Vec<NodeRecord> = Vec::new();
        let mut publishes: Vec<(String, NodeSpec)> = Vec::new();
        let mut seen: Vec<(String, Vec<edge_proto::InstanceSpec>)> = Vec::new();
        for node in self.nodes.values() {
            let instances = specs.remove(&node.name).unwrap_or_default();
            // Unchanged since the last pass: skip hashing (with thousands of nodes, most passes change few).
            if self.last_specs.get(&node.name) == Some(&instances) {
                continue;
            }
            seen.push((node.name.clone(), instances.clone()));
            let hash = spec_hash(&instances);
            if hash != node.spec_hash {
                let mut updated = node.clone();
                updated.spec_generation = node
                    .spec_generation
                    .checked_add(1)
                    .ok_or_else(|| ClusterError::Conflict(format!("node {}: spec generation exhausted", node.name)))?;
                updated.spec_hash = hash;
                publishes.push((
                    updated.name.clone(),
                    NodeSpec { issuer: self.issuer, generation: updated.spec_generation, instances },
                ));
                node_updates.push(updated);
            }
        }
        let mut batch: Vec<Change<'_>> =
            changed.iter().filter_map(|k| self.workloads.get(k)).map(Change::PutWorkload).collect();
        batch.extend(node_updates.iter().map(Change::PutNode));
        let updated: HashSet<&str> = node_updates.iter().map(|n| n.name.as_str()).collect();
        batch.extend(
            self.unsaved_nodes
                .iter()
                .filter(|n| !updated.contains(n.as_str()))
                .filter_map(|n| self.nodes.get(n))
                .map(Change::PutNode),
        );
        self.dirty = false;
        if let Err(e) = self.store.commit(&batch) {
            self.dirty = true;
            // Reload what the store holds so memory never runs ahead of it.
            if let Ok(ws) = self.store.load_workloads() {
                self.workloads = ws.into_iter().map(|w| (w.key(), w)).collect();
            }
            return Err(e.into());
        }
        for n in node_updates {
            self.nodes.insert(n.name.clone(), n);
        }
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

    /// Readiness of every instance some node reports, for rollouts.
    fn readiness(&self) -> HashMap<String, Readiness> {
        let now = Instant::now();
        let mut out = HashMap::new();
        for live in self.live.values() {
            for id in live.instances.keys() {
                out.insert(id.clone(), live.readiness(id, self.min_ready, now));
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

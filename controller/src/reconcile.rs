//! Reconcile decisions: bring each workload's instance list to its spec and derive every node's desired spec.
//! Pure: the caller supplies the scheduler snapshot and an id generator; nothing here touches I/O or clocks.
//!
//! A pass runs in four steps, each idempotent (running a pass twice changes nothing the second time):
//! 1. [`prune`]: keep the replica count; roll a new revision out one replica at a time (surge 1, unavailable 0:
//!    an old instance goes only when a new one is ready), and halt when a new one fails.
//! 2. [`replace_lost`]: instances on lost nodes (NotReady for `--reschedule-after`) are replaced by new,
//!    unbound ones, unless the workload says `stay`.
//! 3. [`place_pending`]: bind unbound instances through the scheduler, or record why they cannot be.
//! 4. [`node_specs`]: group bound instances per node into the specs agents run.

use std::collections::{BTreeMap, HashSet};

use edge_proto::InstanceSpec;

use crate::model::{InstanceRecord, NodeLossPolicy, WorkloadRecord};
use crate::scheduler::{Demand, NodeSlot, Snapshot};

/// How a new-revision instance is doing, from what its agent reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Running for the minimum ready time (or finished successfully).
    Ready,
    /// Pending, starting, or running for less than the minimum ready time.
    NotYet,
    /// Crash-looping or failed: the rollout halts.
    Failing,
}

/// Where a workload's rollout stands after a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    Complete,
    Progressing,
    /// A new instance fails; the old instances keep serving. The reason names the instance.
    Halted(String),
}

/// Step 1. Brings the instance list to the spec; returns whether it changed and where the rollout stands.
///
/// Without instances of an older revision this only scales. With them, a rollout: at most `replicas + 1`
/// instances exist (surge 1); an old instance is removed only for a new one that is [`Readiness::Ready`]
/// (unavailable 0); a new instance that is [`Readiness::Failing`] halts it (nothing added, nothing removed).
pub fn prune(
    w: &mut WorkloadRecord,
    new_id: &mut impl FnMut(&str) -> String,
    readiness: impl Fn(&str) -> Readiness,
) -> (bool, Rollout) {
    let before = w.instances.clone();
    let want = w.spec.replicas as usize;
    let is_old = |i: &InstanceRecord, rev: u64| i.revision != rev;
    let mut old = w.instances.iter().filter(|i| is_old(i, w.revision)).count();
    if old > 0 {
        // Old instances that never got a node serve nobody: drop them first.
        let rev = w.revision;
        w.instances.retain(|i| !(is_old(i, rev) && i.node.is_none()));
        old = w.instances.iter().filter(|i| is_old(i, rev)).count();
    }
    if old == 0 {
        return (scale(w, want, new_id) || w.instances != before, Rollout::Complete);
    }
    let rev = w.revision;
    let new: Vec<(String, Readiness)> =
        w.instances.iter().filter(|i| !is_old(i, rev)).map(|i| (i.id.clone(), readiness(&i.id))).collect();
    if let Some((id, _)) = new.iter().find(|(_, r)| *r == Readiness::Failing) {
        return (w.instances != before, Rollout::Halted(format!("instance {id} of revision {rev} is failing")));
    }
    let ready = new.iter().filter(|(_, r)| *r == Readiness::Ready).count();
    // Each ready new instance replaces one old one.
    let mut surplus_old = (old + ready).saturating_sub(want).min(old);
    while surplus_old > 0 {
        // Remove the newest old instance first: the oldest keep serving longest.
        if let Some(i) = w.instances.iter().rposition(|i| is_old(i, rev)) {
            w.instances.remove(i);
        }
        surplus_old -= 1;
    }
    let old = w.instances.iter().filter(|i| is_old(i, rev)).count();
    let mut new_total = new.len().min(want);
    if new.len() > want {
        // Scaled down mid-rollout: drop surplus new instances (unready first).
        scale_revision(w, rev, want);
    }
    while new_total < want && old + new_total < want + 1 {
        w.instances.push(InstanceRecord { id: new_id(&w.name), revision: rev, node: None, reason: None });
        new_total += 1;
    }
    let state = if old == 0 && new_total == want { Rollout::Complete } else { Rollout::Progressing };
    (w.instances != before, state)
}

/// Keeps at most `want` instances of revision `rev`, dropping unbound ones first, then the newest.
fn scale_revision(w: &mut WorkloadRecord, rev: u64, want: usize) {
    while w.instances.iter().filter(|i| i.revision == rev).count() > want {
        let pos = w
            .instances
            .iter()
            .rposition(|i| i.revision == rev && i.node.is_none())
            .or_else(|| w.instances.iter().rposition(|i| i.revision == rev));
        match pos {
            Some(p) => {
                w.instances.remove(p);
            }
            None => break,
        }
    }
}

/// Scales a workload with no rollout in progress to `want` instances.
fn scale(w: &mut WorkloadRecord, want: usize, new_id: &mut impl FnMut(&str) -> String) -> bool {
    let before = w.instances.clone();
    if w.instances.len() > want {
        // Drop unbound replicas first, then the newest bound ones: the oldest keep serving.
        let mut unbound: Vec<usize> = (0..w.instances.len()).filter(|&i| w.instances[i].node.is_none()).collect();
        let mut bound: Vec<usize> = (0..w.instances.len()).filter(|&i| w.instances[i].node.is_some()).collect();
        let mut remove = Vec::new();
        while w.instances.len() - remove.len() > want {
            match unbound.pop().or_else(|| bound.pop()) {
                Some(i) => remove.push(i),
                None => break,
            }
        }
        remove.sort_unstable();
        for i in remove.into_iter().rev() {
            w.instances.remove(i);
        }
    }
    while w.instances.len() < want {
        w.instances.push(InstanceRecord { id: new_id(&w.name), revision: w.revision, node: None, reason: None });
    }
    w.instances != before
}

/// Step 2. Replaces each instance bound to a node in `lost` by a new unbound one (a new id: the old one may
/// still run on the lost node, which stops it once it hears its new spec). Returns true when anything changed.
pub fn replace_lost(w: &mut WorkloadRecord, lost: &HashSet<String>, new_id: &mut impl FnMut(&str) -> String) -> bool {
    if w.spec.on_node_loss == NodeLossPolicy::Stay || lost.is_empty() {
        return false;
    }
    let mut changed = false;
    for i in w.instances.iter_mut() {
        if i.node.as_ref().is_some_and(|n| lost.contains(n)) {
            *i = InstanceRecord { id: new_id(&w.name), revision: i.revision, node: None, reason: None };
            changed = true;
        }
    }
    changed
}

/// What each instance of `w` needs of its node: its request, and its bytes in the node's spec.
pub fn demand(w: &WorkloadRecord) -> Demand {
    Demand { resources: w.spec.request(), spec_bytes: crate::spec_size::instance_bytes(&w.namespace, &w.name, &w.spec) }
}

/// Books every bound instance of `workloads` into a snapshot of `nodes`.
pub fn snapshot<'a>(nodes: Vec<NodeSlot>, workloads: impl IntoIterator<Item = &'a WorkloadRecord>) -> Snapshot {
    let mut snap = Snapshot::new(nodes);
    for w in workloads {
        let key = w.key();
        let demand = demand(w);
        for i in &w.instances {
            if let Some(node) = i.node.as_deref() {
                snap.book(node, &key, demand);
            }
        }
    }
    snap
}

/// Step 2. Returns true when a placement or a Pending reason changed. `cannot_run`: engine fingerprints the
/// workload's module could not be compiled for.
pub fn place_pending(w: &mut WorkloadRecord, snap: &mut Snapshot, cannot_run: &[String]) -> bool {
    let key = w.key();
    let request = demand(w);
    let mut changed = false;
    for i in w.instances.iter_mut().filter(|i| i.node.is_none()) {
        let (node, reason) = match snap.place_for(&key, request, &w.spec.selector, cannot_run, w.spec.abi) {
            Ok(node) => (Some(node), None),
            Err(e) => (None, Some(e.reason)),
        };
        if i.node != node || i.reason != reason {
            i.node = node;
            i.reason = reason;
            changed = true;
        }
    }
    changed
}

/// Step 3. Every node's desired instances, keyed by node name, sorted by instance id (so equal inputs give
/// byte-identical specs). `module_size` gives the size of a module by its sha256 hex.
pub fn node_specs<'a>(
    workloads: impl IntoIterator<Item = &'a WorkloadRecord>,
    module_size: impl Fn(&str) -> Option<u64>,
) -> BTreeMap<String, Vec<InstanceSpec>> {
    node_specs_on(workloads, module_size, |_| true)
}

/// As [`node_specs`], for the nodes `wanted` accepts only (a pass that touched few nodes derives only theirs).
pub fn node_specs_on<'a>(
    workloads: impl IntoIterator<Item = &'a WorkloadRecord>,
    module_size: impl Fn(&str) -> Option<u64>,
    wanted: impl Fn(&str) -> bool,
) -> BTreeMap<String, Vec<InstanceSpec>> {
    let mut out: BTreeMap<String, Vec<InstanceSpec>> = BTreeMap::new();
    for w in workloads {
        let Some(module) = decode_sha(&w.spec.module) else { continue };
        let size = module_size(&w.spec.module).unwrap_or(0);
        for i in &w.instances {
            let Some(node) = i.node.as_ref().filter(|n| wanted(n)) else { continue };
            out.entry(node.clone()).or_default().push(InstanceSpec {
                id: i.id.clone(),
                namespace: w.namespace.clone(),
                workload: w.name.clone(),
                module,
                module_size: size,
                args: w.spec.args.clone(),
                env: w.spec.env.clone(),
                cpu_millis: w.spec.cpu_millis,
                memory_limit_bytes: w.spec.memory_limit(),
                restart: w.spec.restart,
                cpu_limit_millis: w.spec.cpu_limit_millis,
                timeout_ms: w.spec.timeout_ms,
                volumes: w.spec.volumes.clone(),
            });
        }
    }
    for specs in out.values_mut() {
        specs.sort_by(|a, b| a.id.cmp(&b.id));
    }
    out
}

/// Parses 64 lowercase hex characters into a sha256.
pub fn decode_sha(hex_str: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_str).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WorkloadSpec;
    use edge_proto::Resources;

    fn workload(replicas: u32) -> WorkloadRecord {
        WorkloadRecord {
            namespace: "default".into(),
            name: "t".into(),
            spec: WorkloadSpec {
                module: "ab".repeat(32),
                replicas,
                cpu_millis: 100,
                memory_bytes: 1 << 20,
                ..Default::default()
            },
            revision: 1,
            instances: vec![],
            created_ms: 0,
            history: vec![],
        }
    }

    fn ids() -> impl FnMut(&str) -> String {
        let mut n = 0;
        move |name: &str| {
            n += 1;
            format!("{name}-{n}")
        }
    }

    fn nodes() -> Vec<NodeSlot> {
        let r = Resources { cpu_millis: 1000, memory_bytes: 1 << 30 };
        vec![NodeSlot::new("n1", r), NodeSlot::new("n2", r)]
    }

    #[test]
    fn a_pass_places_replicas_on_distinct_nodes_and_is_idempotent() {
        let mut w = workload(2);
        let mut next = ids();
        assert!(prune(&mut w, &mut next, ready).0);
        let mut snap = snapshot(nodes(), []);
        assert!(place_pending(&mut w, &mut snap, &[]));
        let placed: Vec<_> = w.instances.iter().map(|i| i.node.clone().unwrap()).collect();
        assert_eq!(placed, ["n1", "n2"]);
        // Second pass: nothing to do.
        assert_eq!(prune(&mut w, &mut next, ready), (false, Rollout::Complete));
        let mut snap = snapshot(nodes(), [&w]);
        assert!(!place_pending(&mut w, &mut snap, &[]));
        let specs = node_specs([&w], |_| Some(9));
        assert_eq!(specs["n1"][0].id, "t-1");
        assert_eq!(specs["n2"][0].module_size, 9);
    }

    fn ready(_: &str) -> Readiness {
        Readiness::Ready
    }

    fn ids_of(w: &WorkloadRecord) -> Vec<&str> {
        w.instances.iter().map(|i| i.id.as_str()).collect()
    }

    fn bind_all(w: &mut WorkloadRecord) {
        for i in w.instances.iter_mut() {
            i.node.get_or_insert_with(|| "n1".into());
        }
    }

    #[test]
    fn scaling_down_drops_unbound_then_newest() {
        let mut w = workload(3);
        let mut next = ids();
        prune(&mut w, &mut next, ready);
        w.instances[0].node = Some("n1".into());
        w.instances[1].node = Some("n2".into());
        w.spec.replicas = 1;
        assert!(prune(&mut w, &mut next, ready).0);
        assert_eq!(ids_of(&w), ["t-1"]);
    }

    #[test]
    fn a_rollout_goes_one_replica_at_a_time_with_surge_one_and_no_unavailability() {
        let mut w = workload(2);
        let mut next = ids();
        prune(&mut w, &mut next, ready);
        bind_all(&mut w);
        w.revision = 2;
        // One new instance (surge 1); both old ones stay while it is not ready.
        let not_yet = |_: &str| Readiness::NotYet;
        assert_eq!(prune(&mut w, &mut next, not_yet), (true, Rollout::Progressing));
        assert_eq!(ids_of(&w), ["t-1", "t-2", "t-3"]);
        bind_all(&mut w);
        assert_eq!(prune(&mut w, &mut next, not_yet), (false, Rollout::Progressing));
        // t-3 ready: one old goes (the newest, t-2) and the next new one comes.
        let only_t3 = |id: &str| if id == "t-3" { Readiness::Ready } else { Readiness::NotYet };
        assert_eq!(prune(&mut w, &mut next, only_t3), (true, Rollout::Progressing));
        assert_eq!(ids_of(&w), ["t-1", "t-3", "t-4"]);
        bind_all(&mut w);
        assert_eq!(prune(&mut w, &mut next, ready), (true, Rollout::Complete));
        assert_eq!(ids_of(&w), ["t-3", "t-4"]);
        assert!(w.instances.iter().all(|i| i.revision == 2));
    }

    #[test]
    fn a_failing_new_revision_halts_and_the_old_instances_keep_serving() {
        let mut w = workload(2);
        let mut next = ids();
        prune(&mut w, &mut next, ready);
        bind_all(&mut w);
        w.revision = 2;
        prune(&mut w, &mut next, |_| Readiness::NotYet);
        bind_all(&mut w);
        let failing = |id: &str| if id == "t-3" { Readiness::Failing } else { Readiness::Ready };
        let (changed, state) = prune(&mut w, &mut next, failing);
        assert!(!changed);
        assert_eq!(state, Rollout::Halted("instance t-3 of revision 2 is failing".into()));
        assert_eq!(ids_of(&w), ["t-1", "t-2", "t-3"]);
    }

    #[test]
    fn instances_on_lost_nodes_are_replaced_unless_the_workload_stays() {
        let mut w = workload(2);
        let mut next = ids();
        prune(&mut w, &mut next, ready);
        place_pending(&mut w, &mut snapshot(nodes(), []), &[]);
        let lost: HashSet<String> = ["n1".to_string()].into();
        let mut stay = w.clone();
        stay.spec.on_node_loss = NodeLossPolicy::Stay;
        assert!(!replace_lost(&mut stay, &lost, &mut next));
        assert!(replace_lost(&mut w, &lost, &mut next));
        assert_eq!(w.instances[0].id, "t-3");
        assert_eq!(w.instances[0].node, None);
        assert_eq!(w.instances[1].node.as_deref(), Some("n2"));
        // The lost node is NotReady in the snapshot, so the replacement goes elsewhere.
        let mut slots = nodes();
        slots[0].blocker = Some(crate::scheduler::Blocker::NotReady);
        let mut snap = snapshot(slots, [&w]);
        assert!(place_pending(&mut w, &mut snap, &[]));
        assert_eq!(w.instances[0].node.as_deref(), Some("n2"));
        assert!(!replace_lost(&mut w, &lost, &mut next));
    }

    #[test]
    fn unplaceable_replicas_carry_the_reason() {
        let mut w = workload(1);
        w.spec.memory_bytes = 100 << 30;
        prune(&mut w, &mut ids(), ready);
        let mut snap = snapshot(nodes(), []);
        place_pending(&mut w, &mut snap, &[]);
        assert_eq!(w.instances[0].reason.as_deref(), Some("0/2 nodes available: 2 insufficient memory"));
    }
}

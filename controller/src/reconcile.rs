//! Reconcile decisions: bring each workload's instance list to its spec and derive every node's desired spec.
//! Pure: the caller supplies the scheduler snapshot and an id generator; nothing here touches I/O or clocks.
//!
//! A pass runs in four steps, each idempotent (running a pass twice changes nothing the second time):
//! 1. [`prune`]: drop instances of an older revision and surplus replicas; add unbound ones up to `replicas`.
//! 2. [`replace_lost`]: instances on lost nodes (NotReady for `--reschedule-after`) are replaced by new,
//!    unbound ones, unless the workload says `stay`.
//! 3. [`place_pending`]: bind unbound instances through the scheduler, or record why they cannot be.
//! 4. [`node_specs`]: group bound instances per node into the specs agents run.

use std::collections::{BTreeMap, HashSet};

use edge_proto::InstanceSpec;

use crate::model::{InstanceRecord, NodeLossPolicy, WorkloadRecord};
use crate::scheduler::{NodeSlot, Snapshot};

/// Step 1. Returns true when the instance list changed.
pub fn prune(w: &mut WorkloadRecord, new_id: &mut impl FnMut(&str) -> String) -> bool {
    let before = w.instances.clone();
    w.instances.retain(|i| i.revision == w.revision);
    let want = w.spec.replicas as usize;
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

/// Books every bound instance of `workloads` into a snapshot of `nodes`.
pub fn snapshot<'a>(nodes: Vec<NodeSlot>, workloads: impl IntoIterator<Item = &'a WorkloadRecord>) -> Snapshot {
    let mut snap = Snapshot::new(nodes);
    for w in workloads {
        let key = w.key();
        for i in &w.instances {
            if let Some(node) = i.node.as_deref() {
                snap.book(node, &key, w.spec.request());
            }
        }
    }
    snap
}

/// Step 2. Returns true when a placement or a Pending reason changed.
pub fn place_pending(w: &mut WorkloadRecord, snap: &mut Snapshot) -> bool {
    let key = w.key();
    let request = w.spec.request();
    let mut changed = false;
    for i in w.instances.iter_mut().filter(|i| i.node.is_none()) {
        let (node, reason) = match snap.place_matching(&key, request, &w.spec.selector) {
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
    let mut out: BTreeMap<String, Vec<InstanceSpec>> = BTreeMap::new();
    for w in workloads {
        let Some(module) = decode_sha(&w.spec.module) else { continue };
        let size = module_size(&w.spec.module).unwrap_or(0);
        for i in &w.instances {
            let Some(node) = &i.node else { continue };
            out.entry(node.clone()).or_default().push(InstanceSpec {
                id: i.id.clone(),
                namespace: w.namespace.clone(),
                workload: w.name.clone(),
                module,
                module_size: size,
                args: w.spec.args.clone(),
                env: w.spec.env.clone(),
                cpu_millis: w.spec.cpu_millis,
                memory_limit_bytes: w.spec.memory_bytes,
                restart: w.spec.restart,
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
                env: vec![],
                args: vec![],
                restart: Default::default(),
                on_node_loss: Default::default(),
                selector: Default::default(),
            },
            revision: 1,
            instances: vec![],
            created_ms: 0,
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
        assert!(prune(&mut w, &mut next));
        let mut snap = snapshot(nodes(), []);
        assert!(place_pending(&mut w, &mut snap));
        let placed: Vec<_> = w.instances.iter().map(|i| i.node.clone().unwrap()).collect();
        assert_eq!(placed, ["n1", "n2"]);
        // Second pass: nothing to do.
        assert!(!prune(&mut w, &mut next));
        let mut snap = snapshot(nodes(), [&w]);
        assert!(!place_pending(&mut w, &mut snap));
        let specs = node_specs([&w], |_| Some(9));
        assert_eq!(specs["n1"][0].id, "t-1");
        assert_eq!(specs["n2"][0].module_size, 9);
    }

    #[test]
    fn scaling_down_drops_unbound_then_newest_and_new_revisions_replace_all() {
        let mut w = workload(3);
        let mut next = ids();
        prune(&mut w, &mut next);
        w.instances[0].node = Some("n1".into());
        w.instances[1].node = Some("n2".into());
        w.spec.replicas = 1;
        assert!(prune(&mut w, &mut next));
        assert_eq!(w.instances.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["t-1"]);
        w.revision = 2;
        assert!(prune(&mut w, &mut next));
        assert_eq!(w.instances.len(), 1);
        assert_eq!(w.instances[0].id, "t-4");
        assert_eq!(w.instances[0].node, None);
    }

    #[test]
    fn instances_on_lost_nodes_are_replaced_unless_the_workload_stays() {
        let mut w = workload(2);
        let mut next = ids();
        prune(&mut w, &mut next);
        place_pending(&mut w, &mut snapshot(nodes(), []));
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
        assert!(place_pending(&mut w, &mut snap));
        assert_eq!(w.instances[0].node.as_deref(), Some("n2"));
        assert!(!replace_lost(&mut w, &lost, &mut next));
    }

    #[test]
    fn unplaceable_replicas_carry_the_reason() {
        let mut w = workload(1);
        w.spec.memory_bytes = 100 << 30;
        prune(&mut w, &mut ids());
        let mut snap = snapshot(nodes(), []);
        place_pending(&mut w, &mut snap);
        assert_eq!(w.instances[0].reason.as_deref(), Some("0/2 nodes available: 2 insufficient memory"));
    }
}

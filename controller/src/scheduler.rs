//! The scheduler: picks a node for one replica from declared resources. Pure: no I/O, no clock, no randomness.
//!
//! A [`Snapshot`] holds every node's allocatable and allocated resources, its labels, and how many replicas of
//! each workload it (and its `zone`) runs. [`Snapshot::place_matching`] filters nodes (Ready, not cordoned, labels
//! match the workload's selector, resources fit), scores the survivors (fewest replicas of the same workload in the
//! node's zone first, then on the node, to spread; then least allocated; then by name, so the same input always
//! gives the same output) and books the request on the winner, so consecutive calls see earlier placements.
//!
//! **Invariant:** a node's allocated resources never exceed its allocatable after a placement.

use std::collections::{BTreeMap, HashMap};

use edge_proto::Resources;

/// Why a node cannot take anything at all right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Blocker {
    NotReady,
    Cordoned,
}

/// One node as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct NodeSlot {
    pub name: String,
    pub blocker: Option<Blocker>,
    pub allocatable: Resources,
    pub allocated: Resources,
    /// Replicas per workload key already on this node.
    pub replicas: HashMap<String, u32>,
    pub labels: BTreeMap<String, String>,
}

/// The node label that names a failure domain; replicas spread over its values first.
pub const ZONE_LABEL: &str = "zone";

impl NodeSlot {
    pub fn new(name: impl Into<String>, allocatable: Resources) -> NodeSlot {
        NodeSlot {
            name: name.into(),
            blocker: None,
            allocatable,
            allocated: Resources::ZERO,
            replicas: HashMap::new(),
            labels: BTreeMap::new(),
        }
    }

    pub fn with_labels(mut self, labels: BTreeMap<String, String>) -> NodeSlot {
        self.labels = labels;
        self
    }

    fn matches(&self, selector: &BTreeMap<String, String>) -> bool {
        selector.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }

    fn free(&self) -> Resources {
        self.allocatable.saturating_sub(self.allocated)
    }

    /// Fraction of the node in use after adding `request`, the larger of CPU and memory, in parts per million.
    fn load_after(&self, request: Resources) -> u64 {
        let cpu =
            ratio(self.allocated.cpu_millis as u64 + request.cpu_millis as u64, self.allocatable.cpu_millis as u64);
        let mem =
            ratio(self.allocated.memory_bytes.saturating_add(request.memory_bytes), self.allocatable.memory_bytes);
        cpu.max(mem)
    }

    /// Books an instance that is already bound here (used when building the snapshot).
    pub fn book(&mut self, workload: &str, request: Resources) {
        self.allocated = self.allocated.saturating_add(request);
        *self.replicas.entry(workload.to_string()).or_default() += 1;
    }
}

fn ratio(used: u64, total: u64) -> u64 {
    if total == 0 {
        return u64::MAX;
    }
    (used as u128 * 1_000_000 / total as u128) as u64
}

/// No node fits; `reason` is worded as Kubernetes words it: `0/3 nodes available: 2 insufficient memory, 1 cordoned`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    pub reason: String,
}

/// The cluster as the scheduler sees it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub nodes: Vec<NodeSlot>,
    /// Replicas per (zone, workload key), over nodes that carry a zone label.
    zones: HashMap<(String, String), u32>,
}

impl Snapshot {
    pub fn new(mut nodes: Vec<NodeSlot>) -> Snapshot {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut zones = HashMap::new();
        for n in &nodes {
            if let Some(z) = n.labels.get(ZONE_LABEL) {
                for (w, count) in &n.replicas {
                    *zones.entry((z.clone(), w.clone())).or_default() += count;
                }
            }
        }
        Snapshot { nodes, zones }
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut NodeSlot> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    /// Books an instance already bound to `node` (building a snapshot). Unknown nodes are ignored.
    pub fn book(&mut self, node: &str, workload: &str, request: Resources) {
        let Some(i) = self.nodes.iter().position(|n| n.name == node) else { return };
        self.book_at(i, workload, request);
    }

    fn book_at(&mut self, i: usize, workload: &str, request: Resources) {
        let node = &mut self.nodes[i];
        node.book(workload, request);
        if let Some(z) = node.labels.get(ZONE_LABEL) {
            *self.zones.entry((z.clone(), workload.to_string())).or_default() += 1;
        }
    }

    /// Places one replica of `workload` needing `request` on any node, books it, and returns the node's name.
    pub fn place(&mut self, workload: &str, request: Resources) -> Result<String, Unschedulable> {
        self.place_matching(workload, request, &BTreeMap::new())
    }

    /// As [`Snapshot::place`], on a node whose labels include every pair of `selector`.
    pub fn place_matching(
        &mut self,
        workload: &str,
        request: Resources,
        selector: &BTreeMap<String, String>,
    ) -> Result<String, Unschedulable> {
        let mut best: Option<(u32, u32, u64, usize)> = None;
        // not ready, cordoned, selector, insufficient cpu, insufficient memory
        let mut rejections: [usize; 5] = [0; 5];
        for (i, node) in self.nodes.iter().enumerate() {
            match node.blocker {
                Some(Blocker::NotReady) => {
                    rejections[0] += 1;
                    continue;
                }
                Some(Blocker::Cordoned) => {
                    rejections[1] += 1;
                    continue;
                }
                None => {}
            }
            if !node.matches(selector) {
                rejections[2] += 1;
                continue;
            }
            let free = node.free();
            if request.memory_bytes > free.memory_bytes {
                rejections[4] += 1;
                continue;
            }
            if request.cpu_millis > free.cpu_millis {
                rejections[3] += 1;
                continue;
            }
            let in_zone = node
                .labels
                .get(ZONE_LABEL)
                .map_or(0, |z| self.zones.get(&(z.clone(), workload.to_string())).copied().unwrap_or(0));
            let key = (in_zone, node.replicas.get(workload).copied().unwrap_or(0), node.load_after(request), i);
            if best.is_none_or(|b| (key.0, key.1, key.2) < (b.0, b.1, b.2)) {
                best = Some(key);
            }
        }
        match best {
            Some((_, _, _, i)) => {
                self.book_at(i, workload, request);
                Ok(self.nodes[i].name.clone())
            }
            None => {
                let labels =
                    ["not ready", "cordoned", "didn't match node selector", "insufficient cpu", "insufficient memory"];
                let parts: Vec<String> = rejections
                    .iter()
                    .zip(labels)
                    .filter(|(n, _)| **n > 0)
                    .map(|(n, label)| format!("{n} {label}"))
                    .collect();
                let mut reason = format!("0/{} nodes available", self.nodes.len());
                if !parts.is_empty() {
                    reason.push_str(": ");
                    reason.push_str(&parts.join(", "));
                }
                Err(Unschedulable { reason })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn res(cpu: u32, mem_mib: u64) -> Resources {
        Resources { cpu_millis: cpu, memory_bytes: mem_mib * MIB }
    }

    #[test]
    fn spreads_replicas_over_equal_nodes() {
        let mut s = Snapshot::new(vec![NodeSlot::new("b", res(2000, 1024)), NodeSlot::new("a", res(2000, 1024))]);
        let first = s.place("ns/w", res(100, 10)).unwrap();
        let second = s.place("ns/w", res(100, 10)).unwrap();
        assert_eq!(first, "a", "ties break by name");
        assert_eq!(second, "b", "the second replica goes to the other node");
        assert_eq!(s.place("ns/w", res(100, 10)).unwrap(), "a");
    }

    #[test]
    fn prefers_the_least_allocated_node() {
        let mut s = Snapshot::new(vec![NodeSlot::new("a", res(2000, 1024)), NodeSlot::new("b", res(2000, 1024))]);
        s.node_mut("a").unwrap().book("ns/other", res(1000, 512));
        assert_eq!(s.place("ns/w", res(100, 10)).unwrap(), "b");
    }

    #[test]
    fn never_overcommits_and_explains_why() {
        let mut s = Snapshot::new(vec![
            NodeSlot::new("a", res(1000, 100)),
            NodeSlot::new("b", res(1000, 100)),
            NodeSlot::new("c", res(1000, 100)),
        ]);
        s.node_mut("c").unwrap().blocker = Some(Blocker::Cordoned);
        assert!(s.place("ns/w", res(100, 60)).is_ok());
        assert!(s.place("ns/w", res(100, 60)).is_ok());
        let err = s.place("ns/w", res(100, 60)).unwrap_err();
        assert_eq!(err.reason, "0/3 nodes available: 1 cordoned, 2 insufficient memory");
        for n in &s.nodes {
            assert!(n.allocatable.fits(n.allocated), "{} over-committed", n.name);
        }
        let err = s.place("ns/w", res(5000, 1)).unwrap_err();
        assert_eq!(err.reason, "0/3 nodes available: 1 cordoned, 2 insufficient cpu");
        assert_eq!(Snapshot::default().place("x", res(1, 1)).unwrap_err().reason, "0/0 nodes available");
    }

    #[test]
    fn selectors_filter_and_zones_spread_first() {
        let label = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let mut s = Snapshot::new(vec![
            NodeSlot::new("a1", res(4000, 1024)).with_labels(label(&[("zone", "a"), ("board", "rpi-4")])),
            NodeSlot::new("a2", res(4000, 1024)).with_labels(label(&[("zone", "a"), ("board", "rpi-4")])),
            NodeSlot::new("b1", res(4000, 1024)).with_labels(label(&[("zone", "b"), ("board", "rpi-4")])),
            NodeSlot::new("c1", res(4000, 1024)).with_labels(label(&[("board", "rpi-5")])),
        ]);
        let pi4 = label(&[("board", "rpi-4")]);
        // Zone a holds two nodes, zone b one: the second replica still goes to zone b.
        assert_eq!(s.place_matching("ns/w", res(10, 1), &pi4).unwrap(), "a1");
        assert_eq!(s.place_matching("ns/w", res(10, 1), &pi4).unwrap(), "b1");
        assert_eq!(s.place_matching("ns/w", res(10, 1), &pi4).unwrap(), "a2");
        let err = s.place_matching("ns/w", res(10, 1), &label(&[("board", "esp32")])).unwrap_err();
        assert_eq!(err.reason, "0/4 nodes available: 4 didn't match node selector");
    }

    #[test]
    fn not_ready_nodes_take_nothing() {
        let mut s = Snapshot::new(vec![NodeSlot::new("a", res(1000, 100))]);
        s.nodes[0].blocker = Some(Blocker::NotReady);
        assert_eq!(s.place("ns/w", res(1, 1)).unwrap_err().reason, "0/1 nodes available: 1 not ready");
    }

    /// A small deterministic generator, so the randomized checks below are reproducible without a dependency.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, below: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % below
        }
    }

    fn random_cluster(rng: &mut Lcg) -> Snapshot {
        let n = 1 + rng.next(12) as usize;
        let nodes = (0..n)
            .map(|i| {
                let mut slot = NodeSlot::new(format!("n{i:02}"), res(500 + rng.next(4000) as u32, 64 + rng.next(4096)));
                slot.blocker = match rng.next(10) {
                    0 => Some(Blocker::NotReady),
                    1 => Some(Blocker::Cordoned),
                    _ => None,
                };
                slot
            })
            .collect();
        Snapshot::new(nodes)
    }

    #[test]
    fn randomized_clusters_are_never_overcommitted_and_placement_is_deterministic() {
        let mut rng = Lcg(7);
        for _ in 0..300 {
            let base = random_cluster(&mut rng);
            let requests: Vec<(String, Resources)> =
                (0..40).map(|_| (format!("ns/w{}", rng.next(5)), res(rng.next(1500) as u32, rng.next(1024)))).collect();
            let run = |mut snap: Snapshot| {
                let placed: Vec<Result<String, Unschedulable>> =
                    requests.iter().map(|(w, r)| snap.place(w, *r)).collect();
                (snap, placed)
            };
            let (snap, placed) = run(base.clone());
            let (_, again) = run(base.clone());
            assert_eq!(placed, again, "same input, same output");
            for node in &snap.nodes {
                assert!(node.allocatable.fits(node.allocated), "{} over-committed", node.name);
                if node.blocker.is_some() {
                    assert!(node.replicas.is_empty(), "{} is blocked but got replicas", node.name);
                }
            }
            for ((_, r), p) in requests.iter().zip(&placed) {
                if let Err(e) = p {
                    assert!(e.reason.starts_with(&format!("0/{} nodes available", snap.nodes.len())), "{}", e.reason);
                    // Unschedulable really means no open node had room at that moment (checked at the end,
                    // when free space can only be smaller).
                    assert!(snap.nodes.iter().all(|n| n.blocker.is_some() || !n.free().fits(*r)));
                }
            }
        }
    }

    #[test]
    fn replicas_spread_evenly_over_equal_nodes() {
        for nodes in 1..8usize {
            for replicas in 0..30usize {
                let mut s =
                    Snapshot::new((0..nodes).map(|i| NodeSlot::new(format!("n{i}"), res(100_000, 100_000))).collect());
                for _ in 0..replicas {
                    s.place("ns/w", res(10, 10)).unwrap();
                }
                let counts: Vec<u32> = s.nodes.iter().map(|n| n.replicas.get("ns/w").copied().unwrap_or(0)).collect();
                let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
                assert!(max - min <= 1, "{nodes} nodes, {replicas} replicas: {counts:?}");
            }
        }
    }
}

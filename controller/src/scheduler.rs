//! The scheduler: picks a node for one replica from declared resources. Pure: no I/O, no clock, no randomness.
//!
//! A [`Snapshot`] holds every node's allocatable and allocated resources, its labels, and how many replicas of
//! each workload it (and its `zone`) runs. [`Snapshot::place_on`] filters nodes (Ready, not cordoned, labels
//! match the workload's selector, the node's engine can run the module, resources fit), scores the survivors (fewest replicas of the same workload in the
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
    /// Fingerprint of the node's engine profile (see `edge_engine::fingerprint`), when known.
    pub engine: Option<String>,
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
            engine: None,
        }
    }

    pub fn with_engine(mut self, fingerprint: Option<String>) -> NodeSlot {
        self.engine = fingerprint;
        self
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

    /// Fraction of the node in use after adding `request`, the larger of CPU and memory.
    fn load_after(&self, request: Resources) -> Load {
        let cpu =
            Load::new(self.allocated.cpu_millis as u64 + request.cpu_millis as u64, self.allocatable.cpu_millis as u64);
        let mem =
            Load::new(self.allocated.memory_bytes.saturating_add(request.memory_bytes), self.allocatable.memory_bytes);
        cpu.max(mem)
    }

    /// Books an instance that is already bound here (used when building the snapshot).
    pub fn book(&mut self, workload: &str, request: Resources) {
        self.allocated = self.allocated.saturating_add(request);
        *self.replicas.entry(workload.to_string()).or_default() += 1;
    }
}

/// A fraction `used / total`, compared exactly by cross-multiplication (no division in the scheduler's inner
/// loop). A zero total counts as full.
#[derive(Debug, Clone, Copy)]
struct Load {
    used: u64,
    total: u64,
}

impl Load {
    fn new(used: u64, total: u64) -> Load {
        if total == 0 {
            Load { used: 1, total: 0 }
        } else {
            Load { used, total }
        }
    }

    fn key(self) -> (u128, u128) {
        // total == 0 is infinity: compare as 1/0 > anything finite.
        (self.used as u128, self.total as u128)
    }
}

impl PartialEq for Load {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Load {}

impl PartialOrd for Load {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Load {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let ((a, b), (c, d)) = (self.key(), other.key());
        match (b == 0, d == 0) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            (false, false) => (a * d).cmp(&(c * b)),
        }
    }
}

/// Hashes node indexes with one multiplication: the inner loop looks one up per node.
#[derive(Default, Clone, Copy)]
struct IndexHasher(u64);

impl std::hash::Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ *b as u64).wrapping_mul(0x100000001b3);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IndexMap = HashMap<usize, u32, std::hash::BuildHasherDefault<IndexHasher>>;

/// No node fits; `reason` is worded as Kubernetes words it: `0/3 nodes available: 2 insufficient memory, 1 cordoned`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    pub reason: String,
}

/// The cluster as the scheduler sees it.
///
/// Large clusters are scored the way kube-scheduler does it (`percentageOfNodesToScore`): a placement stops
/// scanning once it has found enough feasible nodes (all of them up to 100 nodes; beyond, 50 % minus 1 % per 125
/// nodes, at least 5 % and at least 100), starting where the previous placement stopped, so successive
/// placements look at different nodes. Filters are never sampled: a node that does not fit is never chosen, and
/// "nothing fits" is only said after every node was examined.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub nodes: Vec<NodeSlot>,
    index: HashMap<String, usize>,
    /// Zone of each node (index into `zone_names`), interned once: the scan must not hash strings per node.
    zone_of: Vec<Option<u32>>,
    zone_names: Vec<String>,
    /// Replicas per workload key and zone index.
    zones: HashMap<String, Vec<u32>>,
    /// Replicas per workload key and node index (few entries per workload: quick to consult for every node).
    by_workload: HashMap<String, IndexMap>,
    /// Where the next placement starts scanning.
    cursor: usize,
}

/// How many feasible nodes a placement scores among `n` nodes.
fn sample_size(n: usize) -> usize {
    if n <= 100 {
        return n;
    }
    let pct = 50usize.saturating_sub(n / 125).max(5);
    (n * pct / 100).max(100)
}

impl Snapshot {
    pub fn new(mut nodes: Vec<NodeSlot>) -> Snapshot {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut s = Snapshot { index: HashMap::with_capacity(nodes.len()), ..Default::default() };
        for (i, n) in nodes.iter().enumerate() {
            s.index.insert(n.name.clone(), i);
            let zone = n.labels.get(ZONE_LABEL).map(|z| match s.zone_names.iter().position(|x| x == z) {
                Some(p) => p as u32,
                None => {
                    s.zone_names.push(z.clone());
                    (s.zone_names.len() - 1) as u32
                }
            });
            s.zone_of.push(zone);
        }
        let zone_count = s.zone_names.len();
        for (i, n) in nodes.iter().enumerate() {
            for (w, count) in &n.replicas {
                if let Some(z) = s.zone_of[i] {
                    s.zones.entry(w.clone()).or_insert_with(|| vec![0; zone_count])[z as usize] += count;
                }
                *s.by_workload.entry(w.clone()).or_default().entry(i).or_default() += count;
            }
        }
        s.nodes = nodes;
        s
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut NodeSlot> {
        let i = *self.index.get(name)?;
        self.nodes.get_mut(i)
    }

    /// Books an instance already bound to `node` (building a snapshot). Unknown nodes are ignored.
    pub fn book(&mut self, node: &str, workload: &str, request: Resources) {
        let Some(&i) = self.index.get(node) else { return };
        self.book_at(i, workload, request);
    }

    fn book_at(&mut self, i: usize, workload: &str, request: Resources) {
        self.nodes[i].book(workload, request);
        if let Some(z) = self.zone_of[i] {
            let zones = self.zone_names.len();
            match self.zones.get_mut(workload) {
                Some(counts) => counts[z as usize] += 1,
                None => {
                    let mut counts = vec![0; zones];
                    counts[z as usize] = 1;
                    self.zones.insert(workload.to_string(), counts);
                }
            }
        }
        *self.by_workload.entry(workload.to_string()).or_default().entry(i).or_default() += 1;
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
        self.place_on(workload, request, selector, &[])
    }

    /// As [`Snapshot::place_matching`], also skipping nodes whose engine fingerprint is in `cannot_run` (the
    /// module could not be compiled for that engine profile).
    pub fn place_on(
        &mut self,
        workload: &str,
        request: Resources,
        selector: &BTreeMap<String, String>,
        cannot_run: &[String],
    ) -> Result<String, Unschedulable> {
        let mut best: Option<(u32, u32, Load, usize)> = None;
        // not ready, cordoned, selector, insufficient cpu, insufficient memory, engine
        let mut rejections: [usize; 6] = [0; 6];
        let n = self.nodes.len();
        let want = sample_size(n);
        let mut feasible = 0;
        let empty = IndexMap::default();
        let on_nodes = self.by_workload.get(workload).unwrap_or(&empty);
        let no_zones = Vec::new();
        let in_zones = self.zones.get(workload).unwrap_or(&no_zones);
        let mut next_cursor = self.cursor;
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let node = &self.nodes[i];
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
            if !selector.is_empty() && !node.matches(selector) {
                rejections[2] += 1;
                continue;
            }
            if !cannot_run.is_empty() && node.engine.as_ref().is_some_and(|e| cannot_run.contains(e)) {
                rejections[5] += 1;
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
            let in_zone = self.zone_of[i].and_then(|z| in_zones.get(z as usize)).copied().unwrap_or(0);
            let here = if on_nodes.is_empty() { 0 } else { on_nodes.get(&i).copied().unwrap_or(0) };
            // Spread first (zone, then node); the load only breaks ties, so it is computed only then.
            let better = match &best {
                None => true,
                Some(b) if (in_zone, here) != (b.0, b.1) => (in_zone, here) < (b.0, b.1),
                Some(b) => node.load_after(request) < b.2,
            };
            if better {
                best = Some((in_zone, here, node.load_after(request), i));
            }
            feasible += 1;
            if feasible >= want {
                next_cursor = (i + 1) % n;
                break;
            }
        }
        self.cursor = next_cursor;
        match best {
            Some((_, _, _, i)) => {
                self.book_at(i, workload, request);
                Ok(self.nodes[i].name.clone())
            }
            None => {
                let labels = [
                    "not ready",
                    "cordoned",
                    "didn't match node selector",
                    "insufficient cpu",
                    "insufficient memory",
                    "cannot run the module on their engine",
                ];
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
    fn nodes_whose_engine_cannot_run_the_module_are_filtered_and_counted() {
        let mut s = Snapshot::new(vec![
            NodeSlot::new("armv7", res(1000, 100)).with_engine(Some("p32".into())),
            NodeSlot::new("pi5", res(1000, 100)).with_engine(Some("a64".into())),
            NodeSlot::new("old", res(1000, 100)),
        ]);
        let none = BTreeMap::new();
        let cannot = ["p32".to_string()];
        for _ in 0..4 {
            assert_ne!(s.place_on("ns/w", res(10, 1), &none, &cannot).unwrap(), "armv7");
        }
        let cannot = ["p32".to_string(), "a64".to_string()];
        let mut s = Snapshot::new(vec![
            NodeSlot::new("armv7", res(1000, 100)).with_engine(Some("p32".into())),
            NodeSlot::new("pi5", res(1000, 100)).with_engine(Some("a64".into())),
        ]);
        let err = s.place_on("ns/w", res(10, 1), &none, &cannot).unwrap_err();
        assert_eq!(err.reason, "0/2 nodes available: 2 cannot run the module on their engine");
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
    fn large_clusters_sample_but_never_overcommit_and_spread_evenly() {
        assert_eq!(sample_size(100), 100);
        assert_eq!(sample_size(1_000), 420);
        assert_eq!(sample_size(10_000), 500);
        let mut s = Snapshot::new((0..2_000).map(|i| NodeSlot::new(format!("n{i:05}"), res(1000, 100))).collect());
        for _ in 0..4_000 {
            s.place("ns/w", res(400, 40)).unwrap();
        }
        assert!(s.nodes.iter().all(|n| n.replicas.get("ns/w") == Some(&2)), "two replicas on every node");
        // Full: the next one is refused with every node counted.
        let err = s.place("ns/w", res(400, 40)).unwrap_err();
        assert_eq!(err.reason, "0/2000 nodes available: 2000 insufficient memory");
    }

    #[test]
    fn not_ready_nodes_take_nothing() {
        let mut s = Snapshot::new(vec![NodeSlot::new("a", res(1000, 100))]);
        s.nodes[0].blocker = Some(Blocker::NotReady);
        assert_eq!(s.place("ns/w", res(1, 1)).unwrap_err().reason, "0/1 nodes available: 1 not ready");
    }

    use proptest::prelude::*;

    fn node_strategy() -> impl Strategy<Value = NodeSlot> {
        (500u32..4500, 64u64..4160, 0u8..10, 0u8..3, 0u8..3).prop_map(|(cpu, mem, blocked, zone, board)| {
            let mut labels = BTreeMap::new();
            labels.insert("zone".to_string(), format!("z{zone}"));
            labels.insert("board".to_string(), format!("b{board}"));
            let mut slot = NodeSlot::new("", res(cpu, mem)).with_labels(labels);
            slot.blocker = match blocked {
                0 => Some(Blocker::NotReady),
                1 => Some(Blocker::Cordoned),
                _ => None,
            };
            slot
        })
    }

    fn cluster_strategy() -> impl Strategy<Value = Snapshot> {
        prop::collection::vec(node_strategy(), 1..40).prop_map(|mut nodes| {
            for (i, n) in nodes.iter_mut().enumerate() {
                n.name = format!("n{i:02}");
            }
            Snapshot::new(nodes)
        })
    }

    /// (workload, request, selector on `board`).
    fn requests_strategy() -> impl Strategy<Value = Vec<(String, Resources, Option<u8>)>> {
        prop::collection::vec(
            (0u8..5, 0u32..1500, 0u64..1024, prop::option::of(0u8..4))
                .prop_map(|(w, cpu, mem, board)| (format!("ns/w{w}"), res(cpu, mem), board)),
            0..60,
        )
    }

    fn selector(board: Option<u8>) -> BTreeMap<String, String> {
        board.map(|b| BTreeMap::from([("board".to_string(), format!("b{b}"))])).unwrap_or_default()
    }

    proptest! {
        #[test]
        fn never_overcommits_respects_selectors_and_is_deterministic(
            base in cluster_strategy(),
            requests in requests_strategy(),
        ) {
            let run = |mut snap: Snapshot| {
                let placed: Vec<Result<String, Unschedulable>> =
                    requests.iter().map(|(w, r, b)| snap.place_matching(w, *r, &selector(*b))).collect();
                (snap, placed)
            };
            let (snap, placed) = run(base.clone());
            let (_, again) = run(base.clone());
            prop_assert_eq!(&placed, &again, "same input, same output");
            for node in &snap.nodes {
                prop_assert!(node.allocatable.fits(node.allocated), "{} over-committed", node.name);
                if node.blocker.is_some() {
                    prop_assert!(node.replicas.is_empty(), "{} is blocked but got replicas", node.name);
                }
            }
            for ((_, r, b), p) in requests.iter().zip(&placed) {
                match p {
                    Ok(name) => {
                        let node = snap.nodes.iter().find(|n| &n.name == name).unwrap();
                        prop_assert!(node.matches(&selector(*b)), "{} does not match the selector", name);
                    }
                    Err(e) => {
                        let prefix = format!("0/{} nodes available", snap.nodes.len());
                        prop_assert!(e.reason.starts_with(&prefix), "{}", e.reason);
                        // Nothing open, matching and with room existed (free space only shrinks afterwards).
                        prop_assert!(snap.nodes.iter().all(|n| n.blocker.is_some()
                            || !n.matches(&selector(*b))
                            || !n.free().fits(*r)));
                    }
                }
            }
        }

        #[test]
        fn replicas_spread_evenly_over_equal_nodes_prop(nodes in 1usize..12, replicas in 0usize..40) {
            let mut s =
                Snapshot::new((0..nodes).map(|i| NodeSlot::new(format!("n{i}"), res(100_000, 100_000))).collect());
            for _ in 0..replicas {
                s.place("ns/w", res(10, 10)).unwrap();
            }
            let counts: Vec<u32> = s.nodes.iter().map(|n| n.replicas.get("ns/w").copied().unwrap_or(0)).collect();
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            prop_assert!(max - min <= 1, "{} nodes, {} replicas: {:?}", nodes, replicas, counts);
        }
    }
}

//! The scheduler: picks a node for one replica from declared resources. Pure: no I/O, no clock, no randomness.
//!
//! A [`Snapshot`] holds every node's allocatable and allocated resources, its labels, and how many replicas of
//! each workload it (and its `zone`) runs. [`Snapshot::place_on`] filters nodes (Ready, not cordoned, labels
//! match the workload's selector, the node's engine can run the module, resources fit, the node's spec has room
//! for the instance), scores the survivors (fewest replicas of the same workload in the
//! node's zone first, then on the node, to spread; then least allocated; then by name, so the same input always
//! gives the same output) and books the request on the winner, so consecutive calls see earlier placements.
//!
//! A placement's [`Demand`] is its resource request plus the bytes the instance adds to its node's spec: a spec
//! is one MQTT message, so its size is a resource too (`crate::spec_size`), with a budget per node.
//!
//! **Invariant:** a node's allocated resources never exceed its allocatable after a placement, nor its spec
//! bytes its spec budget.

use std::collections::{BTreeMap, HashMap};

use edge_proto::mcu::ModuleAbi;
use edge_proto::Resources;

/// Why a node cannot take anything at all right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Blocker {
    NotReady,
    Cordoned,
}

/// What one instance needs of the node it is placed on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    pub resources: Resources,
    /// Bytes it adds to the node's spec on the wire (`crate::spec_size::instance_bytes`).
    pub spec_bytes: usize,
}

/// A bare resource request, adding nothing to a node's spec (tests and benches that place resources only).
impl From<Resources> for Demand {
    fn from(resources: Resources) -> Demand {
        Demand { resources, spec_bytes: 0 }
    }
}

/// One node as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct NodeSlot {
    pub name: String,
    pub blocker: Option<Blocker>,
    pub allocatable: Resources,
    pub allocated: Resources,
    /// Bytes the instances of the node's spec may take (default [`crate::spec_size::NODE_SPEC_BUDGET`]), and
    /// what those booked take.
    pub spec_budget: usize,
    pub spec_bytes: usize,
    /// Replicas per workload key already on this node.
    pub replicas: HashMap<String, u32>,
    /// Sorted by key, one entry per key. A vector, not a map: a snapshot is kept between passes for every node,
    /// and a `BTreeMap` allocates room for eleven entries where a node has two or three.
    pub labels: Vec<(String, String)>,
    /// Fingerprint of the node's engine profile (see `edge_engine::fingerprint`), when known.
    pub engine: Option<String>,
    /// Which modules its engine runs (`EngineTarget::runs`): WASI under wasmtime (the default), MCU-ABI under
    /// wasmi, or none (a microcontroller without a WebAssembly engine).
    pub runs: Option<ModuleAbi>,
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
            spec_budget: crate::spec_size::NODE_SPEC_BUDGET,
            spec_bytes: 0,
            replicas: HashMap::new(),
            labels: Vec::new(),
            engine: None,
            runs: Some(ModuleAbi::Wasi),
        }
    }

    pub fn with_runs(mut self, runs: Option<ModuleAbi>) -> NodeSlot {
        self.runs = runs;
        self
    }

    pub fn with_engine(mut self, fingerprint: Option<String>) -> NodeSlot {
        self.engine = fingerprint;
        self
    }

    pub fn with_labels(mut self, labels: impl IntoIterator<Item = (String, String)>) -> NodeSlot {
        // Through a map: later pairs win, as they would in one.
        let map: BTreeMap<String, String> = labels.into_iter().collect();
        self.labels = map.into_iter().collect();
        self
    }

    fn matches(&self, selector: &BTreeMap<String, String>) -> bool {
        selector.iter().all(|(k, v)| self.label(k) == Some(v))
    }

    pub fn label(&self, key: &str) -> Option<&String> {
        self.labels.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok().map(|i| &self.labels[i].1)
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
    pub fn book(&mut self, workload: &str, demand: impl Into<Demand>) {
        let demand = demand.into();
        self.allocated = self.allocated.saturating_add(demand.resources);
        self.spec_bytes = self.spec_bytes.saturating_add(demand.spec_bytes);
        *self.replicas.entry(workload.to_string()).or_default() += 1;
    }

    /// Bytes the node's spec can still take.
    fn spec_room(&self) -> usize {
        self.spec_budget.saturating_sub(self.spec_bytes)
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
    /// Every booking made through the snapshot, per workload key: node index and request, so a workload's
    /// bookings can be taken back ([`Snapshot::unbook_workload`]) when one workload is reconciled alone.
    bookings: HashMap<String, Vec<(usize, Demand)>>,
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
            let zone = n.label(ZONE_LABEL).map(|z| match s.zone_names.iter().position(|x| x == z) {
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
    pub fn book(&mut self, node: &str, workload: &str, demand: impl Into<Demand>) {
        let Some(&i) = self.index.get(node) else { return };
        self.book_at(i, workload, demand.into());
    }

    fn book_at(&mut self, i: usize, workload: &str, request: Demand) {
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
        self.bookings.entry(workload.to_string()).or_default().push((i, request));
    }

    /// Takes back every booking of `workload` made through this snapshot ([`Snapshot::book`] and placements),
    /// as if it had none: a pass that reconciles one workload books its instances again afterwards. Replica
    /// counts a [`NodeSlot`] brought with it are not bookings of the snapshot and stay.
    pub fn unbook_workload(&mut self, workload: &str) {
        let Some(bookings) = self.bookings.remove(workload) else { return };
        for (i, request) in bookings {
            let node = &mut self.nodes[i];
            node.allocated = node.allocated.saturating_sub(request.resources);
            node.spec_bytes = node.spec_bytes.saturating_sub(request.spec_bytes);
            if let Some(count) = node.replicas.get_mut(workload) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    node.replicas.remove(workload);
                }
            }
            if let (Some(z), Some(counts)) = (self.zone_of[i], self.zones.get_mut(workload)) {
                counts[z as usize] = counts[z as usize].saturating_sub(1);
            }
            if let Some(on_nodes) = self.by_workload.get_mut(workload) {
                if let Some(count) = on_nodes.get_mut(&i) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        on_nodes.remove(&i);
                    }
                }
            }
        }
        if self.by_workload.get(workload).is_some_and(|m| m.is_empty()) {
            self.by_workload.remove(workload);
        }
        if self.zones.get(workload).is_some_and(|z| z.iter().all(|c| *c == 0)) {
            self.zones.remove(workload);
        }
    }

    /// Names of the nodes `workload` is booked on through this snapshot (with repeats).
    pub fn booked_nodes(&self, workload: &str) -> impl Iterator<Item = &str> {
        self.bookings.get(workload).into_iter().flatten().map(|(i, _)| self.nodes[*i].name.as_str())
    }

    /// Places one replica of `workload` needing `request` on any node, books it, and returns the node's name.
    pub fn place(&mut self, workload: &str, request: impl Into<Demand>) -> Result<String, Unschedulable> {
        self.place_matching(workload, request, &BTreeMap::new())
    }

    /// As [`Snapshot::place`], on a node whose labels include every pair of `selector`.
    pub fn place_matching(
        &mut self,
        workload: &str,
        request: impl Into<Demand>,
        selector: &BTreeMap<String, String>,
    ) -> Result<String, Unschedulable> {
        self.place_on(workload, request, selector, &[])
    }

    /// As [`Snapshot::place_matching`], also skipping nodes whose engine fingerprint is in `cannot_run` (the
    /// module could not be compiled for that engine profile).
    pub fn place_on(
        &mut self,
        workload: &str,
        demand: impl Into<Demand>,
        selector: &BTreeMap<String, String>,
        cannot_run: &[String],
    ) -> Result<String, Unschedulable> {
        self.place_for(workload, demand, selector, cannot_run, ModuleAbi::Wasi)
    }

    /// As [`Snapshot::place_on`], for a module of host ABI `abi`: only nodes whose engine runs it qualify (WASI
    /// on wasmtime, MCU-ABI on wasmi); the reason for those that do not names their engine.
    pub fn place_for(
        &mut self,
        workload: &str,
        demand: impl Into<Demand>,
        selector: &BTreeMap<String, String>,
        cannot_run: &[String],
        abi: ModuleAbi,
    ) -> Result<String, Unschedulable> {
        let demand = demand.into();
        let request = demand.resources;
        let mut best: Option<(u32, u32, Load, usize)> = None;
        // not ready, cordoned, selector, insufficient cpu, insufficient memory, engine, spec room; then the
        // engine kinds: no engine, MCU-only for a WASI module, wasmtime for an MCU-ABI module
        let mut rejections: [usize; 10] = [0; 10];
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
            if node.runs != Some(abi) {
                rejections[match (node.runs, abi) {
                    (None, _) => 7,
                    (Some(_), ModuleAbi::Wasi) => 8,
                    (Some(_), ModuleAbi::Mcu) => 9,
                }] += 1;
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
            if demand.spec_bytes > node.spec_room() {
                rejections[6] += 1;
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
                self.book_at(i, workload, demand);
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
                    "insufficient spec room",
                    "have no WebAssembly engine (microcontroller core only)",
                    "run only MCU-ABI modules under wasmi (the module needs the WASI engine, wasmtime)",
                    "run only WASI modules under wasmtime (the module needs the MCU ABI, wasmi)",
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
mod tests;

//! Scheduler unit tests: filters, scoring, spread, sampling, bookings.

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
fn modules_go_only_to_engines_of_their_abi_and_the_reason_names_the_engine() {
    let nodes = || {
        vec![
            NodeSlot::new("pi", res(4000, 4096)),
            NodeSlot::new("pico2", res(1000, 1)).with_runs(Some(ModuleAbi::Mcu)),
            NodeSlot::new("picow", res(1000, 1)).with_runs(None),
        ]
    };
    let none = BTreeMap::new();
    let mut s = Snapshot::new(nodes());
    for _ in 0..3 {
        assert_eq!(s.place_for("ns/blink", res(10, 0), &none, &[], ModuleAbi::Mcu).unwrap(), "pico2");
        assert_eq!(s.place_for("ns/tick", res(10, 1), &none, &[], ModuleAbi::Wasi).unwrap(), "pi");
    }
    // RAM is booked like any memory: a module needing more than the board has does not land there.
    let err = s.place_for("ns/big", res(10, 2), &none, &[], ModuleAbi::Mcu).unwrap_err();
    assert!(err.reason.contains("1 insufficient memory"), "{}", err.reason);
    let mut mcu_only = Snapshot::new(nodes().into_iter().skip(1).collect());
    let err = mcu_only.place_for("ns/tick", res(10, 0), &none, &[], ModuleAbi::Wasi).unwrap_err();
    assert_eq!(
        err.reason,
        "0/2 nodes available: 1 have no WebAssembly engine (microcontroller core only), 1 run only MCU-ABI \
         modules under wasmi (the module needs the WASI engine, wasmtime)"
    );
    let mut linux_only = Snapshot::new(nodes().into_iter().take(1).collect());
    let err = linux_only.place_for("ns/blink", res(10, 0), &none, &[], ModuleAbi::Mcu).unwrap_err();
    assert!(err.reason.contains("run only WASI modules under wasmtime"), "{}", err.reason);
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
fn unbooking_a_workload_restores_the_snapshot_it_was_booked_into() {
    let fresh = || {
        let mut s = Snapshot::new(vec![
            NodeSlot::new("a", res(1000, 100)).with_labels([(ZONE_LABEL.to_string(), "z1".to_string())]),
            NodeSlot::new("b", res(1000, 100)).with_labels([(ZONE_LABEL.to_string(), "z2".to_string())]),
        ]);
        s.book("a", "ns/other", res(100, 10));
        s
    };
    let mut s = fresh();
    s.book("a", "ns/w", res(500, 50));
    s.place("ns/w", res(500, 50)).unwrap();
    assert_eq!(s.booked_nodes("ns/w").count(), 2);
    s.unbook_workload("ns/w");
    s.unbook_workload("ns/never-booked");
    assert_eq!(s.booked_nodes("ns/w").count(), 0);
    let mut expected = fresh();
    // Same free resources and spread as a snapshot that never saw the workload: the same placements follow.
    for _ in 0..3 {
        assert_eq!(s.place("ns/w", res(300, 30)).unwrap(), expected.place("ns/w", res(300, 30)).unwrap());
    }
    assert_eq!(s.node_mut("a").unwrap().allocated, expected.node_mut("a").unwrap().allocated);
    assert_eq!(s.node_mut("b").unwrap().replicas, expected.node_mut("b").unwrap().replicas);
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
fn spec_bytes_are_a_resource_nodes_never_exceed() {
    let demand = |spec_bytes| Demand { resources: res(1, 1), spec_bytes };
    let mut a = NodeSlot::new("a", res(100_000, 100_000));
    a.spec_budget = 1_000;
    let mut b = a.clone();
    b.name = "b".into();
    let mut s = Snapshot::new(vec![a, b]);
    // Four of 400 bytes fit two nodes of 1,000; the fifth fits nowhere, whatever CPU and memory are free.
    for _ in 0..4 {
        s.place("ns/w", demand(400)).unwrap();
    }
    let err = s.place("ns/w", demand(400)).unwrap_err();
    assert_eq!(err.reason, "0/2 nodes available: 2 insufficient spec room");
    assert!(s.nodes.iter().all(|n| n.spec_bytes == 800), "{:?}", s.nodes);
    // Smaller instances still fit the room left; taking a workload's bookings back frees its bytes.
    assert!(s.place("ns/small", demand(200)).is_ok());
    s.unbook_workload("ns/w");
    assert_eq!(s.nodes.iter().map(|n| n.spec_bytes).sum::<usize>(), 200);
    assert!(s.place("ns/w", demand(800)).is_ok());
    // One instance larger than a whole node's budget is never placed.
    assert!(s.place("ns/huge", demand(1_001)).is_err());
    // The default budget is one spec message's.
    assert_eq!(NodeSlot::new("x", res(1, 1)).spec_budget, crate::spec_size::NODE_SPEC_BUDGET);
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
            // Every request also takes spec bytes, a fifth to a half of a (shrunken) budget per node.
            let placed: Vec<Result<String, Unschedulable>> = requests
                .iter()
                .map(|(w, r, b)| {
                    let spec_bytes = 200 + (r.cpu_millis as usize % 300);
                    snap.place_matching(w, Demand { resources: *r, spec_bytes }, &selector(*b))
                })
                .collect();
            (snap, placed)
        };
        let mut base = base;
        for n in &mut base.nodes {
            n.spec_budget = 1_000;
        }
        let (snap, placed) = run(base.clone());
        let (_, again) = run(base.clone());
        prop_assert_eq!(&placed, &again, "same input, same output");
        for node in &snap.nodes {
            prop_assert!(node.allocatable.fits(node.allocated), "{} over-committed", node.name);
            prop_assert!(node.spec_bytes <= node.spec_budget, "{} spec over its budget", node.name);
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
                    let spec_bytes = 200 + (r.cpu_millis as usize % 300);
                    prop_assert!(snap.nodes.iter().all(|n| n.blocker.is_some()
                        || !n.matches(&selector(*b))
                        || !n.free().fits(*r)
                        || n.spec_room() < spec_bytes));
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

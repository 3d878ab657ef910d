//! Regression tests of the cluster core against a real redb store, driven with wire messages exactly as the
//! MQTT shell hands them over (no broker: what is published is read off the outgoing channel).

use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_proto::{
    Channel, EngineProfile, EngineTarget, Event, EventKind, Heartbeat, Hello, InstanceState, InstanceStatus, Message,
    ModuleReply, ModuleRequest, Resources, Topics,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::{Cluster, Publish, Timing};
use crate::model::WorkloadSpec;
use crate::store::Store;

const PROFILE: EngineProfile =
    EngineProfile { target: EngineTarget::X86_64, memory_reservation: 1 << 30, memory_guard: 1 << 16 };

struct Harness {
    cluster: Cluster,
    out: UnboundedReceiver<Publish>,
    _dir: tempfile::TempDir,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (tx, out) = unbounded_channel();
    let cluster = Cluster::load(store, Topics::new("edge/v1"), Timing::default(), tx).unwrap();
    Harness { cluster, out, _dir: dir }
}

pub(super) fn hello(store_id: u64, applied_generation: u64) -> Hello {
    Hello {
        agent_version: "test".into(),
        board: String::new(),
        arch: "x86_64".into(),
        engine: PROFILE,
        capacity: Resources { cpu_millis: 4000, memory_bytes: 4 << 30 },
        labels: vec![],
        applied_generation,
        store_id,
        reserved: Resources::ZERO,
    }
}

fn heartbeat(store_id: u64, last: u64, oldest_unacked: u64, instances: Vec<InstanceStatus>) -> Heartbeat {
    Heartbeat {
        at_ms: 1,
        applied_generation: 0,
        instances,
        events_dropped: 0,
        last_event_seq: last,
        oldest_unacked_seq: oldest_unacked,
        last_outage: None,
        store_id,
    }
}

impl Harness {
    fn send(&mut self, node: &str, channel: Channel, message: Message) {
        self.cluster.on_uplink(node, channel, &edge_proto::encode(&message));
        self.cluster.flush();
    }

    /// Everything published so far, decoded, with its topic.
    fn published(&mut self) -> Vec<(String, Message)> {
        let mut out = Vec::new();
        while let Ok(p) = self.out.try_recv() {
            out.push((p.topic, edge_proto::decode(&p.payload).unwrap().message));
        }
        out
    }

    fn deploy_one(&mut self) -> String {
        let wasm = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm));
        self.cluster.put_module(sha.clone(), Arc::new(wasm), crate::validate::WASI).unwrap();
        let spec =
            WorkloadSpec { module: sha, replicas: 1, cpu_millis: 100, memory_bytes: 1 << 20, ..Default::default() };
        self.cluster.deploy("default", "w", spec).unwrap();
        self.cluster.workloads["default/w"].instances[0].id.clone()
    }
}

#[test]
fn a_heartbeat_claiming_u64_max_events_costs_constant_work() {
    let mut h = harness();
    h.send("n1", Channel::Hello, Message::Hello(hello(7, 0)));
    let started = Instant::now();
    h.send("n1", Channel::Heartbeat, Message::Heartbeat(heartbeat(7, u64::MAX, 0, vec![])));
    h.send("n1", Channel::Heartbeat, Message::Heartbeat(heartbeat(7, u64::MAX, u64::MAX, vec![])));
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    let detail = h.cluster.node_detail("n1").unwrap();
    assert_eq!(detail.events.applied_up_to, u64::MAX);
    assert_eq!(detail.events.missing, u64::MAX);
}

#[test]
fn a_reset_store_whose_hello_was_lost_is_not_taken_for_duplicates() {
    let mut h = harness();
    let id = h.deploy_one();
    h.send("n1", Channel::Hello, Message::Hello(hello(7, 0)));
    let events = |from: u64, to: u64| {
        Message::Events(
            (from..=to)
                .map(|seq| Event { seq, at_ms: 2, instance: id.clone(), restarts: 0, kind: EventKind::Starting })
                .collect(),
        )
    };
    h.send("n1", Channel::Events, events(1, 50));
    assert_eq!(h.cluster.nodes["n1"].last_event_seq, 50);
    h.published();
    // The agent's store is replaced; its new hello is lost. Its heartbeat says so.
    h.send("n1", Channel::Heartbeat, Message::Heartbeat(heartbeat(8, 3, 1, vec![])));
    h.send("n1", Channel::Events, events(1, 3));
    let detail = h.cluster.node_detail("n1").unwrap();
    assert_eq!(detail.events.applied_up_to, 3, "the new store's events are applied, not dropped as duplicates");
    assert_eq!(detail.events.duplicates, 0);
    let acks: Vec<_> = h
        .published()
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::EventsAck(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(acks.last().map(|a| (a.store_id, a.up_to)), Some((8, 3)));
}

#[test]
fn wire_generations_are_never_adopted() {
    let mut h = harness();
    h.deploy_one();
    h.send("n1", Channel::Hello, Message::Hello(hello(7, u64::MAX)));
    h.send(
        "n1",
        Channel::Heartbeat,
        Message::Heartbeat(Heartbeat { applied_generation: u64::MAX, ..heartbeat(7, 0, 0, vec![]) }),
    );
    let record = &h.cluster.nodes["n1"];
    assert!(record.spec_generation < 10, "generation {} came from the wire", record.spec_generation);
    let specs: Vec<_> = h
        .published()
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::Spec(s) => Some(s),
            _ => None,
        })
        .collect();
    let last = specs.last().expect("the node got its spec");
    assert_eq!(last.issuer, h.cluster.issuer);
    assert_eq!(last.instances.len(), 1, "the replica is placed on the Ready node");
}

#[test]
fn an_artifact_is_served_only_for_the_profile_the_node_announced() {
    let mut h = harness();
    h.deploy_one();
    h.send("n1", Channel::Hello, Message::Hello(hello(7, 0)));
    h.published();
    let module = edge_proto::Sha256::from(
        <[u8; 32]>::try_from(hex::decode(&h.cluster.workloads["default/w"].spec.module).unwrap()).unwrap(),
    );
    let other = EngineProfile { target: EngineTarget::Pulley32, ..PROFILE };
    let before = h.cluster.artifacts.of_module(&hex::encode(module)).count();
    h.send(
        "n1",
        Channel::ModuleRequest,
        Message::ModuleRequest(ModuleRequest { module, artifact: Some(other), offset: 0, max_len: 1024 }),
    );
    let replies: Vec<_> = h
        .published()
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::ModuleReply(r) => Some(r),
            _ => None,
        })
        .collect();
    assert!(matches!(replies.as_slice(), [ModuleReply::Refused { .. }]), "{replies:?}");
    assert_eq!(h.cluster.artifacts.of_module(&hex::encode(module)).count(), before, "nothing was built");
}

#[test]
fn an_exit_event_says_why_at_once() {
    let mut h = harness();
    let id = h.deploy_one();
    h.send("n1", Channel::Hello, Message::Hello(hello(7, 0)));
    h.send(
        "n1",
        Channel::Events,
        Message::Events(vec![Event {
            seq: 1,
            at_ms: 5,
            instance: id.clone(),
            restarts: 0,
            kind: EventKind::Exited { code: 3 },
        }]),
    );
    let view = h.cluster.workload("default", "w").unwrap();
    assert_eq!(view.instances[0].state, "Failed");
    assert_eq!(view.instances[0].reason.as_deref(), Some("exited with code 3"));
}

#[test]
fn a_crash_looping_replica_is_never_ready() {
    let mut h = harness();
    h.cluster.min_ready = Duration::ZERO;
    let id = h.deploy_one();
    h.send("n1", Channel::Hello, Message::Hello(hello(7, 0)));
    let status = |restarts: u32, state: InstanceState| InstanceStatus {
        id: id.clone(),
        state,
        restarts,
        started_at_ms: Some(1),
        exit_code: None,
        reason: None,
    };
    h.send("n1", Channel::Heartbeat, Message::Heartbeat(heartbeat(7, 0, 0, vec![status(0, InstanceState::Running)])));
    assert!(h.cluster.workload("default", "w").unwrap().instances[0].ready);
    h.send(
        "n1",
        Channel::Heartbeat,
        Message::Heartbeat(heartbeat(7, 0, 0, vec![status(1, InstanceState::CrashLoopBackOff)])),
    );
    let view = h.cluster.workload("default", "w").unwrap();
    assert!(!view.instances[0].ready);
    assert_eq!(view.rollout.state, "degraded");
    assert_eq!(view.rollout.ready, 0);
}

#[test]
fn a_committed_delete_reports_success() {
    let mut h = harness();
    h.deploy_one();
    h.cluster.delete("default", "w").unwrap();
    assert!(h.cluster.workload("default", "w").is_err());
    assert!(h.cluster.store.load_workloads().unwrap().is_empty());
}

#[test]
fn hostile_heartbeats_keep_only_what_is_ours() {
    let mut h = harness();
    h.deploy_one();
    h.send("n1", Channel::Hello, Message::Hello(hello(7, 0)));
    let phantoms: Vec<InstanceStatus> = (0..10_000)
        .map(|i| InstanceStatus {
            id: format!("ghost-{i}"),
            state: InstanceState::Running,
            restarts: 0,
            started_at_ms: None,
            exit_code: None,
            reason: None,
        })
        .collect();
    h.send("n1", Channel::Heartbeat, Message::Heartbeat(heartbeat(7, 0, 0, phantoms)));
    assert_eq!(h.cluster.nodes_view()[0].instances, 0);
    // A heartbeat from a node that never said hello is not a node.
    h.send("stranger", Channel::Heartbeat, Message::Heartbeat(heartbeat(1, 5, 0, vec![])));
    assert_eq!(h.cluster.nodes_view().len(), 1);
    let too_long = "a".repeat(253);
    h.send(&too_long, Channel::Hello, Message::Hello(hello(1, 0)));
    h.send("", Channel::Hello, Message::Hello(hello(1, 0)));
    assert_eq!(h.cluster.nodes_view().len(), 1);
    assert_eq!(h.cluster.stats().rejected, 2);
}

/// Scoped passes (deploys, deletes, rollouts) leave the cluster exactly where full passes would: the kept
/// scheduler snapshot books every bound instance and nothing else, no node is overcommitted, and a full pass
/// run afterwards finds nothing to change or publish.
#[test]
fn scoped_passes_leave_what_a_full_pass_would() {
    let mut h = harness();
    for n in 0..12 {
        let name = format!("n{n:02}");
        let mut hi = hello(n + 1, 0);
        hi.capacity = Resources { cpu_millis: 1000 + 250 * (n as u32 % 3), memory_bytes: (64 + 32 * (n % 4)) << 20 };
        hi.labels = vec![("zone".into(), format!("z{}", n % 3))];
        h.send(&name, Channel::Hello, Message::Hello(hi));
        h.send(&name, Channel::Heartbeat, Message::Heartbeat(heartbeat(n + 1, 0, 0, vec![])));
    }
    h.cluster.reconcile().unwrap();
    let wasm = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm));
    h.cluster.put_module(sha.clone(), Arc::new(wasm), crate::validate::WASI).unwrap();
    let spec = |replicas: u32, cpu: u32, mib: u64, rev: &str| WorkloadSpec {
        module: sha.clone(),
        replicas,
        cpu_millis: cpu,
        memory_bytes: mib << 20,
        env: vec![("REV".into(), rev.into())],
        ..Default::default()
    };
    let check = |h: &mut Harness, step: &str| {
        let snap = h.cluster.sched.as_ref().unwrap_or_else(|| panic!("{step}: no snapshot kept"));
        let mut booked: std::collections::BTreeMap<String, (u32, u64)> = Default::default();
        for w in h.cluster.workloads.values() {
            for node in w.instances.iter().filter_map(|i| i.node.clone()) {
                let e = booked.entry(node).or_default();
                e.0 += w.spec.cpu_millis;
                e.1 += w.spec.memory_bytes;
            }
        }
        for slot in &snap.nodes {
            let want = booked.get(&slot.name).copied().unwrap_or_default();
            assert_eq!((slot.allocated.cpu_millis, slot.allocated.memory_bytes), want, "{step}: {}", slot.name);
            assert!(slot.allocated.cpu_millis <= slot.allocatable.cpu_millis, "{step}: {} overcommitted", slot.name);
            assert!(slot.allocated.memory_bytes <= slot.allocatable.memory_bytes, "{step}: {}", slot.name);
        }
        h.published();
        let before = h.cluster.workloads.clone();
        h.cluster.reconcile().unwrap();
        assert_eq!(h.cluster.workloads, before, "{step}: a full pass changed the workloads");
        let specs: Vec<String> =
            h.published().into_iter().filter(|(_, m)| matches!(m, Message::Spec(_))).map(|(topic, _)| topic).collect();
        assert!(specs.is_empty(), "{step}: a full pass had specs left to publish: {specs:?}");
    };
    h.cluster.deploy("default", "a", spec(3, 300, 16, "1")).unwrap();
    check(&mut h, "deploy a");
    h.cluster.deploy("default", "b", spec(5, 200, 24, "1")).unwrap();
    check(&mut h, "deploy b");
    h.cluster.deploy("default", "a", spec(1, 300, 16, "1")).unwrap();
    check(&mut h, "scale a down");
    h.cluster.deploy("default", "b", spec(5, 400, 40, "2")).unwrap();
    check(&mut h, "new revision of b, larger");
    h.cluster.tick();
    check(&mut h, "a tick over the rollout");
    h.cluster.deploy("default", "c", spec(40, 500, 60, "1")).unwrap();
    assert!(h.cluster.workloads["default/c"].instances.iter().any(|i| i.node.is_none()), "c does not all fit");
    check(&mut h, "deploy c, partly pending");
    h.cluster.delete("default", "a").unwrap();
    check(&mut h, "delete a");
    h.cluster.delete("default", "c").unwrap();
    check(&mut h, "delete c");
}

#[test]
fn mcu_modules_go_only_to_wasmi_nodes_booking_what_they_need_and_wasi_ones_never_do() {
    let mut h = harness();
    let mcu = Hello {
        board: "pico-2-w".into(),
        arch: "thumbv8m.main".into(),
        engine: EngineProfile { target: EngineTarget::Wasmi, memory_reservation: 320 << 10, memory_guard: 0 },
        capacity: Resources { cpu_millis: 1000, memory_bytes: 520 << 10 },
        reserved: Resources { cpu_millis: 0, memory_bytes: 200 << 10 },
        labels: vec![("board".into(), "pico-2-w".into())],
        ..hello(8, 0)
    };
    for (node, hi) in [("mcu", mcu), ("pi", hello(7, 0))] {
        let store_id = hi.store_id;
        h.send(node, Channel::Hello, Message::Hello(hi));
        h.send(node, Channel::Heartbeat, Message::Heartbeat(heartbeat(store_id, 0, 0, vec![])));
    }
    let put = |h: &mut Harness, text: &str| {
        let wasm = wat::parse_str(text).unwrap();
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm));
        let class = crate::validate::validate_module(&wasm).unwrap();
        h.cluster.put_module(sha.clone(), Arc::new(wasm), class).unwrap();
        (sha, class)
    };
    let (blink, class) = put(
        &mut h,
        r#"(module (import "edge" "sleep_ms" (func (param i32))) (memory (export "memory") 1) (func (export "run")))"#,
    );
    assert_eq!(class.abi, edge_proto::mcu::ModuleAbi::Mcu);
    let spec = |module: &str| WorkloadSpec {
        module: module.into(),
        replicas: 1,
        cpu_millis: 100,
        memory_bytes: 32 << 20,
        ..Default::default()
    };
    h.cluster.deploy("default", "blink", spec(&blink)).unwrap();
    let w = &h.cluster.workloads["default/blink"];
    assert_eq!(w.instances[0].node.as_deref(), Some("mcu"), "{:?}", w.instances);
    assert_eq!(w.spec.memory_bytes, class.mcu_memory_bytes, "booked what the module needs, not the 32Mi asked");
    // No artifact is built for a microcontroller, nor of an MCU module.
    assert_eq!(h.cluster.artifacts.of_module(&blink).count(), 0);

    let (tick, _) = put(&mut h, r#"(module (func (export "_start")))"#);
    h.cluster.deploy("default", "tick", spec(&tick)).unwrap();
    assert_eq!(h.cluster.workloads["default/tick"].instances[0].node.as_deref(), Some("pi"));
    let pinned = WorkloadSpec { selector: [("board".to_string(), "pico-2-w".to_string())].into(), ..spec(&tick) };
    h.cluster.deploy("default", "tick-mcu", pinned).unwrap();
    let i = &h.cluster.workloads["default/tick-mcu"].instances[0];
    let reason = i.reason.as_deref().unwrap_or_default();
    assert!(i.node.is_none() && reason.contains("run only MCU-ABI modules under wasmi"), "{reason}");
}

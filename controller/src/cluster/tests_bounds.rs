//! The cluster's share of bounded input: one instance fits its budget of a node's spec, a node's spec never
//! outgrows one message however many instances land on it, and memory no Ready node has is refused.

use std::sync::Arc;

use edge_proto::{Channel, Message, Topics};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::{Cluster, ClusterError, Publish, Timing};
use crate::model::WorkloadSpec;
use crate::spec_size::{instance_bytes, INSTANCE_BUDGET, NODE_SPEC_BUDGET};
use crate::store::Store;

struct Harness {
    cluster: Cluster,
    out: UnboundedReceiver<Publish>,
    module: String,
    _dir: tempfile::TempDir,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (tx, out) = unbounded_channel();
    let mut cluster = Cluster::load(store, Topics::new("edge/v1"), Timing::default(), tx).unwrap();
    let wasm = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
    let module = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm));
    cluster.put_module(module.clone(), Arc::new(wasm), crate::validate::WASI).unwrap();
    Harness { cluster, out, module, _dir: dir }
}

impl Harness {
    fn node(&mut self, name: &str) {
        let hello = Message::Hello(super::tests::hello(1, 0));
        self.cluster.on_uplink(name, Channel::Hello, &edge_proto::encode(&hello));
        self.cluster.flush();
        assert!(self.cluster.is_ready(name), "{name} is Ready after its hello");
    }

    fn spec(&self, replicas: u32, memory_bytes: u64) -> WorkloadSpec {
        WorkloadSpec { module: self.module.clone(), replicas, cpu_millis: 10, memory_bytes, ..Default::default() }
    }
}

#[test]
fn one_instance_over_its_spec_budget_is_refused_and_nothing_is_stored() {
    let mut h = harness();
    let mut spec = h.spec(1, 1 << 20);
    // Past admission's bounds on purpose: this rule is the guard that holds whatever they are.
    spec.env = vec![("BIG".into(), "x".repeat(INSTANCE_BUDGET))];
    let bytes = instance_bytes("default", "big", &spec);
    let e = h.cluster.deploy("default", "big", spec.clone()).unwrap_err();
    assert!(matches!(e, ClusterError::Invalid(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "one instance of big would take {bytes} bytes of its node's spec, above the limit of {INSTANCE_BUDGET} \
             (env, args and volumes take most of it)"
        )
    );
    assert!(h.cluster.workloads.is_empty());
    assert!(h.cluster.store.load_workloads().unwrap().is_empty(), "nothing committed");
    // Just inside the budget: accepted.
    spec.env[0].1.truncate(INSTANCE_BUDGET - (bytes - INSTANCE_BUDGET) - 16);
    assert!(instance_bytes("default", "big", &spec) <= INSTANCE_BUDGET);
    h.cluster.deploy("default", "big", spec).unwrap();
}

#[test]
fn a_node_spec_never_outgrows_one_message_however_many_instances_land_on_it() {
    let mut h = harness();
    h.node("n1");
    let mut spec = h.spec(20, 1 << 20);
    spec.env = vec![("FILL".into(), "x".repeat(INSTANCE_BUDGET - 200))];
    let per = instance_bytes("default", "fill", &spec);
    assert!(per <= INSTANCE_BUDGET);
    h.cluster.deploy("default", "fill", spec).unwrap();
    let w = &h.cluster.workloads["default/fill"];
    let placed = w.instances.iter().filter(|i| i.node.is_some()).count();
    assert_eq!(placed, NODE_SPEC_BUDGET / per, "as many as the spec budget holds, CPU and memory to spare");
    let pending = w.instances.iter().find(|i| i.node.is_none()).expect("the rest wait");
    assert_eq!(pending.reason.as_deref(), Some("0/1 nodes available: 1 insufficient spec room"));
    let mut specs = 0;
    while let Ok(p) = h.out.try_recv() {
        assert!(p.payload.len() <= edge_proto::MAX_PAYLOAD, "{} published {} bytes", p.topic, p.payload.len());
        if p.topic.ends_with("/spec") {
            specs += 1;
            assert!(edge_proto::decode(&p.payload).is_ok());
        }
    }
    assert!(specs > 0, "the spec went out");
    // A full pass from scratch books the same bytes and places nothing more.
    h.cluster.reconcile().unwrap();
    let w = &h.cluster.workloads["default/fill"];
    assert_eq!(w.instances.iter().filter(|i| i.node.is_some()).count(), placed);
}

#[test]
fn memory_no_node_has_is_accepted_and_waits() {
    let mut h = harness();
    h.node("n1");
    // More than n1 (4Gi) has: accepted, as Kubernetes accepts it; the replica waits Pending for a node.
    h.cluster.deploy("default", "big", h.spec(1, 8 << 30)).unwrap();
    let w = &h.cluster.workloads["default/big"];
    assert!(w.instances.iter().all(|i| i.node.is_none()), "placed on a node too small");
}

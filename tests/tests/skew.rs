//! Version skew end to end: a controller of protocol N serves agents of N and N − 1. A fake agent that speaks
//! only protocol 3 joins a current controller (embedded broker) beside a real, current agent; it is placed a
//! replica, is served its spec and its artifact in protocol 3, reports in protocol 3 and is acknowledged in
//! protocol 3, and the API shows its replica Running. (The v3 byte fixtures are pinned in `proto`.)

use std::collections::BTreeSet;
use std::time::Duration;

use edge_proto::{Channel, EventKind, Heartbeat, InstanceState, Message, ModuleReply, ModuleRequest};
use edge_tests::node::{event, heartbeat, status, FakeNode};
use edge_tests::{eventually, example, Fleet};
use serde_json::Value;

const V3: u16 = 3;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_protocol_3_agent_is_served_end_to_end_beside_a_current_one() {
    let mut fleet = Fleet::embedded_with(edge_tests::open).await;
    let (host, port) = fleet.broker_addr();
    let mut old = FakeNode::connect(&host, port, "old", V3).await;
    old.say_hello().await;
    old.set_heartbeat(heartbeat(0, 0, vec![])).await;
    fleet.start_agent("new");
    fleet.wait_ready_nodes(2).await;
    let api = fleet.api.clone();
    let nodes = api.get("/v1/nodes").await;
    let old_view = nodes.as_array().unwrap().iter().find(|n| n["name"] == "old").cloned().unwrap();
    assert_eq!((&old_view["status"], &old_view["agent_version"]), (&Value::from("Ready"), &Value::from("fake-old")));

    // One replica each (the scheduler spreads them): the v3 node is served its spec in protocol 3.
    let sha = api.upload(example("ticker.wasm")).await;
    api.deploy("tick", &sha, 2).await;
    let (version, spec) = old.spec_where(Duration::from_secs(30), |s| !s.instances.is_empty()).await;
    assert_eq!(version, V3, "the spec for a protocol 3 node is written in protocol 3");
    assert_eq!(spec.issuer, 0, "protocol 3 carries no issuer");
    assert_eq!(spec.instances.len(), 1, "{spec:?}");
    let instance = spec.instances[0].clone();
    assert_eq!((instance.workload.as_str(), hex(&instance.module)), ("tick", sha.clone()));

    // Its artifact, for the profile it announced, in protocol 3 chunks whose hash is announced in each.
    let request = ModuleRequest {
        module: instance.module,
        artifact: Some(old.engine()),
        offset: 0,
        max_len: edge_proto::MODULE_CHUNK,
    };
    old.send(Channel::ModuleRequest, &Message::ModuleRequest(request)).await;
    let (version, reply) =
        old.wait(Duration::from_secs(60), "the artifact's first chunk", |i| i.replies.first().cloned()).await;
    assert_eq!(version, V3);
    match reply {
        ModuleReply::Chunk(c) => {
            assert_eq!((c.module, c.artifact, c.offset), (instance.module, Some(old.engine()), 0));
            assert!(c.total > 0 && !c.data.is_empty(), "{} of {} bytes", c.data.len(), c.total);
        }
        other => panic!("artifact refused to a protocol 3 node: {other:?}"),
    }

    // It starts the instance and says so in protocol 3; the events are acknowledged in protocol 3.
    let started_at = edge_agent::clock::now_ms();
    old.events(vec![
        event(1, &instance.id, EventKind::Starting),
        event(2, &instance.id, EventKind::Started { started_at_ms: started_at }),
    ])
    .await;
    let (version, ack) = old
        .wait(Duration::from_secs(10), "events acknowledged up to 2", |i| {
            i.acks.iter().find(|(_, a)| a.up_to == 2).copied()
        })
        .await;
    assert_eq!((version, ack.store_id), (V3, 0), "a protocol 3 ack (no store id): {ack:?}");
    let mut running = status(&instance.id, InstanceState::Running);
    running.started_at_ms = Some(started_at);
    old.set_heartbeat(Heartbeat { last_event_seq: 2, ..heartbeat(0, spec.generation, vec![running]) }).await;

    // The API shows both replicas Running, one on each node, and the old node's events all counted.
    let workloads = eventually(Duration::from_secs(30), "both replicas Running", || {
        let api = api.clone();
        async move {
            let all = api.get("/v1/workloads").await;
            let instances = all.as_array()?.first()?["instances"].as_array()?.clone();
            let running = instances.iter().filter(|i| i["state"] == "Running").count();
            (running == 2).then_some(instances)
        }
    })
    .await;
    let on: BTreeSet<&str> = workloads.iter().filter_map(|i| i["node"].as_str()).collect();
    assert_eq!(on, BTreeSet::from(["new", "old"]));
    let mine = workloads.iter().find(|i| i["node"] == "old").unwrap();
    assert_eq!(mine["id"], instance.id.as_str());
    let detail = api.get("/v1/nodes/old").await;
    let e = &detail["events"];
    assert_eq!(
        (e["applied_up_to"].as_u64(), e["received"].as_u64(), e["duplicates"].as_u64(), e["missing"].as_u64()),
        (Some(2), Some(2), Some(0), Some(0)),
        "{detail}"
    );

    // A change reaches it in protocol 3 too: the workload deleted, its spec empties.
    let (status, _) = api.send(reqwest::Method::DELETE, "/v1/namespaces/default/workloads/tick", None, None).await;
    assert_eq!(status, 204);
    let (version, _) = old.spec_where(Duration::from_secs(30), |s| s.instances.is_empty()).await;
    assert_eq!(version, V3);
    let inbox = old.inbox();
    assert_eq!(inbox.undecodable, 0);
    let versions: BTreeSet<u16> = inbox
        .specs
        .iter()
        .map(|(v, _)| *v)
        .chain(inbox.acks.iter().map(|(v, _)| *v))
        .chain(inbox.replies.iter().map(|(v, _)| *v))
        .collect();
    assert_eq!(versions, BTreeSet::from([V3]), "everything the controller sent the v3 node was protocol 3");
    fleet.stop().await;
}

//! End-to-end tests: a real controller (redb store, embedded edge-broker or a real Mosquitto), real agents running
//! real wasmtime, talking over real MQTT on loopback. Every wait is bounded and fails loudly.

use std::collections::HashSet;
use std::time::Duration;

use edge_controller::BrokerMode;
use edge_tests::{eventually, example, Fleet, Mosquitto};
use reqwest::Method;
use serde_json::Value;

fn nodes_of(instances: &[Value]) -> HashSet<String> {
    instances.iter().map(|i| i["node"].as_str().unwrap_or_default().to_string()).collect()
}

/// Deploys ticker x2, checks placement on two nodes and logs from both, then deletes and checks both stop.
async fn deploy_logs_delete(fleet: &mut Fleet) {
    fleet.start_agent("node-a");
    fleet.start_agent("node-b");
    fleet.wait_ready_nodes(2).await;
    let api = fleet.api.clone();
    let sha = api.upload(example("ticker.wasm")).await;
    api.deploy("tick", &sha, 2).await;
    let running = api.wait_running("tick", 2).await;
    assert_eq!(nodes_of(&running), HashSet::from(["node-a".to_string(), "node-b".to_string()]));
    let ids: HashSet<String> = running.iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
    eventually(Duration::from_secs(20), "log lines from both instances", || {
        let (api, ids) = (api.clone(), ids.clone());
        async move {
            let lines = api.logs("tick").await;
            let from: HashSet<String> = lines.iter().map(|l| l["instance"].as_str().unwrap().to_string()).collect();
            assert!(lines.iter().all(|l| l["line"].as_str().unwrap().starts_with("tick ")), "{lines:?}");
            (from == ids).then_some(())
        }
    })
    .await;

    let (status, _) = api.send(Method::DELETE, "/v1/namespaces/default/workloads/tick", None, None).await;
    assert_eq!(status, 204);
    // The agents report the instances gone: nodes count zero instances again.
    eventually(Duration::from_secs(20), "both agents to report their instance stopped", || {
        let api = api.clone();
        async move {
            let nodes = api.get("/v1/nodes").await;
            nodes.as_array()?.iter().all(|n| n["instances"] == 0).then_some(())
        }
    })
    .await;
    let (status, v) = api.send(Method::GET, "/v1/namespaces/default/workloads/tick", None, None).await;
    assert_eq!(status, 404, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_over_the_embedded_broker() {
    let mut fleet = Fleet::embedded().await;
    deploy_logs_delete(&mut fleet).await;
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_over_mosquitto() {
    let mosquitto = Mosquitto::start();
    let mut fleet = Fleet::with_broker(BrokerMode::External { host: "127.0.0.1".into(), port: mosquitto.port }).await;
    deploy_logs_delete(&mut fleet).await;
    fleet.stop().await;
    drop(mosquitto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_modules_are_refused_and_nothing_is_stored() {
    let fleet = Fleet::embedded().await;
    let api = fleet.api.clone();
    let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let ticker = example("ticker.wasm");
    let truncated = ticker[..ticker.len() / 2].to_vec();
    for (what, bytes) in [("random bytes", random), ("a truncated module", truncated), ("an empty body", vec![])] {
        let (status, v) = api.send(Method::POST, "/v1/modules", Some(bytes.into()), None).await;
        assert_eq!(status, 400, "{what}: {v}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(msg.contains("WebAssembly") || msg.contains("empty"), "{what}: unclear message {msg:?}");
    }
    assert_eq!(api.get("/v1/modules").await, Value::Array(vec![]));
    // A deploy naming a module that was never stored is refused too, and leaves no workload behind.
    let body =
        serde_json::json!({"module": "00".repeat(32), "replicas": 1, "cpu_millis": 100, "memory_bytes": 1 << 20});
    let (status, v) = api.send(Method::PUT, "/v1/namespaces/default/workloads/bad", None, Some(body)).await;
    assert_eq!(status, 400, "{v}");
    let (status, _) = api.send(Method::PUT, "/v1/namespaces/default/workloads/bad", None, Some(Value::Null)).await;
    assert_eq!(status, 400);
    assert_eq!(api.get("/v1/workloads").await, Value::Array(vec![]));
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_the_controller_keeps_state_and_restarts_nothing() {
    // The broker runs on its own (as an external broker would), so the controller can stop and come back.
    let (_broker, port) = edge_tests::standalone_broker().await;
    let mut fleet = Fleet::with_broker(BrokerMode::External { host: "127.0.0.1".into(), port }).await;
    fleet.start_agent("node-a");
    fleet.start_agent("node-b");
    fleet.wait_ready_nodes(2).await;
    let sha = fleet.api.upload(example("ticker.wasm")).await;
    fleet.api.deploy("tick", &sha, 2).await;
    let before = fleet.api.wait_running("tick", 2).await;
    assert!(before.iter().all(|i| i["started_at"].is_string()), "{before:?}");

    fleet.restart_controller().await;
    fleet.wait_ready_nodes(2).await;
    let nodes = fleet.api.get("/v1/nodes").await;
    assert_eq!(nodes.as_array().unwrap().len(), 2, "nodes survive the restart: {nodes}");
    let after = fleet.api.wait_running("tick", 2).await;
    let key = |v: &[Value]| {
        let mut k: Vec<(String, String, u64, String)> = v
            .iter()
            .map(|i| {
                (
                    i["id"].as_str().unwrap().to_string(),
                    i["node"].as_str().unwrap().to_string(),
                    i["restarts"].as_u64().unwrap(),
                    i["started_at"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        k.sort();
        k
    };
    assert_eq!(key(&before), key(&after), "instances were restarted or moved by a controller restart");
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_on_the_wire_changes_nothing() {
    use edge_proto::{Channel, Message, NodeSpec, Topics};
    use rumqttc::{AsyncClient, MqttOptions, QoS};

    let mut fleet = Fleet::embedded_with(edge_tests::open).await;
    fleet.start_agent("node-a");
    fleet.wait_ready_nodes(1).await;
    let sha = fleet.api.upload(example("ticker.wasm")).await;
    fleet.api.deploy("tick", &sha, 1).await;
    let before = fleet.api.wait_running("tick", 1).await;

    // A hostile client on the same broker. It reads the node's retained spec first: a stale spec is one of the
    // controller's own issuer at a generation the node already has (another issuer's spec would be applied:
    // that is protocol 4's rule, tested in `hostile.rs`).
    let (host, port) = fleet.broker_addr();
    let mut observer = edge_tests::node::FakeNode::connect(&host, port, "node-a", edge_proto::PROTOCOL_VERSION).await;
    let (_, current) = observer.spec_where(Duration::from_secs(10), |s| !s.instances.is_empty()).await;
    let (client, mut eventloop) = AsyncClient::new(MqttOptions::new("intruder", host, port), 64);
    let poller = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let t = Topics::default();
    let stale = NodeSpec { issuer: current.issuer, generation: current.generation, instances: vec![] };
    let stale_spec = edge_proto::encode(&Message::Spec(stale));
    let wrong_kind = edge_proto::encode(&Message::Spec(NodeSpec { issuer: 1, generation: 99, instances: vec![] }));
    let mut future_version = wrong_kind.clone();
    future_version[0] = 9;
    let sends: Vec<(String, Vec<u8>)> = vec![
        (t.node("node-a", Channel::Spec), b"\xff\xfe garbage".to_vec()),
        (t.node("node-a", Channel::Spec), stale_spec),
        (t.node("node-a", Channel::Spec), future_version),
        (t.node("node-a", Channel::ModuleChunk), vec![1, 6, 0, 0, 0]),
        (t.node("evil", Channel::Hello), b"not postcard".to_vec()),
        (t.node("Bad Name", Channel::Heartbeat), wrong_kind.clone()),
        (t.node("node-a", Channel::Heartbeat), wrong_kind),
        (t.node("node-a", Channel::Events), vec![0xff; 1000]),
        (t.node("node-a", Channel::ModuleRequest), vec![1, 5]),
    ];
    for (topic, payload) in sends {
        client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
    }
    // Asserting that nothing happened needs a window: three heartbeat periods, far longer than delivery takes.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let nodes = fleet.api.get("/v1/nodes").await;
    let names: Vec<&str> = nodes.as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["node-a"], "garbage created no node");
    let after = fleet.api.wait_running("tick", 1).await;
    assert_eq!(before[0]["id"], after[0]["id"]);
    assert_eq!(before[0]["started_at"], after[0]["started_at"], "the instance was not restarted");
    assert_eq!(after[0]["restarts"], 0);
    // Everything still works: a new deploy runs.
    fleet.api.deploy("tock", &sha, 1).await;
    fleet.api.wait_running("tock", 1).await;
    poller.abort();
    drop(observer);
    fleet.stop().await;
}

/// A controller that hears a node's heartbeats but never got its Hello (a broker under load drops messages; here a
/// new controller with an empty store behind the same Mosquitto) asks for one, and the node becomes Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_hello_was_never_heard_is_asked_for_it() {
    let mosquitto = Mosquitto::start();
    let mut fleet = Fleet::with_broker(BrokerMode::External { host: "127.0.0.1".into(), port: mosquitto.port }).await;
    fleet.start_agent("n1");
    fleet.wait_ready_nodes(1).await;
    fleet.replace_controller("fresh").await;
    fleet.wait_ready_nodes(1).await;
    let nodes = fleet.api.get("/v1/nodes").await;
    assert_eq!(nodes[0]["name"], "n1");
    assert!(nodes[0]["capacity"]["cpu_millis"].as_u64().unwrap_or(0) > 0, "{nodes}");
    fleet.stop().await;
}

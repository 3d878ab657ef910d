//! Hostile but well-formed peers: valid protocol 4 envelopes carrying extreme values, against a real controller
//! (embedded broker) serving a real agent. Throughout, the API must answer within a second (a controller once
//! looped once per sequence number a heartbeat claimed), and afterwards its state must be what the honest
//! parties made it: the nodes that said hello and no others, no phantom instances, sane event counters, and
//! deploys still delivered.

use std::collections::BTreeSet;
use std::time::Duration;

use edge_proto::{Channel, EventKind, InstanceState, Message};
use edge_tests::hostile::{extreme_heartbeat, forged_spec, long_name, phantom_statuses, Stranger, Watchdog};
use edge_tests::node::{event, heartbeat, hello, status, FakeNode};
use edge_tests::{eventually, example, Api, Fleet};
use serde_json::{json, Value};

const V4: u16 = edge_proto::PROTOCOL_VERSION;

/// The API's answers must come within this, while and after the peers do their worst.
const PROMPT: Duration = Duration::from_secs(1);

async fn node_names(api: &Api) -> BTreeSet<String> {
    let nodes = api.get("/v1/nodes").await;
    nodes.as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap().to_string()).collect()
}

async fn node(api: &Api, name: &str) -> Value {
    let nodes = api.get("/v1/nodes").await;
    nodes.as_array().unwrap().iter().find(|n| n["name"] == name).cloned().unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn extreme_but_well_formed_input_leaves_the_controller_responsive_and_correct() {
    let mut fleet = Fleet::embedded_with(edge_tests::open).await;
    let (host, port) = fleet.broker_addr();
    let real_labels = |c: &mut edge_agent::AgentConfig| c.labels.push(("role".into(), "real".into()));
    fleet.start_agent_with("real", &host, port, real_labels);
    fleet.wait_ready_nodes(1).await;
    let api = fleet.api.clone();
    let sha = api.upload(example("ticker.wasm")).await;
    // Fake nodes are nodes too: keep the workloads on the real one.
    let on_real = json!({"selector": {"role": "real"}});
    api.deploy_with("tick", &sha, 1, on_real.clone()).await;
    let tick = api.wait_running("tick", 1).await;
    let tick_id = tick[0]["id"].as_str().unwrap().to_string();
    let watchdog = Watchdog::start(api.clone(), "/v1/nodes");

    // Counters at the end of their range, from a node whose hello claims generation u64::MAX.
    let greedy = FakeNode::connect(&host, port, "greedy", V4).await;
    {
        let mut h = greedy.hello_mut();
        h.applied_generation = u64::MAX;
        h.store_id = 7;
    }
    greedy.say_hello().await;
    greedy.set_heartbeat(extreme_heartbeat(7)).await;

    // 10,000 statuses of instances nobody placed (a claim on another node's instance is tested below).
    let many = FakeNode::connect(&host, port, "many", V4).await;
    many.hello_mut().applied_generation = u64::MAX - 1;
    many.say_hello().await;
    many.set_heartbeat(heartbeat(1, u64::MAX - 1, phantom_statuses(10_000))).await;

    // Events about instances that do not exist, then one numbered u64::MAX.
    let mut liar = FakeNode::connect(&host, port, "liar", V4).await;
    liar.hello_mut().store_id = 9;
    liar.say_hello().await;
    liar.set_heartbeat(heartbeat(9, 0, vec![])).await;
    let a = api.clone();
    eventually(Duration::from_secs(10), "the liar's hello", || {
        let a = a.clone();
        async move { node_names(&a).await.contains("liar").then_some(()) }
    })
    .await;
    liar.events(vec![
        event(1, "nope-1", EventKind::Started { started_at_ms: 1 }),
        event(2, "nope-2", EventKind::Exited { code: 1 }),
        event(3, "nope-1", EventKind::Stopped),
    ])
    .await;
    liar.wait(Duration::from_secs(10), "events of nothing acknowledged", |i| (i.acked(9) == Some(3)).then_some(()))
        .await;
    liar.events(vec![event(u64::MAX, "nope-3", EventKind::Failed { reason: "x".repeat(1000) })]).await;
    let acks = liar
        .wait(Duration::from_secs(10), "an ack after event u64::MAX", |i| (i.acks.len() >= 2).then(|| i.acks.clone()))
        .await;
    assert!(acks.iter().all(|(_, a)| a.store_id == 9 && a.up_to == 3), "the watermark jumped: {acks:?}");

    // Names no node may have (the empty one is not even a topic of the tree), valid messages otherwise.
    let stranger = Stranger::connect(&host, port, "stranger").await;
    let rejected = api.get("/v1/stats").await["rejected"].as_u64().unwrap();
    let names = [String::new(), long_name(253), long_name(64), "Bad.Name".to_string()];
    for name in &names {
        let h = Message::Hello(hello(name, 3));
        stranger.publish_as(name, Channel::Hello, &h, V4, false).await;
        let hb = Message::Heartbeat(heartbeat(3, 0, vec![status(&tick_id, InstanceState::Running)]));
        stranger.publish_as(name, Channel::Heartbeat, &hb, V4, false).await;
    }
    let a = api.clone();
    eventually(Duration::from_secs(10), "the messages from invalid names rejected", || {
        let a = a.clone();
        async move { (a.get("/v1/stats").await["rejected"].as_u64()? >= rejected + 6).then_some(()) }
    })
    .await;

    // A heartbeat from a node that never said hello (and does not answer when asked).
    let mut ghost = FakeNode::connect(&host, port, "ghost", V4).await;
    ghost.answer_hello_requests(false);
    ghost.set_heartbeat(heartbeat(5, u64::MAX, vec![status(&tick_id, InstanceState::Running)])).await;
    ghost.wait(Duration::from_secs(10), "a HelloRequest to the ghost", |i| (i.hello_requests > 0).then_some(())).await;

    // The state: the four nodes that said hello, all Ready; counters sane; no instance but the real one.
    let want: BTreeSet<String> = ["greedy", "liar", "many", "real"].map(String::from).into();
    let a = api.clone();
    let w = want.clone();
    eventually(Duration::from_secs(10), "the four nodes Ready", || {
        let (a, w) = (a.clone(), w.clone());
        async move {
            let nodes = a.get("/v1/nodes").await;
            let ready: BTreeSet<String> = nodes
                .as_array()?
                .iter()
                .filter(|n| n["status"] == "Ready")
                .map(|n| n["name"].as_str().unwrap_or_default().to_string())
                .collect();
            (ready == w).then_some(())
        }
    })
    .await;
    assert_eq!(node_names(&api).await, want, "a node from an invalid name or without a hello");
    let g = api.get("/v1/nodes/greedy").await;
    let e = &g["events"];
    let (applied, last, missing) =
        (e["applied_up_to"].as_u64().unwrap(), e["agent_last_seq"].as_u64().unwrap(), e["missing"].as_u64().unwrap());
    assert!(applied <= last && missing <= last, "greedy's event counters: {g}");
    assert_eq!(e["received"], 0, "{g}");
    for n in ["greedy", "many"] {
        let v = node(&api, n).await;
        let spec_generation = v["spec_generation"].as_u64().unwrap();
        assert!(spec_generation < 1_000, "{n}: a wire generation adopted: {v}");
        assert_eq!(v["instances"], 0, "{n}: phantom instances: {v}");
    }
    let l = api.get("/v1/nodes/liar").await;
    assert_eq!((l["events"]["applied_up_to"].as_u64(), l["node"]["instances"].as_u64()), (Some(3), Some(0)), "{l}");
    assert!(l["events"]["received"].as_u64().unwrap() >= 4, "{l}");
    let stats = api.get("/v1/stats").await;
    assert_eq!((stats["workloads"].as_u64(), stats["instances"].as_u64()), (Some(1), Some(1)), "{stats}");
    let after = api.wait_running("tick", 1).await;
    assert_eq!((&after[0]["id"], &after[0]["node"]), (&tick[0]["id"], &json!("real")));
    assert_eq!(after[0]["started_at"], tick[0]["started_at"], "the real instance was disturbed");

    // A stranger's spec with generation u64::MAX on the real node's topic, retained (so the broker also hands it
    // to the node at its next connection): the joined agent refuses it, unsigned, and says so; nothing stops.
    stranger.publish_as("real", Channel::Spec, &Message::Spec(forged_spec()), V4, true).await;
    let a = api.clone();
    eventually(Duration::from_secs(20), "the real node refusing the forged spec", || {
        let a = a.clone();
        async move {
            let d = a.get("/v1/nodes/real").await;
            let recent = d["events"]["recent"].as_array()?.clone();
            recent.iter().any(|l| l.as_str().is_some_and(|l| l.contains("not signed"))).then_some(())
        }
    })
    .await;
    let still = api.wait_running("tick", 1).await;
    assert_eq!(still[0]["started_at"], tick[0]["started_at"], "the forged spec disturbed the replica");
    // The agent restarts: the forged retained spec comes first and is refused again; the controller's own spec
    // (it publishes again on the hello) is what runs, and the replica is back on its node.
    fleet.stop_agent("real").await;
    fleet.start_agent_with("real", &host, port, real_labels);
    let a = api.clone();
    let back = eventually(Duration::from_secs(30), "the replica Running on the real node again", || {
        let a = a.clone();
        async move {
            let n = node(&a, "real").await;
            let w = a.workload("tick").await;
            let i = w["instances"].as_array()?.first()?.clone();
            let ours = n["generation"] == n["spec_generation"];
            (ours && i["state"] == "Running" && i["node"] == "real").then_some(n)
        }
    })
    .await;
    let generation = back["spec_generation"].as_u64().unwrap();
    assert!((1..1_000).contains(&generation), "the controller's generation is its own: {back}");

    // Deploys are still delivered.
    api.deploy_with("tock", &sha, 1, on_real).await;
    api.wait_running("tock", 1).await;
    assert_eq!(node_names(&api).await, want);
    let stats = api.get("/v1/stats").await;
    assert_eq!((stats["workloads"].as_u64(), stats["instances"].as_u64()), (Some(2), Some(2)), "{stats}");
    let slowest = watchdog.finish(PROMPT).await;
    eprintln!("slowest GET /v1/nodes while under hostile input: {slowest:?}");
    drop((greedy, many, liar, ghost, stranger));
    fleet.stop().await;
}

/// A node that reports another node's instance (here as Failed) changes nothing: the instance is the other
/// node's, and the claimer runs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_claiming_another_nodes_instance_changes_nothing() {
    let mut fleet = Fleet::embedded_with(edge_tests::open).await;
    let (host, port) = fleet.broker_addr();
    fleet.start_agent_with("real", &host, port, |c| c.labels.push(("role".into(), "real".into())));
    fleet.wait_ready_nodes(1).await;
    let api = fleet.api.clone();
    let sha = api.upload(example("ticker.wasm")).await;
    api.deploy_with("tick", &sha, 1, json!({"selector": {"role": "real"}})).await;
    let tick = api.wait_running("tick", 1).await;
    let tick_id = tick[0]["id"].as_str().unwrap().to_string();

    let claimer = FakeNode::connect(&host, port, "claimer", V4).await;
    claimer.say_hello().await;
    let mut failed = status(&tick_id, InstanceState::Failed);
    failed.reason = Some("claimed".into());
    claimer.set_heartbeat(heartbeat(1, 1, vec![failed])).await;
    fleet.wait_ready_nodes(2).await;
    // Heartbeats of one client arrive in order: three more handled means the claim was.
    let before = api.get("/v1/stats").await["heartbeats"].as_u64().unwrap();
    let a = api.clone();
    eventually(Duration::from_secs(10), "the claims handled", || {
        let a = a.clone();
        async move { (a.get("/v1/stats").await["heartbeats"].as_u64()? >= before + 6).then_some(()) }
    })
    .await;
    let c = node(&api, "claimer").await;
    assert_eq!(c["instances"], 0, "the claimer counts another node's instance: {c}");
    let detail = api.get("/v1/nodes/claimer").await;
    assert_eq!(detail["instances"], json!([]), "{detail}");
    let w = api.workload("tick").await;
    let i = &w["instances"][0];
    assert_eq!(
        (&i["node"], &i["state"], &i["started_at"]),
        (&json!("real"), &json!("Running"), &tick[0]["started_at"])
    );
    drop(claimer);
    fleet.stop().await;
}

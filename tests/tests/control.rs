//! Control-plane behaviour end to end: cordon, drain, selectors and labels, Pending replicas placed when a node
//! joins, and `stay` workloads that wait for their node. Real controller, agents, broker and wasmtime.

use std::collections::BTreeSet;
use std::time::Duration;

use edge_tests::{eventually, example, Api, Fleet};
use reqwest::Method;
use serde_json::{json, Value};

fn nodes_of(w: &Value) -> BTreeSet<String> {
    w["instances"].as_array().unwrap().iter().filter_map(|i| i["node"].as_str().map(str::to_string)).collect()
}

async fn wait_nodes(api: &Api, name: &str, want: &[&str]) -> Value {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    let api = api.clone();
    eventually(Duration::from_secs(30), &format!("{name} Running on {want:?}"), || {
        let (api, want) = (api.clone(), want.clone());
        async move {
            let w = api.workload(name).await;
            let running = w["instances"].as_array()?.iter().all(|i| i["state"] == "Running");
            (running && nodes_of(&w) == want).then_some(w)
        }
    })
    .await
}

async fn fleet(nodes: &[&str], tune: impl Fn(&mut edge_controller::ControllerConfig)) -> Fleet {
    let mut f = Fleet::embedded_with(tune).await;
    for n in nodes {
        f.start_agent(n);
    }
    f.wait_ready_nodes(nodes.len()).await;
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cordon_keeps_new_replicas_off_and_drain_moves_them_away() {
    let f = fleet(&["a", "b", "c"], |_| {}).await;
    let api = f.api.clone();
    let sha = api.upload(example("ticker.wasm")).await;
    api.node_op("a", "cordon").await;
    let nodes = api.get("/v1/nodes").await;
    assert_eq!(nodes[0]["cordoned"], true, "{nodes}");
    api.deploy("tick", &sha, 2).await;
    wait_nodes(&api, "tick", &["b", "c"]).await;
    api.node_op("a", "uncordon").await;
    api.node_op("b", "drain").await;
    wait_nodes(&api, "tick", &["a", "c"]).await;
    // The drained node stopped its copy and stays cordoned.
    eventually(Duration::from_secs(20), "b to run nothing", || {
        let api = api.clone();
        async move {
            let b = api.get("/v1/nodes/b").await;
            (b["node"]["instances"] == 0 && b["node"]["cordoned"] == true).then_some(())
        }
    })
    .await;
    let (status, v) = api.send(Method::POST, "/v1/nodes/nope/cordon", None, None).await;
    assert_eq!((status, v["error"].as_str()), (404, Some("node nope not found")));
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn selectors_wait_for_a_matching_label() {
    let f = fleet(&["a", "b"], |_| {}).await;
    let api = f.api.clone();
    let sha = api.upload(example("ticker.wasm")).await;
    api.deploy_with("tick", &sha, 1, json!({"selector": {"board": "rpi-9"}})).await;
    let w = api.workload("tick").await;
    assert_eq!(w["instances"][0]["state"], "Pending");
    assert_eq!(w["instances"][0]["reason"], "0/2 nodes available: 2 didn't match node selector");
    let (status, v) = api.send(Method::PUT, "/v1/nodes/b/labels", None, Some(json!({"set": {"board": "rpi-9"}}))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["labels"]["board"], "rpi-9");
    wait_nodes(&api, "tick", &["b"]).await;
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pending_replica_is_placed_when_a_node_with_room_joins() {
    let mut f = fleet(&["small"], |_| {}).await;
    let api = f.api.clone();
    let sha = api.upload(example("ticker.wasm")).await;
    let body = json!({"module": sha, "replicas": 1, "cpu_millis": 100, "memory_bytes": 100u64 << 30});
    let (status, w) = api.send(Method::PUT, "/v1/namespaces/default/workloads/big", None, Some(body)).await;
    assert_eq!(status, 200, "{w}");
    assert_eq!(w["instances"][0]["reason"], "0/1 nodes available: 1 insufficient memory");
    let (host, port) = f.broker_addr();
    f.start_agent_with("large", &host, port, |c| c.memory_bytes = Some(200 << 30));
    wait_nodes(&api, "big", &["large"]).await;
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stay_workload_waits_for_its_node_and_a_reschedule_one_moves() {
    let mut f = fleet(&["a", "b"], |c| {
        c.node_timeout = Duration::from_secs(1);
        c.reschedule_after = Duration::from_secs(1);
    })
    .await;
    let api = f.api.clone();
    let sha = api.upload(example("ticker.wasm")).await;
    api.node_op("b", "cordon").await;
    api.deploy_with("keep", &sha, 1, json!({"on_node_loss": "stay"})).await;
    api.deploy("move", &sha, 1).await;
    wait_nodes(&api, "keep", &["a"]).await;
    wait_nodes(&api, "move", &["a"]).await;
    api.node_op("b", "uncordon").await;
    f.stop_agent("a").await;
    // `move` goes to b; `keep` stays bound to a, Unknown, with no replacement.
    wait_nodes(&api, "move", &["b"]).await;
    let keep = api.workload("keep").await;
    assert_eq!(keep["instances"].as_array().unwrap().len(), 1, "{keep}");
    assert_eq!((&keep["instances"][0]["node"], &keep["instances"][0]["state"]), (&json!("a"), &json!("Unknown")));
    let (host, port) = f.broker_addr();
    f.start_agent_with("a", &host, port, |_| {});
    wait_nodes(&api, "keep", &["a"]).await;
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deploy_over_its_namespace_quota_is_refused_whole() {
    let f = fleet(&["a"], |_| {}).await;
    let api = f.api.clone();
    let sha = api.upload(example("ticker.wasm")).await;
    let put = |path: String, body: Value| {
        let api = api.clone();
        async move { api.send(Method::PUT, &path, None, Some(body)).await }
    };
    let deploy = |ns: &'static str, name: &'static str, replicas: u32| {
        let body = json!({"module": sha, "replicas": replicas, "cpu_millis": 100, "memory_bytes": 32u64 << 20});
        put(format!("/v1/namespaces/{ns}/workloads/{name}"), body)
    };
    let (status, v) = deploy("team-a", "tick", 1).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("namespace team-a not found (create it with: edgectl create namespace team-a)"))
    );
    let quota = json!({"quota": {"memory_bytes": 64u64 << 20, "instances": 3}});
    let (status, v) = put("/v1/namespaces/team-a".into(), quota).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(deploy("team-a", "tick", 2).await.0, 200);
    let (status, v) = deploy("team-a", "more", 1).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(
        v["error"],
        "deploying more would exceed the quota of namespace team-a: memory: 96Mi requested in total, quota 64Mi"
    );
    // Refused whole: nothing of `more` exists; scaling `tick` within the quota still works.
    assert_eq!(api.send(Method::GET, "/v1/namespaces/team-a/workloads/more", None, None).await.0, 404);
    assert_eq!(deploy("team-a", "tick", 1).await.0, 200);
    let namespaces = api.get("/v1/namespaces").await;
    let team = namespaces.as_array().unwrap().iter().find(|n| n["name"] == "team-a").unwrap().clone();
    assert_eq!((team["used"]["instances"].as_u64(), team["workloads"].as_u64()), (Some(1), Some(1)));
    f.stop().await;
}

/// Rolls `tick` from env V=1 to V=2 one replica at a time, undoes it, then rolls out a crash-looping module,
/// which halts with the old instances serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollouts_go_one_at_a_time_undo_and_halt_on_a_crash_loop() {
    let f = fleet(&["a", "b"], |c| c.min_ready = Duration::from_millis(500)).await;
    let api = f.api.clone();
    let tick = api.upload(example("ticker.wasm")).await;
    let hello = api.upload(example("hello.wasm")).await;
    let v = |n: u32| json!({"env": [["V", n.to_string()]]});
    api.deploy_with("tick", &tick, 2, v(1)).await;
    api.wait_running("tick", 2).await;
    api.deploy_with("tick", &tick, 2, v(2)).await;
    let rolled = |rev: u64| {
        let api = api.clone();
        async move {
            eventually(Duration::from_secs(60), &format!("rollout to revision {rev}"), || {
                let api = api.clone();
                async move {
                    let w = api.workload("tick").await;
                    let instances = w["instances"].as_array()?.clone();
                    let running = instances.iter().filter(|i| i["state"] == "Running").count();
                    // Surge 1, unavailable 0, at every observation.
                    assert!(instances.len() <= 3, "more than replicas + 1 instances: {w}");
                    assert!(running >= 2 || w["rollout"]["old"] == 0, "fewer than 2 serving mid-rollout: {w}");
                    (w["revision"] == rev && w["rollout"]["state"] == "complete" && running == 2).then_some(w)
                }
            })
            .await
        }
    };
    let w = rolled(2).await;
    // The replaced revision's instances are gone from the workload, but their Stopped events are still described.
    let api2 = api.clone();
    eventually(Duration::from_secs(30), "Stopped events of revision 1 in describe", || {
        let api = api2.clone();
        async move {
            let events = api.get("/v1/namespaces/default/workloads/tick/events").await;
            let text = events.to_string();
            (text.matches("Stopped").count() >= 2).then_some(())
        }
    })
    .await;
    // And no event was taken for lost on the way (a heartbeat once raced the events of the same input).
    for node in ["a", "b"] {
        let d = api.get(&format!("/v1/nodes/{node}")).await;
        assert_eq!(d["events"]["missing"], 0, "{d}");
    }
    let revisions: Vec<u64> =
        w["revisions"].as_array().unwrap().iter().map(|r| r["revision"].as_u64().unwrap()).collect();
    assert_eq!(revisions, [1, 2]);
    let (status, w) = api.send(Method::POST, "/v1/namespaces/default/workloads/tick/undo", None, None).await;
    assert_eq!(status, 200, "{w}");
    let w = rolled(3).await;
    assert_eq!(w["env"], json!([["V", "1"]]), "undo restores revision 1's template");

    let before: BTreeSet<String> =
        w["instances"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
    api.deploy_with("tick", &hello, 2, v(1)).await;
    let w = eventually(Duration::from_secs(60), "the crash-looping revision to halt", || {
        let api = api.clone();
        async move {
            let w = api.workload("tick").await;
            (w["rollout"]["state"] == "halted").then_some(w)
        }
    })
    .await;
    assert!(w["rollout"]["reason"].as_str().unwrap().contains("is failing"), "{w}");
    let serving: BTreeSet<String> = w["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["state"] == "Running")
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(serving, before, "the old instances keep serving: {w}");
    f.stop().await;
}

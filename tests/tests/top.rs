//! `edgectl top`'s data end to end: a real controller and a joined agent running real wasmtime; the agent
//! reports its instances' usage (tagged, on the heartbeat channel) at its heartbeat's refresh cadence (500 ms in
//! test fleets), and `GET /v1/top/instances` and `GET /v1/top/nodes` show it.

use std::time::Duration;

use edge_tests::{eventually, example, Fleet};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spinning_guest_shows_cpu_and_memory_in_top() {
    let mut fleet = Fleet::embedded().await;
    fleet.start_agent("node-a");
    fleet.wait_ready_nodes(1).await;
    let api = fleet.api.clone();
    // No usage before anything runs: an idle Ready node uses nothing, and no instance has a report.
    let nodes = api.get("/v1/top/nodes").await;
    assert_eq!(nodes[0]["usage"], json!({"cpu_millis": 0, "memory_bytes": 0}), "{nodes}");
    assert_eq!(api.get("/v1/top/instances").await, json!([]));

    let spin = api.upload(example("spin.wasm")).await;
    // Held to 300m so the test machine keeps its cores; the report must still see it busy.
    api.deploy_with("spin", &spin, 1, json!({"cpu_limit_millis": 300})).await;
    let running = api.wait_running("spin", 1).await;
    let id = running[0]["id"].as_str().unwrap().to_string();

    let usage: Value = eventually(Duration::from_secs(30), "a usage report with the spinning guest busy", || {
        let (api, id) = (api.clone(), id.clone());
        async move {
            let top = api.get("/v1/top/instances?namespace=default").await;
            let mine = top.as_array()?.iter().find(|i| i["id"] == id.as_str())?.clone();
            (mine["usage"]["cpu_millis"].as_u64()? > 50).then_some(mine)
        }
    })
    .await;
    assert_eq!((usage["namespace"].as_str(), usage["workload"].as_str()), (Some("default"), Some("spin")));
    assert_eq!(usage["node"], "node-a");
    let cpu = usage["usage"]["cpu_millis"].as_u64().unwrap();
    assert!(cpu <= 600, "held to 300m, reported {cpu}m: {usage}");
    assert!(usage["usage"]["memory_bytes"].as_u64().unwrap() > 0, "{usage}");
    assert!(usage["window_ms"].as_u64().unwrap() > 0, "{usage}");

    // The node's total is the sum over its instances, against its allocatable.
    let nodes = api.get("/v1/top/nodes").await;
    let node = &nodes.as_array().unwrap()[0];
    assert_eq!(node["name"], "node-a");
    assert!(node["usage"]["cpu_millis"].as_u64().unwrap() > 0, "{node}");
    assert!(node["usage"]["memory_bytes"].as_u64().unwrap() > 0, "{node}");
    assert!(node["allocatable"]["cpu_millis"].as_u64().unwrap() > 0, "{node}");
    assert!(node["timestamp"].is_string(), "{node}");

    // Scoped like `get`: another namespace has none of it; one that does not exist is an error.
    let (status, v) = api.send(Method::PUT, "/v1/namespaces/other", None, Some(json!({}))).await;
    assert!(status == 200 || status == 201, "namespace refused: {status} {v}");
    assert_eq!(api.get("/v1/top/instances?namespace=other").await, json!([]));
    let (status, v) = api.send(Method::GET, "/v1/top/instances?namespace=nope", None, None).await;
    assert_eq!(status, 404, "{v}");
    fleet.stop().await;
}

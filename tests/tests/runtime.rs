//! The WebAssembly runtime end to end: artifacts precompiled by the controller per engine profile (Pulley
//! included), limits holding against hostile guests on a live node, and bad artifacts refused with a clear event.

use std::collections::HashMap;
use std::time::Duration;

use edge_proto::{EngineTarget, EventKind, InstanceSpec, NodeSpec, RestartPolicy};
use edge_tests::proc::{agent_args, binary, Proc};
use edge_tests::scenario::instance;
use edge_tests::wire::{Peer, Serve, PEER_ISSUER};
use edge_tests::{eventually, example, Fleet, Mosquitto};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pulley_agent_runs_ticker_from_an_artifact_the_controller_precompiled() {
    let mut fleet = Fleet::embedded().await;
    let (host, port) = fleet.broker_addr();
    fleet.start_agent_with("p1", &host, port, |c| c.engine = Some(EngineTarget::Pulley64));
    fleet.wait_ready_nodes(1).await;
    let nodes = fleet.api.get("/v1/nodes").await;
    assert_eq!(nodes[0]["engine"], "pulley64", "{nodes}");
    let sha = fleet.api.upload(example("ticker.wasm")).await;
    fleet.api.deploy("tick", &sha, 1).await;
    fleet.api.wait_running("tick", 1).await;
    let api = fleet.api.clone();
    eventually(Duration::from_secs(30), "a tick logged by the Pulley agent", || {
        let api = api.clone();
        async move {
            api.logs("tick")
                .await
                .iter()
                .any(|l| l["line"].as_str().is_some_and(|s| s.starts_with("tick")))
                .then_some(())
        }
    })
    .await;
    let module = fleet.api.get(&format!("/v1/modules/{sha}")).await;
    let artifacts = module["artifacts"].as_array().cloned().unwrap_or_default();
    let pulley: Vec<&Value> = artifacts.iter().filter(|a| a["target"] == "pulley64").collect();
    assert_eq!(pulley.len(), 1, "{module}");
    assert!(pulley[0]["size"].as_u64().unwrap() > 0 && pulley[0]["sha256"].as_str().unwrap().len() == 64);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_guests_end_with_their_reason_and_the_node_keeps_serving() {
    let mut fleet = Fleet::embedded().await;
    fleet.start_agent("n1");
    fleet.wait_ready_nodes(1).await;
    let tick = fleet.api.upload(example("ticker.wasm")).await;
    fleet.api.deploy("tick", &tick, 1).await;
    fleet.api.wait_running("tick", 1).await;

    // A memory bomb under a 16Mi limit: the reason says so, and nothing else on the node is disturbed.
    let bomb = fleet.api.upload(example("membomb.wasm")).await;
    fleet.api.deploy_with("bomb", &bomb, 1, json!({"memory_bytes": 16u64 << 20, "restart": "never"})).await;
    let api = fleet.api.clone();
    let reason = eventually(Duration::from_secs(30), "the bomb Failed", || {
        let api = api.clone();
        async move { failed_reason(&api.workload("bomb").await) }
    })
    .await;
    assert!(reason.starts_with("memory limit exceeded (limit 16Mi)"), "{reason}");

    // A busy loop under a CPU limit runs (throttled) beside the ticker.
    let spin = fleet.api.upload(example("spin.wasm")).await;
    fleet.api.deploy_with("spin", &spin, 1, json!({"cpu_limit_millis": 200})).await;
    fleet.api.wait_running("spin", 1).await;
    let before = fleet.api.logs("tick").await.len();
    let api = fleet.api.clone();
    eventually(Duration::from_secs(10), "two more ticks beside the spinning guest", || {
        let api = api.clone();
        async move { (api.logs("tick").await.len() >= before + 2).then_some(()) }
    })
    .await;

    // A run-to-completion workload past its timeout.
    fleet.api.deploy_with("late", &spin, 1, json!({"timeout_ms": 300, "restart": "never"})).await;
    let api = fleet.api.clone();
    let reason = eventually(Duration::from_secs(30), "the late run Failed", || {
        let api = api.clone();
        async move { failed_reason(&api.workload("late").await) }
    })
    .await;
    assert!(reason.contains("timeout of 300ms"), "{reason}");
    assert_eq!(fleet.api.workload("tick").await["instances"][0]["state"], "Running");
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_module_importing_what_the_runtime_lacks_is_refused_at_upload_naming_it() {
    let fleet = Fleet::embedded().await;
    let wasm = wat::parse_str(
        r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "gpio_write" (func (param i32)))
            (import "env" "sensor" (func (result i32)))
            (memory (export "memory") 1)
            (func (export "_start")))"#,
    )
    .unwrap();
    let (status, body) = fleet.api.send(reqwest::Method::POST, "/v1/modules", Some(wasm.into()), None).await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("wasi_snapshot_preview1::gpio_write") && error.contains("env::sensor"), "{error}");
    assert!(!error.contains("fd_write"), "{error}");
    assert_eq!(fleet.api.get("/v1/modules").await, json!([]));
    fleet.stop().await;
}

/// The reason of the workload's first instance once it is Failed.
fn failed_reason(workload: &Value) -> Option<String> {
    let i = &workload["instances"][0];
    (i["state"] == "Failed").then(|| i["reason"].as_str().unwrap_or_default().to_string())
}

/// Each kind of bad artifact ends in a Failed event naming the problem, and the agent lives on to run a good one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_artifacts_are_refused_with_a_clear_event_and_no_crash() {
    let cases = [
        (Serve::WrongHash, "sha256 check"),
        (Serve::Truncated, "precompiled code is corrupt or incomplete"),
        (Serve::WrongTarget, "compiled for architecture"),
        (Serve::OtherProfile, "artifact download refused: built for"),
    ];
    let ticker = example("ticker.wasm");
    let sha: [u8; 32] = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&ticker)).into();
    for (serve, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mosquitto = Mosquitto::start();
        let mut peer =
            Peer::connect_serving(mosquitto.port, "bad", HashMap::from([(sha, ticker.clone())]), serve).await;
        let args = agent_args("bad", mosquitto.port, &dir.path().join("agent"), &[]);
        let mut agent = Proc::spawn("agent", &binary("edge-agent"), &args, dir.path());
        let spec = NodeSpec {
            issuer: PEER_ISSUER,
            generation: 1,
            instances: vec![InstanceSpec {
                restart: RestartPolicy::Never,
                ..instance("t-1".into(), sha, ticker.len() as u64)
            }],
        };
        peer.publish_spec(&spec, true).await;
        let event = peer
            .event_where(Duration::from_secs(60), |e| match &e.kind {
                EventKind::Failed { reason } => reason.contains(want),
                _ => false,
            })
            .await;
        assert_eq!(event.instance, "t-1", "{serve:?}");
        // Still alive and reporting.
        let since = edge_agent::clock::now_ms();
        peer.heartbeat_where(Duration::from_secs(10), |h| h.at_ms >= since).await;
        assert!(agent.is_running(), "{serve:?}: the agent died");
        let current = std::collections::BTreeSet::from([edge_proto::PROTOCOL_VERSION]);
        assert_eq!(peer.versions_seen(), current, "a current agent writes the current protocol");
        drop(peer);
        agent.kill9();
    }
}

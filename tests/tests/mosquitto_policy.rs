//! The broker policy on Mosquitto: a real Mosquitto 2.x runs on the files the controller keeps
//! (`--mosquitto-dir`: password file, ACL file, `edge.conf`) and reloads them on the controller's SIGHUP
//! (`--mosquitto-pid`). The shared suite ([`edge_tests::policy`], also run against the embedded broker in
//! `trust.rs`) checks the same policy, with the differences it names; then a node joins with a token through
//! Mosquitto and runs a workload.

use std::path::PathBuf;
use std::time::Duration;

use edge_controller::BrokerMode;
use edge_tests::policy::{self, Broker};
use edge_tests::{eventually, example, Fleet, Mosquitto};
use serde_json::json;

/// A controller keeping Mosquitto's files, and that Mosquitto, its link up.
async fn mosquitto_fleet() -> (Fleet, Mosquitto, u16) {
    mosquitto_fleet_with(None).await
}

/// [`mosquitto_fleet`], with a TLS listener on `tls_port` too (`--mosquitto-tls-port`).
async fn mosquitto_fleet_with(tls_port: Option<u16>) -> (Fleet, Mosquitto, u16) {
    let port = edge_tests::ports::free_port();
    let files = tempfile::tempdir().expect("tempdir");
    let (dir, pid): (PathBuf, PathBuf) = (files.path().join("mosquitto"), files.path().join("mosquitto.pid"));
    let fleet = Fleet::configured(BrokerMode::External { host: "127.0.0.1".into(), port }, |c| {
        c.require_join = true;
        c.mosquitto_dir = Some(dir.clone());
        c.mosquitto_pid = Some(pid.clone());
        c.mosquitto_tls_port = tls_port;
    })
    .await;
    // The files exist once the controller started; Mosquitto reads them at its start.
    let mosquitto = Mosquitto::start_edge(port, &dir, &pid).unwrap_or_else(|e| panic!("{e}"));
    std::mem::forget(files); // Mosquitto reads them until it is killed; the OS temp dir is cleaned anyway.
    let api = fleet.api.clone();
    eventually(Duration::from_secs(20), "the controller's link to Mosquitto", || {
        let api = api.clone();
        async move { api.try_get("/healthz").await.map(|_| ()) }
    })
    .await;
    (fleet, mosquitto, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_only_each_on_its_own_topics_and_a_deleted_node_is_cut_off() {
    let (fleet, mosquitto, port) = mosquitto_fleet().await;
    policy::members_only_each_on_its_own_topics(&fleet, port, Broker::Mosquitto).await;
    // The controller's SIGHUPs reached it (each token, join and deletion reloads the files).
    assert!(mosquitto.output().contains("Reloading config"), "{}", mosquitto.output());
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_wrong_node_and_deleted_tokens_are_refused_by_name() {
    let (fleet, _mosquitto, port) = mosquitto_fleet().await;
    policy::spent_tokens_are_refused_by_name(&fleet, port, Broker::Mosquitto).await;
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_through_mosquitto_and_runs_a_workload() {
    let (mut fleet, _mosquitto, port) = mosquitto_fleet().await;
    let token = policy::create_token(&fleet, json!({})).await.to_string();
    fleet.start_agent_with("pi-1", "127.0.0.1", port, |c| c.join = Some(token));
    fleet.wait_ready_nodes(1).await;
    let sha = fleet.api.upload(example("ticker.wasm")).await;
    fleet.api.deploy("tick", &sha, 1).await;
    let running = fleet.api.wait_running("tick", 1).await;
    assert_eq!(running[0]["node"], "pi-1", "{running:?}");
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_and_runs_over_mosquitto_tls_on_the_clusters_certificate() {
    let tls_port = edge_tests::ports::free_port();
    let (mut fleet, mosquitto, _port) = mosquitto_fleet_with(Some(tls_port)).await;
    let token = policy::create_token(&fleet, json!({})).await.to_string();
    // Over TLS, pinned by the token's fingerprint to the chain Mosquitto sends (broker.crt: leaf, then root).
    fleet.start_agent_with("pi-1", "127.0.0.1", tls_port, |c| {
        c.join = Some(token);
        c.broker_tls = true;
    });
    fleet.wait_ready_nodes(1).await;
    let sha = fleet.api.upload(example("ticker.wasm")).await;
    fleet.api.deploy("tick", &sha, 1).await;
    let running = fleet.api.wait_running("tick", 1).await;
    assert_eq!(running[0]["node"], "pi-1", "{running:?}");
    assert!(mosquitto.output().contains(&format!("port {tls_port}")), "{}", mosquitto.output());
    fleet.stop().await;
}

//! TLS on both of the controller's listeners: the API over HTTPS and the embedded broker over MQTT-over-TLS,
//! with certificates of the cluster CA (whose root key is the cluster key). Agents join and run over `mqtts`,
//! pinned by their join token's fingerprint; an agent holding another cluster's token refuses the broker
//! before its token's secret leaves it; plain HTTP and plain MQTT get nowhere.

use std::time::Duration;

use edge_controller::server::Tls;
use edge_tests::{eventually, example, Api, Fleet};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn tls_fleet() -> Fleet {
    let f = Fleet::embedded_with(|c| {
        c.api_tls = Tls::On;
        c.mqtt_tls = Tls::On;
    })
    .await;
    let c = f.controller.as_ref().unwrap();
    assert!(c.api_tls && c.mqtt_tls, "both listeners speak TLS");
    f
}

async fn running_on(api: &Api, name: &str) -> Vec<String> {
    let w = api.workload(name).await;
    let empty = Vec::new();
    let instances = w["instances"].as_array().unwrap_or(&empty);
    instances.iter().filter(|i| i["state"] == "Running").filter_map(|i| i["node"].as_str().map(String::from)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_joins_and_runs_over_mqtts_and_the_api_over_https() {
    let mut f = tls_fleet().await;
    f.start_agent("pi");
    f.wait_ready_nodes(1).await;
    let api = f.api.clone();
    let sha = api.upload(example("ticker.wasm")).await;
    api.deploy("tick", &sha, 1).await;
    eventually(Duration::from_secs(30), "tick Running on pi over TLS", || {
        let api = api.clone();
        async move { (running_on(&api, "tick").await == ["pi"]).then_some(()) }
    })
    .await;

    // Plain HTTP to the HTTPS port gets no answer the client can read.
    let addr = f.controller.as_ref().unwrap().api_addr;
    assert_eq!(Api::new(addr).try_get("/healthz").await, None::<Value>, "plain HTTP answered");

    // Plain MQTT to the TLS listener: no CONNACK, the socket is closed, and the broker counts the failure.
    let (host, port) = f.broker_addr();
    let mut plain = tokio::net::TcpStream::connect((host.as_str(), port)).await.unwrap();
    // CONNECT, MQTT 3.1.1, clean session, keep-alive 60 s, client id "plain".
    let connect = [0x10, 17, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 5, b'p', b'l', b'a', b'i', b'n'];
    plain.write_all(&connect).await.unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "the broker kept a plain socket open");
    assert_ne!(reply.first(), Some(&0x20), "the TLS listener answered plain MQTT with a CONNACK: {reply:?}");
    // Counted once the handshake task has seen the failure, which may be just after the socket closed.
    let c = f.controller.as_ref().unwrap();
    eventually(Duration::from_secs(10), "the failed handshake counted", || {
        let failed = c.broker_stats().unwrap().tls_handshakes_failed;
        async move { (failed >= 1).then_some(()) }
    })
    .await;
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_refuses_a_broker_whose_certificate_is_not_from_its_cluster() {
    let ours = tls_fleet().await;
    let theirs = tls_fleet().await;
    let token = ours.api.join_token("pi").await;
    let dir = tempfile::tempdir().unwrap();
    // The agent is pointed at the other cluster's broker, with our token.
    let (host, port) = theirs.broker_addr();
    let mut config = edge_agent::AgentConfig::new("pi", &host, port, dir.path().to_path_buf());
    config.broker_tls = true;
    let (_stop, mut stop_rx) = tokio::sync::watch::channel(false);
    let joined = edge_agent::join::join(&config, &token, Duration::from_secs(3), &mut stop_rx).await;
    let err = joined.expect_err("joined through another cluster's broker").to_string();
    assert!(err.contains("certificate") || err.contains("cluster"), "{err}");
    // The refusal came from the TLS handshake: the other broker never saw a CONNECT, so never the secret.
    let stats = theirs.controller.as_ref().unwrap().broker_stats().unwrap();
    assert!(stats.tls_handshakes_failed >= 1, "{stats:?}");
    assert_eq!((stats.connect_refused, stats.messages_in), (0, 0), "{stats:?}");

    // The same agent, pointed at its own cluster's broker, joins.
    let (host, port) = ours.broker_addr();
    let mut config = edge_agent::AgentConfig::new("pi", &host, port, dir.path().to_path_buf());
    config.broker_tls = true;
    let identity = edge_agent::join::join(&config, &token, Duration::from_secs(20), &mut stop_rx).await;
    assert_eq!(identity.expect("joins its own cluster").node, "pi");
    ours.stop().await;
    theirs.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_pinned_to_another_cluster_refuses_the_api() {
    let ours = tls_fleet().await;
    let theirs = tls_fleet().await;
    let addr = ours.controller.as_ref().unwrap().api_addr;
    let token = ours.controller.as_ref().unwrap().admin_token.clone();
    let theirs_pin = theirs.controller.as_ref().unwrap().fingerprint.clone();
    let wrong = Api::new(addr).with_token(token.clone()).pinned(&theirs_pin);
    assert_eq!(wrong.try_get("/v1/nodes").await, None, "a client pinned to another cluster was answered");
    let right = Api::new(addr).with_token(token).pinned(&ours.controller.as_ref().unwrap().fingerprint);
    assert!(right.try_get("/v1/nodes").await.is_some(), "the pinned client was refused by its own cluster");
    ours.stop().await;
    theirs.stop().await;
}

//! Authentic reports, end to end (issue 11): a joined agent behind a broker that lets anyone publish
//! anywhere (an open `edge-broker`, standing for an external broker that does not enforce topics) tags its
//! hello, heartbeats, events and logs, and its controller believes them; a raw MQTT client publishing as that
//! node (untagged, with a garbage tag, or replaying one of the node's own captured heartbeats) is dropped and
//! counted in the node's `rejected_reports`, and the node's state does not move.

use std::time::Duration;

use edge_controller::BrokerMode;
use edge_proto::auth::ReportAuth;
use edge_proto::{Channel, Message, Topics};
use edge_tests::{eventually, standalone_broker, Api, Fleet};
use reqwest::Method;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

async fn token_for(api: &Api, node: &str) -> String {
    let (status, v) = api.send(Method::POST, "/v1/tokens", None, Some(json!({ "node": node }))).await;
    assert_eq!(status, 201, "{v}");
    v["token"].as_str().expect("a token").to_string()
}

async fn node(api: &Api, name: &str) -> Value {
    api.get(&format!("/v1/nodes/{name}")).await["node"].clone()
}

/// Waits until the node's `rejected_reports` is `n`.
async fn wait_rejected(api: &Api, name: &str, n: u64, what: &str) {
    eventually(WAIT, what, || {
        let api = api.clone();
        async move { (node(&api, name).await["rejected_reports"] == n).then_some(()) }
    })
    .await
}

/// The next message the broker delivers on `topic` (already subscribed), as published.
async fn capture(eventloop: &mut EventLoop, topic: &str) -> Vec<u8> {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await.expect("the broker stays up") {
                if p.topic == topic {
                    return p.payload.to_vec();
                }
            }
        }
    })
    .await
    .expect("a heartbeat within 30 s")
}

fn heartbeat(applied_generation: u64) -> Message {
    Message::Heartbeat(edge_tests::node::heartbeat(1, applied_generation, vec![]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_node_cannot_be_spoken_for_even_through_an_open_broker() {
    let (_broker, port) = standalone_broker().await;
    let mut fleet = Fleet::with_broker(BrokerMode::External { host: "127.0.0.1".into(), port }).await;
    let token = token_for(&fleet.api, "pi-1").await;
    fleet.start_agent_with("pi-1", "127.0.0.1", port, |c| c.join = Some(token));
    fleet.wait_ready_nodes(1).await;
    let api = fleet.api.clone();

    // The honest path: the agent's tagged hello made the node, its heartbeats keep it Ready, nothing refused;
    // a workload runs on it (events and logs are tagged too).
    let module = api.upload(edge_tests::example("ticker.wasm")).await;
    api.deploy("tick", &module, 1).await;
    api.wait_running("tick", 1).await;
    let before = node(&api, "pi-1").await;
    assert_eq!((before["status"].as_str(), before["rejected_reports"].as_u64()), (Some("Ready"), Some(0)), "{before}");
    assert!(before["joined"].is_string(), "{before}");
    let labels_before = before["labels"].clone();

    let (mallory, mut mallory_loop) = AsyncClient::new(MqttOptions::new("mallory", "127.0.0.1", port), 64);
    let topics = Topics::default();
    let heartbeat_topic = topics.node("pi-1", Channel::Heartbeat);
    let hello_topic = topics.node("pi-1", Channel::Hello);
    mallory.subscribe(&heartbeat_topic, QoS::AtMostOnce).await.unwrap();
    let captured = capture(&mut mallory_loop, &heartbeat_topic).await;
    let auth = edge_proto::decode(&captured).unwrap().auth.expect("the agent's heartbeat carries a tag");
    assert!(ReportAuth::from_bytes(&auth).is_some(), "a counter and a tag");
    mallory.unsubscribe(&heartbeat_topic).await.unwrap();
    let driver = tokio::spawn(async move { while mallory_loop.poll().await.is_ok() {} });

    // Untagged: a heartbeat claiming a generation the node never applied.
    let evil = heartbeat(4242);
    mallory.publish(&heartbeat_topic, QoS::AtLeastOnce, false, edge_proto::encode(&evil)).await.unwrap();
    wait_rejected(&api, "pi-1", 1, "the untagged heartbeat refused").await;

    // A garbage tag: a hello with labels of Mallory's choosing.
    let mut hello = edge_tests::node::hello("pi-1", 99);
    hello.labels = vec![("owned".into(), "yes".into())];
    let garbage = ReportAuth { counter: u64::MAX - 1, tag: [0x5a; 16] }.to_bytes();
    let payload = edge_proto::encode_with_auth(&Message::Hello(hello), Some(&garbage));
    mallory.publish(&hello_topic, QoS::AtLeastOnce, false, payload).await.unwrap();
    wait_rejected(&api, "pi-1", 2, "the hello with a garbage tag refused").await;

    // The node's own heartbeat, captured and played back: its tag is good, its counter is spent.
    mallory.publish(&heartbeat_topic, QoS::AtLeastOnce, false, captured).await.unwrap();
    wait_rejected(&api, "pi-1", 3, "the replayed heartbeat refused").await;

    // The node itself is unaffected: still Ready on its own tagged heartbeats, its generation and labels its
    // own, its workload running; nothing more is refused while it keeps talking.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = node(&api, "pi-1").await;
    assert_eq!(after["status"], "Ready", "{after}");
    assert_ne!(after["generation"], 4242, "{after}");
    assert_eq!(after["generation"], after["spec_generation"], "{after}");
    assert_eq!(after["labels"], labels_before, "{after}");
    assert_eq!(after["rejected_reports"], 3, "{after}");
    assert_eq!(api.wait_running("tick", 1).await.len(), 1);

    driver.abort();
    fleet.stop().await;
}

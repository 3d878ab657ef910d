//! Signed desired state, end to end (issue 11): joined agents behind a broker that lets anyone publish
//! anywhere (an open `edge-broker`, standing for an external broker nobody should have to trust) run what
//! their controller signed and refuse, with an event, everything else an attacker on that broker sends: an
//! unsigned spec, one signed by another key, another node's spec replayed onto this node's topic, an older
//! generation of its own replayed, and a forged artifact chunk whose hash matches its bytes.

use std::time::Duration;

use edge_controller::BrokerMode;
use edge_proto::{Channel, Message, ModuleChunk, ModuleReply, NodeSpec, Topics};
use edge_tests::{eventually, standalone_broker, Api, Fleet};
use reqwest::Method;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const WAIT: Duration = Duration::from_secs(30);

async fn token_for(api: &Api, node: &str) -> String {
    let (status, v) = api.send(Method::POST, "/v1/tokens", None, Some(json!({ "node": node }))).await;
    assert_eq!(status, 201, "{v}");
    v["token"].as_str().expect("a token").to_string()
}

/// Deploys `name` onto `node` alone (the other node cordoned meanwhile) and waits for it to run.
async fn deploy_on(api: &Api, name: &str, module: &str, node: &str, other: &str) {
    api.node_op(other, "cordon").await;
    api.deploy(name, module, 1).await;
    let running = api.wait_running(name, 1).await;
    assert_eq!(running[0]["node"], node, "{running:?}");
    api.node_op(other, "uncordon").await;
}

/// The payload retained on `topic` now, as any client of an open broker can read it.
async fn retained(client: &AsyncClient, eventloop: &mut EventLoop, topic: &str) -> Vec<u8> {
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    let payload = tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await.expect("the broker stays up") {
                if p.topic == topic {
                    return p.payload.to_vec();
                }
            }
        }
    })
    .await
    .expect("a retained spec");
    client.unsubscribe(topic).await.unwrap();
    payload
}

/// The node's recent events (as `edgectl describe node` shows them) that contain `needle`.
async fn node_events_with(api: &Api, node: &str, needle: &str) -> usize {
    let v: Value = api.get(&format!("/v1/nodes/{node}")).await;
    v["events"]["recent"].as_array().map_or(0, |lines| {
        lines.iter().filter(|l| l.as_str().is_some_and(|l| l.contains("Rejected") && l.contains(needle))).count()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_agents_run_only_what_their_cluster_signed_even_through_an_open_broker() {
    let (_broker, port) = standalone_broker().await;
    let mut fleet = Fleet::with_broker(BrokerMode::External { host: "127.0.0.1".into(), port }).await;
    for node in ["pi-1", "pi-2"] {
        let token = token_for(&fleet.api, node).await;
        fleet.start_agent_with(node, "127.0.0.1", port, |c| c.join = Some(token));
    }
    fleet.wait_ready_nodes(2).await;
    let api = fleet.api.clone();
    let module = api.upload(edge_tests::example("ticker.wasm")).await;
    // Signed specs and signed artifact statements: the honest path runs.
    deploy_on(&api, "tick-a", &module, "pi-1", "pi-2").await;
    deploy_on(&api, "tick-b", &module, "pi-2", "pi-1").await;

    // Mallory, on the same open broker, keeps copies of what the controller signed.
    let (mallory, mut mallory_loop) = AsyncClient::new(MqttOptions::new("mallory", "127.0.0.1", port), 64);
    let topics = Topics::default();
    let (spec_1, spec_2) = (topics.node("pi-1", Channel::Spec), topics.node("pi-2", Channel::Spec));
    let old_spec_of_1 = retained(&mallory, &mut mallory_loop, &spec_1).await;
    let spec_of_2 = retained(&mallory, &mut mallory_loop, &spec_2).await;
    deploy_on(&api, "tick-c", &module, "pi-1", "pi-2").await; // pi-1's generation moves on.
    let driver = tokio::spawn(async move { while mallory_loop.poll().await.is_ok() {} });

    let Message::Spec(current) = edge_proto::decode(&old_spec_of_1).unwrap().message else { panic!("not a spec") };
    let evil = NodeSpec { issuer: current.issuer, generation: u64::MAX, instances: current.instances.clone() };
    let other_key = edge_trust::KeyPair::generate().unwrap();
    let forged_signature =
        edge_trust::sign(&other_key, edge_trust::Context::SPEC, edge_proto::auth::spec_document("pi-1", &evil));
    let forged_bytes = b"\0asm native code an attacker wants run".to_vec();
    let forged_chunk = ModuleChunk {
        module: current.instances[0].module,
        // Any profile: the statement is checked before anything else.
        artifact: Some(edge_tests::node::hello("pi-1", 1).engine),
        sha256: Sha256::digest(&forged_bytes).into(),
        offset: 0,
        total: forged_bytes.len() as u64,
        data: forged_bytes,
    };
    let attacks: [(&str, String, Vec<u8>, &str, usize); 5] = [
        ("an unsigned spec", spec_1.clone(), edge_proto::encode(&Message::Spec(evil.clone())), "not signed", 1),
        (
            "a spec signed by another key",
            spec_1.clone(),
            edge_proto::encode_with_auth(&Message::Spec(evil), Some(&forged_signature.signature()[..])),
            "does not verify for node pi-1",
            1,
        ),
        ("pi-2's spec replayed onto pi-1", spec_1.clone(), spec_of_2, "does not verify for node pi-1", 2),
        ("pi-1's older generation replayed", spec_1.clone(), old_spec_of_1, "a replay", 1),
        (
            "a forged artifact chunk with a self-consistent hash",
            topics.node("pi-1", Channel::ModuleChunk),
            edge_proto::encode(&Message::ModuleReply(ModuleReply::Chunk(forged_chunk))),
            "artifact chunk refused",
            1,
        ),
    ];
    for (attack, topic, payload, reason, count) in attacks {
        mallory.publish(&topic, QoS::AtLeastOnce, false, payload).await.unwrap();
        let api = api.clone();
        eventually(WAIT, &format!("pi-1 to reject {attack}"), || {
            let api = api.clone();
            async move { (node_events_with(&api, "pi-1", reason).await >= count).then_some(()) }
        })
        .await;
    }

    // Nothing changed: both nodes Ready, every workload still on its node.
    fleet.wait_ready_nodes(2).await;
    for (name, node) in [("tick-a", "pi-1"), ("tick-b", "pi-2"), ("tick-c", "pi-1")] {
        let running = api.wait_running(name, 1).await;
        assert_eq!(running[0]["node"], node, "{name}: {running:?}");
    }
    assert_eq!(node_events_with(&api, "pi-2", "").await, 0, "pi-2 was never attacked");
    driver.abort();
    fleet.stop().await;
}

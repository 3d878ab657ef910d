//! Identities on the embedded broker, against a real controller (in process) and its real `edge-broker`:
//! anonymous clients are refused, nodes join with tokens over MQTT, each node touches only its own topics,
//! used tokens are refused with the reason, and a deleted node is cut off and stays off.
//!
//! The joins here are made by hand with a plain MQTT client (the protocol of `edge_proto::join`), so the
//! controller's side is tested apart from the agent's (whose half has its own tests, `agent/tests/join.rs`).

use std::time::Duration;

use edge_controller::BrokerMode;
use edge_proto::join::{self, JoinRefusal, JoinReply, JoinRequest};
use edge_proto::{Channel, Message, Topics};
use edge_tests::{eventually, Fleet};
use edge_trust::JoinToken;
use reqwest::Method;
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const WAIT: Duration = Duration::from_secs(10);

/// Connects and waits for the CONNACK: the client and its event loop, or the broker's refusal.
async fn connect(port: u16, client_id: &str, login: Option<(&str, &str)>) -> Result<(AsyncClient, EventLoop), String> {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let connack = tokio::time::timeout(WAIT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(ConnectionError::ConnectionRefused(code)) => return Err(format!("refused: {code:?}")),
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .expect("a CONNACK or an error within 10 s");
    connack.map(|()| (client, eventloop))
}

/// The next PUBLISH on `eventloop`, within [`WAIT`].
async fn next_publish(eventloop: &mut EventLoop) -> rumqttc::Publish {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await.expect("connection stays up") {
                return p;
            }
        }
    })
    .await
    .expect("a publish within 10 s")
}

/// The reason codes of the next SUBACK.
async fn next_suback(eventloop: &mut EventLoop) -> Vec<rumqttc::SubscribeReasonCode> {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Incoming(Packet::SubAck(a)) = eventloop.poll().await.expect("connection stays up") {
                return a.return_codes;
            }
        }
    })
    .await
    .expect("a SUBACK within 10 s")
}

async fn create_token(fleet: &Fleet, body: Value) -> JoinToken {
    let (status, v) = fleet.api.send(Method::POST, "/v1/tokens", None, Some(body)).await;
    assert_eq!(status, 201, "{v}");
    JoinToken::parse(v["token"].as_str().expect("token")).expect("a valid token")
}

/// Joins as `node` with `token` by hand; the reply, and the password chosen.
async fn join_by_hand(port: u16, token: &JoinToken, node: &str) -> (JoinReply, String) {
    let id = *token.id().as_bytes();
    let user = join::join_username(&id);
    let secret = hex::encode(token.secret().as_bytes());
    let (client, mut eventloop) = connect(port, &user, Some((&user, &secret))).await.expect("a join login works");
    let prefix = Topics::default().prefix().to_string();
    client.subscribe(join::reply_topic(&prefix, &id), QoS::AtLeastOnce).await.unwrap();
    assert_eq!(next_suback(&mut eventloop).await, vec![rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    let password = hex::encode(rand_bytes());
    let request = JoinRequest {
        token_id: id,
        token_secret: *token.secret().as_bytes(),
        node: node.to_string(),
        node_key: edge_trust::KeyPair::generate().unwrap().public().to_bytes(),
        password_sha256: Sha256::digest(password.as_bytes()).into(),
    };
    let payload = edge_proto::encode(&Message::JoinRequest(request));
    client.publish(join::request_topic(&prefix, &id), QoS::AtLeastOnce, false, payload).await.unwrap();
    let p = next_publish(&mut eventloop).await;
    match edge_proto::decode(&p.payload).expect("a valid reply").message {
        Message::JoinReply(r) => (r, password),
        other => panic!("not a join reply: {other:?}"),
    }
}

/// 32 random bytes (a fresh key's secret half is just that).
fn rand_bytes() -> [u8; 32] {
    *edge_trust::KeyPair::generate().unwrap().secret_bytes()
}

async fn secure_fleet() -> Fleet {
    let port = edge_tests::ports::free_port();
    Fleet::configured(BrokerMode::Embedded(([127, 0, 0, 1], port).into()), |c| {
        c.allow_anonymous = false;
        c.require_join = true;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_only_each_on_its_own_topics_and_a_deleted_node_stays_out() {
    let fleet = secure_fleet().await;
    let port = fleet.broker_addr().1;
    let topics = Topics::default();

    // Anonymous: refused.
    let anonymous = connect(port, "anyone", None).await;
    assert!(anonymous.is_err(), "an anonymous client was admitted");

    // Two nodes join; the first token cannot be used again.
    let (token_a, token_b) = (create_token(&fleet, json!({})).await, create_token(&fleet, json!({})).await);
    let (reply, password_a) = join_by_hand(port, &token_a, "node-a").await;
    let JoinReply::Accepted { node, cluster_key, signature } = reply else { panic!("node-a refused: {reply:?}") };
    assert_eq!(node, "node-a");
    assert!(token_a.fingerprint().matches(&edge_trust::PublicKey::from_bytes(&cluster_key).unwrap()));
    assert_eq!(signature.len(), 64);
    let (reply, password_b) = join_by_hand(port, &token_b, "node-b").await;
    assert!(matches!(reply, JoinReply::Accepted { .. }), "{reply:?}");
    let (reply, _) = join_by_hand(port, &token_a, "node-c").await;
    assert_eq!(reply, JoinReply::Refused(JoinRefusal::Used));

    // Credentials are checked, and bound to the client id.
    assert!(connect(port, "node-a", Some(("node-a", "wrong"))).await.is_err());
    assert!(connect(port, "node-b", Some(("node-a", &password_a))).await.is_err(), "node-a logged in as node-b");
    let (a, mut a_loop) = connect(port, "node-a", Some(("node-a", &password_a))).await.expect("node-a logs in");

    // node-a may not read node-b's spec, nor subscribe with wildcards; it may read its own.
    a.subscribe(topics.node("node-b", Channel::Spec), QoS::AtLeastOnce).await.unwrap();
    assert_eq!(next_suback(&mut a_loop).await, vec![rumqttc::SubscribeReasonCode::Failure]);
    a.subscribe("#", QoS::AtLeastOnce).await.unwrap();
    assert_eq!(next_suback(&mut a_loop).await, vec![rumqttc::SubscribeReasonCode::Failure]);
    a.subscribe(topics.node("node-a", Channel::Spec), QoS::AtLeastOnce).await.unwrap();
    assert_eq!(next_suback(&mut a_loop).await, vec![rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]);

    // node-a speaking as node-b is dropped by the broker; as itself it is heard.
    let hello = |name: &str| edge_proto::encode(&Message::Hello(edge_tests::node::hello(name, 1)));
    a.publish(topics.node("node-b", Channel::Hello), QoS::AtLeastOnce, false, hello("node-b")).await.unwrap();
    a.publish(topics.node("node-a", Channel::Hello), QoS::AtLeastOnce, false, hello("node-a")).await.unwrap();
    let api = fleet.api.clone();
    let driver = tokio::spawn(async move { while a_loop.poll().await.is_ok() {} });
    let nodes = eventually(WAIT, "node-a's hello to be heard", || {
        let api = api.clone();
        async move {
            let nodes = api.get("/v1/nodes").await;
            nodes.as_array().unwrap().iter().any(|n| n["name"] == "node-a").then_some(nodes)
        }
    })
    .await;
    assert!(!nodes.as_array().unwrap().iter().any(|n| n["name"] == "node-b"), "node-a spoke for node-b: {nodes}");
    let joined = nodes.as_array().unwrap().iter().find(|n| n["name"] == "node-a").unwrap()["joined"].clone();
    assert!(joined.is_string(), "{nodes}");

    // Deleted (forced: it is Ready): its connection is closed and it cannot log in again.
    let (status, v) = fleet.api.send(Method::DELETE, "/v1/nodes/node-a", None, None).await;
    assert_eq!(status, 409, "a Ready node is not deleted without force: {v}");
    let (status, v) = fleet.api.send(Method::DELETE, "/v1/nodes/node-a?force=true", None, None).await;
    assert_eq!(status, 204, "{v}");
    tokio::time::timeout(WAIT, driver).await.expect("node-a's connection is closed").unwrap();
    assert!(connect(port, "node-a", Some(("node-a", &password_a))).await.is_err(), "a deleted node logged in");
    // node-b is untouched.
    assert!(connect(port, "node-b", Some(("node-b", &password_b))).await.is_ok());
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_wrong_node_and_deleted_tokens_are_refused_by_name() {
    let fleet = secure_fleet().await;
    let port = fleet.broker_addr().1;
    let expiring = create_token(&fleet, json!({"ttl_ms": 1})).await;
    let for_pi = create_token(&fleet, json!({"node": "pi-1"})).await;
    let deleted = create_token(&fleet, json!({})).await;
    tokio::time::sleep(Duration::from_millis(5)).await; // the 1 ms token's lifetime: no event to await
    assert_eq!(join_by_hand(port, &expiring, "n1").await.0, JoinReply::Refused(JoinRefusal::Expired));
    assert_eq!(
        join_by_hand(port, &for_pi, "n2").await.0,
        JoinReply::Refused(JoinRefusal::WrongNode { allowed: "pi-1".into() })
    );
    let (status, _) = fleet.api.send(Method::DELETE, &format!("/v1/tokens/{}", deleted.id()), None, None).await;
    assert_eq!(status, 204);
    // A deleted (or never made) token cannot even log in.
    let id = *deleted.id().as_bytes();
    let user = join::join_username(&id);
    let secret = hex::encode(deleted.secret().as_bytes());
    assert!(connect(port, &user, Some((&user, &secret))).await.is_err());
    let tokens = fleet.api.get("/v1/tokens").await;
    assert_eq!(tokens.as_array().unwrap().len(), 2, "{tokens}");
    assert!(!tokens.to_string().contains(&secret), "a token list shows a secret");
    fleet.stop().await;
}

//! The broker policy, as one suite of assertions run against each broker a controller can enforce it on:
//! the embedded `edge-broker` (`tests/tests/trust.rs`) and Mosquitto on the files the controller keeps
//! (`tests/tests/mosquitto_policy.rs`).
//!
//! Joins are made by hand with a plain MQTT client (the protocol of `edge_proto::join`), so the controller's
//! side is tested apart from the agent's; the password a node logs in with is derived as the agent derives
//! it (`edge_trust::MqttPassword`) from its key and the cluster key in the acceptance.
//!
//! Where the two brokers differ, [`Broker`] says so and the suite checks each one's own behaviour:
//! - a SUBSCRIBE outside the node's topics: the embedded broker answers Failure; Mosquitto's ACL file grants
//!   it and then delivers nothing the node may not read. Both are checked to deliver nothing;
//! - a client id other than the username: the embedded broker refuses it; Mosquitto replaces it with the
//!   username (`use_username_as_clientid`);
//!
//! Alike on both: a second login with valid credentials takes the session over, closing the first (the
//! embedded broker's `Takeover::SameIdentity`; Mosquitto's client id is the username), while another
//! identity can never reuse a node's client id.

use std::time::Duration;

use edge_proto::join::{self, JoinRefusal, JoinReply, JoinRequest};
use edge_proto::{Channel, Message, Topics};
use edge_trust::{JoinToken, KeyPair, MqttPassword, PublicKey};
use reqwest::Method;
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeReasonCode};
use serde_json::{json, Value};

use crate::{eventually, Fleet};

pub const WAIT: Duration = Duration::from_secs(10);

/// Which broker the suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    Embedded,
    Mosquitto,
}

/// Connects and waits for the CONNACK: the client and its event loop, or the broker's refusal.
pub async fn connect(
    port: u16,
    client_id: &str,
    login: Option<(&str, &str)>,
) -> Result<(AsyncClient, EventLoop), String> {
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
pub async fn next_publish(eventloop: &mut EventLoop) -> rumqttc::Publish {
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
pub async fn next_suback(eventloop: &mut EventLoop) -> Vec<SubscribeReasonCode> {
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

/// Polls `eventloop` until the connection ends (the broker closed it), within [`WAIT`].
pub async fn closed(eventloop: &mut EventLoop, what: &str) {
    tokio::time::timeout(WAIT, async { while eventloop.poll().await.is_ok() {} })
        .await
        .unwrap_or_else(|_| panic!("{what}: the connection is still open after {WAIT:?}"));
}

pub async fn create_token(fleet: &Fleet, body: Value) -> JoinToken {
    let (status, v) = fleet.api.send(Method::POST, "/v1/tokens", None, Some(body)).await;
    assert_eq!(status, 201, "{v}");
    JoinToken::parse(v["token"].as_str().expect("token")).expect("a valid token")
}

/// A node joined by hand: what it logs in with, and the keys to tag its reports with.
pub struct Member {
    pub name: String,
    /// Derived from the node key and the cluster key accepted, as the agent derives it; empty if refused.
    pub password: String,
    node_key: KeyPair,
    cluster: Option<PublicKey>,
}

impl Member {
    /// A hello from this node as `name`, tagged under its report key with `counter` (as the agent tags it;
    /// for another node's topic the tag is this node's, so it proves nothing there).
    pub fn hello(&self, name: &str, counter: u64) -> Vec<u8> {
        let message = Message::Hello(crate::node::hello(name, 1));
        let auth = self.cluster.map(|cluster| {
            let key = edge_trust::ReportKey::for_node(&self.node_key, &cluster, &self.name).unwrap();
            let tag = key.tag(edge_trust::Context::HELLO, name, counter, &edge_proto::auth::message_bytes(&message));
            edge_proto::auth::ReportAuth { counter, tag: *tag.as_bytes() }.to_bytes()
        });
        edge_proto::encode_with_auth(&message, auth.as_ref().map(|a| &a[..]))
    }
}

/// Joins as `node` with `token` by hand: the reply, and the member (with its derived password).
pub async fn join_by_hand(port: u16, token: &JoinToken, node: &str) -> (JoinReply, Member) {
    let id = *token.id().as_bytes();
    let user = join::join_username(&id);
    let secret = hex::encode(token.secret().as_bytes());
    let (client, mut eventloop) = connect(port, &user, Some((&user, &secret))).await.expect("a join login works");
    let prefix = Topics::default().prefix().to_string();
    client.subscribe(join::reply_topic(&prefix, &id), QoS::AtLeastOnce).await.unwrap();
    assert_eq!(next_suback(&mut eventloop).await, vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    let node_key = KeyPair::generate().unwrap();
    let request = JoinRequest {
        token_id: id,
        token_secret: *token.secret().as_bytes(),
        node: node.to_string(),
        node_key: node_key.public().to_bytes(),
    };
    let payload = edge_proto::encode(&Message::JoinRequest(request));
    client.publish(join::request_topic(&prefix, &id), QoS::AtLeastOnce, false, payload).await.unwrap();
    let p = next_publish(&mut eventloop).await;
    let _ = client.disconnect().await;
    let reply = match edge_proto::decode(&p.payload).expect("a valid reply").message {
        Message::JoinReply(r) => r,
        other => panic!("not a join reply: {other:?}"),
    };
    let cluster = match &reply {
        JoinReply::Accepted { cluster_key, .. } => Some(PublicKey::from_bytes(cluster_key).expect("a usable key")),
        JoinReply::Refused(_) => None,
    };
    let password =
        cluster.map(|c| MqttPassword::for_node(&node_key, &c, node).unwrap().into_string()).unwrap_or_default();
    (reply, Member { name: node.to_string(), password, node_key, cluster })
}

/// Logs in as `member` and says hello, then keeps the connection polled in the background; the client.
async fn hello_as(port: u16, member: &Member) -> (AsyncClient, tokio::task::JoinHandle<()>) {
    let (client, mut eventloop) = login(port, &member.name, &member.password).await;
    let hello = member.hello(&member.name, 1);
    let topic = Topics::default().node(&member.name, Channel::Hello);
    client.publish(topic, QoS::AtLeastOnce, false, hello).await.unwrap();
    let driver = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    (client, driver)
}

async fn nodes(fleet: &Fleet) -> Vec<String> {
    let nodes = fleet.api.get("/v1/nodes").await;
    nodes.as_array().unwrap().iter().filter_map(|n| n["name"].as_str().map(String::from)).collect()
}

async fn wait_heard(fleet: &Fleet, node: &str) {
    let api = fleet.api.clone();
    let node = node.to_string();
    eventually(WAIT, &format!("{node}'s hello to be heard"), || {
        let (api, node) = (api.clone(), node.clone());
        async move {
            let nodes = api.get("/v1/nodes").await;
            nodes.as_array().unwrap().iter().any(|n| n["name"] == node.as_str()).then_some(())
        }
    })
    .await;
}

/// The whole suite, on a fleet whose controller enforces identities (`--require-join`) through `broker`
/// listening on `port`.
pub async fn members_only_each_on_its_own_topics(fleet: &Fleet, port: u16, broker: Broker) {
    let topics = Topics::default();

    // Anonymous: refused.
    assert!(connect(port, "anyone", None).await.is_err(), "an anonymous client was admitted");

    // Two nodes join; the first token cannot be used again.
    let (token_a, token_b) = (create_token(fleet, json!({})).await, create_token(fleet, json!({})).await);
    let (reply, member_a) = join_by_hand(port, &token_a, "node-a").await;
    let password_a = member_a.password.clone();
    let JoinReply::Accepted { node, cluster_key, signature } = reply else { panic!("node-a refused: {reply:?}") };
    assert_eq!(node, "node-a");
    assert!(token_a.fingerprint().matches(&PublicKey::from_bytes(&cluster_key).unwrap()));
    assert_eq!(signature.len(), 64);
    let (reply, member_b) = join_by_hand(port, &token_b, "node-b").await;
    let password_b = member_b.password.clone();
    assert!(matches!(reply, JoinReply::Accepted { .. }), "{reply:?}");
    let (reply, _) = join_by_hand(port, &token_a, "node-c").await;
    assert_eq!(reply, JoinReply::Refused(JoinRefusal::Used));

    // Credentials are checked: A's name without A's password, A's password under B's name, no password.
    assert!(connect(port, "node-a", Some(("node-a", "wrong"))).await.is_err());
    assert!(connect(port, "node-a", Some(("node-a", &password_b))).await.is_err());
    assert!(connect(port, "node-b", Some(("node-b", &password_a))).await.is_err(), "node-a logged in as node-b");
    assert!(connect(port, "node-a", Some(("node-a", ""))).await.is_err());
    // A's login under another client id: refused, or (Mosquitto) given A's name as its client id.
    let other_id = connect(port, "node-b", Some(("node-a", &password_a))).await;
    match broker {
        Broker::Embedded => assert!(other_id.is_err(), "a client id other than the username was admitted"),
        Broker::Mosquitto => assert!(other_id.is_ok(), "{:?}", other_id.err()),
    }
    drop(other_id);

    // node-a speaking as node-b is dropped by the broker; as itself it is heard.
    let (a, mut a_loop) = connect(port, "node-a", Some(("node-a", &password_a))).await.expect("node-a logs in");
    a.publish(topics.node("node-b", Channel::Hello), QoS::AtLeastOnce, false, member_a.hello("node-b", 1))
        .await
        .unwrap();
    a.publish(topics.node("node-a", Channel::Hello), QoS::AtLeastOnce, false, member_a.hello("node-a", 2))
        .await
        .unwrap();
    // Nor may a node write its own downlink (a spec of its own making).
    a.publish(topics.node("node-a", Channel::Spec), QoS::AtLeastOnce, true, b"forged".to_vec()).await.unwrap();
    let driver = tokio::spawn(async move { while a_loop.poll().await.is_ok() {} });
    wait_heard(fleet, "node-a").await;
    assert!(!nodes(fleet).await.contains(&"node-b".to_string()), "node-a spoke for node-b");
    let _ = a.disconnect().await;
    tokio::time::timeout(WAIT, driver).await.expect("node-a's goodbye").unwrap();

    // node-b says hello as itself: the controller publishes its (retained) spec.
    let (_b, b_driver) = hello_as(port, &member_b).await;
    wait_heard(fleet, "node-b").await;

    // node-a subscribes to node-b's spec and to everything, then to its own spec: it gets its own spec (the
    // controller's, not the forged one) and nothing of node-b's.
    let (a, mut a_loop) = login(port, "node-a", &password_a).await;
    for filter in [topics.node("node-b", Channel::Spec), "#".to_string(), topics.all_nodes(Channel::Spec)] {
        a.subscribe(filter.clone(), QoS::AtLeastOnce).await.unwrap();
        let codes = next_suback(&mut a_loop).await;
        match broker {
            Broker::Embedded => assert_eq!(codes, vec![SubscribeReasonCode::Failure], "{filter}"),
            // Granted, and then nothing is delivered (below).
            Broker::Mosquitto => assert_eq!(codes.len(), 1, "{filter}"),
        }
    }
    a.subscribe(topics.node("node-a", Channel::Spec), QoS::AtLeastOnce).await.unwrap();
    let own_spec = topics.node("node-a", Channel::Spec);
    let got = tokio::time::timeout(WAIT, async {
        let mut seen = Vec::new();
        loop {
            match a_loop.poll().await.expect("connection stays up") {
                Event::Incoming(Packet::Publish(p)) => {
                    let own = p.topic == own_spec && p.payload.as_ref() != b"forged";
                    seen.push(p.topic.clone());
                    if own {
                        return seen;
                    }
                }
                Event::Incoming(Packet::SubAck(ack)) => {
                    assert_eq!(ack.return_codes, vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
                }
                _ => {}
            }
        }
    })
    .await
    .expect("node-a's own spec within 10 s");
    assert!(got.iter().all(|t| t == &own_spec), "node-a received others' messages: {got:?}");

    // A second login with node-a's credentials while it is connected takes the session over (both brokers:
    // the embedded one lets only the same identity do so, Mosquitto only the same username).
    let second = connect(port, "node-a", Some(("node-a", &password_a))).await;
    let (_a, a_loop_second) = second.expect("valid credentials take the session over");
    closed(&mut a_loop, "the session taken over").await;
    drop(a);
    let mut a_loop = a_loop_second;

    // Deleted (forced: it is Ready): its connection is closed and it cannot log in again.
    let (status, v) = fleet.api.send(Method::DELETE, "/v1/nodes/node-a", None, None).await;
    assert_eq!(status, 409, "a Ready node is not deleted without force: {v}");
    let (status, v) = fleet.api.send(Method::DELETE, "/v1/nodes/node-a?force=true", None, None).await;
    assert_eq!(status, 204, "{v}");
    closed(&mut a_loop, "node-a deleted").await;
    assert!(connect(port, "node-a", Some(("node-a", &password_a))).await.is_err(), "a deleted node logged in");
    // node-b is untouched: still connected (Mosquitto re-checked it at the same reload that cut node-a).
    assert!(!b_driver.is_finished(), "node-b's connection was closed with node-a's");
    b_driver.abort();
}

/// Logs in as `node`, retrying while a previous session of the same name may still be closing.
async fn login(port: u16, node: &str, password: &str) -> (AsyncClient, EventLoop) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match connect(port, node, Some((node, password))).await {
            Ok(c) => return c,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("{node} cannot log in: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Tokens: expired, for another node, deleted (which cannot even log in), and never listed with a secret.
pub async fn spent_tokens_are_refused_by_name(fleet: &Fleet, port: u16, broker: Broker) {
    let expiring = create_token(fleet, json!({"ttl_ms": 1})).await;
    let for_pi = create_token(fleet, json!({"node": "pi-1"})).await;
    let deleted = create_token(fleet, json!({})).await;
    tokio::time::sleep(Duration::from_millis(5)).await; // the 1 ms token's lifetime: no event to await
    assert_eq!(join_by_hand(port, &expiring, "n1").await.0, JoinReply::Refused(JoinRefusal::Expired));
    assert_eq!(
        join_by_hand(port, &for_pi, "n2").await.0,
        JoinReply::Refused(JoinRefusal::WrongNode { allowed: "pi-1".into() })
    );
    let id = *deleted.id().as_bytes();
    let user = join::join_username(&id);
    let secret = hex::encode(deleted.secret().as_bytes());
    // Logged in while the token exists, cut off when it is deleted.
    let (_client, mut eventloop) = connect(port, &user, Some((&user, &secret))).await.expect("a join login works");
    let (status, _) = fleet.api.send(Method::DELETE, &format!("/v1/tokens/{}", deleted.id()), None, None).await;
    assert_eq!(status, 204);
    // Mosquitto closes the join session at the reload; the embedded broker lets an open one end by itself
    // (it reaches only its own two topics, and the controller no longer answers it). Either way a new login
    // is refused.
    if broker == Broker::Mosquitto {
        closed(&mut eventloop, "a deleted token's join session").await;
    }
    drop(eventloop);
    assert!(connect(port, &user, Some((&user, &secret))).await.is_err());
    let tokens = fleet.api.get("/v1/tokens").await;
    assert_eq!(tokens.as_array().unwrap().len(), 2, "{tokens}");
    assert!(!tokens.to_string().contains(&secret), "a token list shows a secret");
}

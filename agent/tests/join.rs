//! Joining a cluster with a token, against the real embedded broker. The test plays the controller: a local
//! link answers join requests (signed with a cluster key it made, registering the password it derives from
//! that key and the node's), and a broker policy that knows the tokens and the registered nodes' password
//! hashes refuses anonymous clients, so a node that runs at all logged in
//! either with its token or as itself.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edge_agent::AgentConfig;
use edge_broker::{Broker, BrokerHandle, Config, Credentials, Identity, Policy, QoS, Refusal};
use edge_proto::join::{self as proto, JoinRefusal, JoinReply};
use edge_proto::{Channel, Message, NodeStatus, Topics};
use edge_trust::{Context, JoinToken, KeyPair, MqttPassword, PublicKey, StoredToken, TokenSecret};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// Upper bound on every wait (an agent start builds a wasmtime engine first).
const WAIT: Duration = Duration::from_secs(30);
const PREFIX: &str = edge_proto::topic::DEFAULT_PREFIX;

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// What the controller knows: tokens (as it stores them), registered nodes (sha256 of their passwords), and
/// how many join requests it saw.
#[derive(Default)]
struct Registry {
    tokens: Mutex<Vec<StoredToken>>,
    nodes: Mutex<HashMap<String, [u8; 32]>>,
    requests: AtomicUsize,
}

impl Registry {
    fn token(&self, id_hex: &str) -> Option<StoredToken> {
        self.tokens.lock().unwrap().iter().find(|t| proto::hex(t.id().as_bytes()) == id_hex).cloned()
    }
}

/// The broker's policy as a controller that enforces identities would set it: a joining node may only ask
/// and hear its answer, a node only use its own topics, and nobody is anonymous.
struct Guard(Arc<Registry>);

impl Policy for Guard {
    fn connect(&self, c: &Credentials<'_>) -> Result<Identity, Refusal> {
        let (Some(user), Some(password)) = (c.username, c.password) else { return Err(Refusal::NotAuthorized) };
        if let Some(id) = user.strip_prefix(proto::JOIN_USER_PREFIX) {
            let secret: [u8; 16] =
                hex::decode(password).ok().and_then(|b| b.try_into().ok()).ok_or(Refusal::BadCredentials)?;
            let known = self.0.token(id).is_some_and(|t| t.verify(&TokenSecret::from_bytes(secret)));
            return if known && c.client_id == user {
                Ok(Identity::principal(user))
            } else {
                Err(Refusal::BadCredentials)
            };
        }
        let hash: [u8; 32] = Sha256::digest(password).into();
        match self.0.nodes.lock().unwrap().get(user) {
            Some(h) if *h == hash && c.client_id == user => Ok(Identity::principal(format!("node/{user}"))),
            _ => Err(Refusal::BadCredentials),
        }
    }

    fn may_publish(&self, identity: &Identity, topic: &str) -> bool {
        allowed(identity, topic, "request")
    }

    fn may_subscribe(&self, identity: &Identity, filter: &str) -> bool {
        allowed(identity, filter, "reply")
    }
}

fn allowed(identity: &Identity, topic: &str, join_kind: &str) -> bool {
    match identity.name() {
        Some(name) if name.starts_with(proto::JOIN_USER_PREFIX) => {
            proto::parse_topic(PREFIX, topic) == Some((&name[proto::JOIN_USER_PREFIX.len()..], join_kind))
        }
        Some(name) => name
            .strip_prefix("node/")
            .is_some_and(|node| topic.starts_with(&format!("{PREFIX}/nodes/{node}/")) && !topic.contains(['+', '#'])),
        None => false,
    }
}

/// How the test controller answers.
#[derive(Clone)]
enum Answer {
    /// Registers the node and accepts, signing with `signer` and offering `offered` as the cluster key.
    Accept {
        signer: Box<KeyPair>,
        offered: [u8; 32],
    },
    Refuse(JoinRefusal),
    /// Never answers.
    Silent,
}

async fn start() -> (Broker, Arc<Registry>) {
    let registry = Arc::new(Registry::default());
    let broker = Broker::bind(Config::new("127.0.0.1:0".parse().unwrap()), Guard(registry.clone())).await.unwrap();
    (broker, registry)
}

/// The controller's join handler, on a local link of `broker` (subscribed before this returns).
fn controller(broker: &BrokerHandle, registry: Arc<Registry>, answer: Answer) -> tokio::task::JoinHandle<()> {
    let (tx, mut rx) = broker.local_client("controller").unwrap();
    tx.subscribe(&proto::all_requests(PREFIX), QoS::AtLeastOnce).unwrap();
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let Ok(envelope) = edge_proto::decode(&m.payload) else { continue };
            let Message::JoinRequest(req) = envelope.message else { continue };
            registry.requests.fetch_add(1, Ordering::SeqCst);
            let known = registry
                .token(&proto::hex(&req.token_id))
                .is_some_and(|t| t.verify(&TokenSecret::from_bytes(req.token_secret)));
            let reply = match (&answer, known) {
                (Answer::Silent, _) => continue,
                (_, false) => JoinReply::Refused(JoinRefusal::Unknown),
                (Answer::Refuse(r), true) => JoinReply::Refused(r.clone()),
                (Answer::Accept { signer, offered }, true) => {
                    // The password the node will log in with: derived, as the real controller does.
                    let node_key = PublicKey::from_bytes(&req.node_key).unwrap();
                    let password = MqttPassword::for_controller(signer, &node_key, &req.node).unwrap();
                    let hash: [u8; 32] = Sha256::digest(password.as_str()).into();
                    registry.nodes.lock().unwrap().insert(req.node.clone(), hash);
                    let body = proto::accepted_body(&req.node, &req.node_key, &req.token_id);
                    let signed = edge_trust::sign(signer, Context::JOIN, body);
                    JoinReply::Accepted {
                        node: req.node,
                        cluster_key: *offered,
                        signature: signed.signature().to_vec(),
                    }
                }
            };
            let payload = edge_proto::encode(&Message::JoinReply(reply));
            tx.publish(&proto::reply_topic(PREFIX, &req.token_id), payload, QoS::AtLeastOnce, false).unwrap();
        }
    })
}

/// A token the controller (and the broker's policy) knows, pinning `cluster`.
fn token_for(registry: &Registry, cluster: &KeyPair) -> JoinToken {
    let (token, stored) = JoinToken::generate(cluster.fingerprint()).unwrap();
    registry.tokens.lock().unwrap().push(stored);
    token
}

fn config(node: &str, broker: SocketAddr, dir: &Path, join: Option<&JoinToken>) -> AgentConfig {
    let mut c = AgentConfig::new(node, broker.ip().to_string(), broker.port(), dir.to_path_buf());
    c.heartbeat = Duration::from_millis(200);
    c.join = join.map(|t| t.to_string());
    c
}

/// Waits for `node` to publish `online` live (not a retained copy) on its status topic.
async fn online(rx: &mut edge_broker::LocalReceiver) {
    within("the node to come online", async {
        loop {
            let m = rx.recv().await.expect("watcher link open");
            let status = edge_proto::decode(&m.payload).map(|e| e.message);
            if !m.retain && matches!(status, Ok(Message::Status(NodeStatus { online: true }))) {
                return;
            }
        }
    })
    .await
}

/// Runs the agent until it is online, then stops it and waits until it has stopped (and closed its store).
async fn run_until_online(config: AgentConfig, watcher: &mut edge_broker::LocalReceiver) {
    while watcher.try_recv().is_some() {}
    let (stop, stop_rx) = watch::channel(false);
    let mut agent = tokio::spawn(edge_agent::run(config, stop_rx));
    tokio::select! {
        _ = online(watcher) => {}
        result = &mut agent => panic!("the agent ended before it was online: {result:?}"),
    }
    stop.send(true).unwrap();
    within("the agent to stop", agent).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_once_then_logs_in_as_itself() {
    let (broker, registry) = start().await;
    let cluster = KeyPair::generate().unwrap();
    let token = token_for(&registry, &cluster);
    let answer = Answer::Accept { signer: Box::new(cluster.clone()), offered: cluster.public().to_bytes() };
    let _controller = controller(&broker.handle(), registry.clone(), answer);
    let (watch_tx, mut watcher) = broker.handle().local_client("watcher").unwrap();
    watch_tx.subscribe(&Topics::new(PREFIX).node("pi-1", Channel::Status), QoS::AtLeastOnce).unwrap();
    let dir = tempfile::tempdir().unwrap();

    run_until_online(config("pi-1", broker.local_addr(), dir.path(), Some(&token)), &mut watcher).await;
    let identity = edge_agent::identity::load(dir.path()).unwrap().expect("the identity is stored");
    assert_eq!(identity.node, "pi-1");
    assert_eq!(identity.cluster_key, cluster.public().to_bytes());
    let registered: [u8; 32] = Sha256::digest(identity.password.as_bytes()).into();
    assert_eq!(registry.nodes.lock().unwrap().get("pi-1"), Some(&registered));
    let node_key = edge_agent::join::node_key(dir.path()).unwrap();
    let derived = MqttPassword::for_node(&node_key, &cluster.public(), "pi-1").unwrap();
    assert_eq!(identity.password, derived.as_str(), "the stored password is the derived one");
    assert!(dir.path().join("node.key").is_file());
    assert_eq!(registry.requests.load(Ordering::SeqCst), 1);

    // Started again without the token: it logs in as itself (the policy refuses anonymous clients).
    run_until_online(config("pi-1", broker.local_addr(), dir.path(), None), &mut watcher).await;
    // And with the token again: ignored, no second request.
    run_until_online(config("pi-1", broker.local_addr(), dir.path(), Some(&token)), &mut watcher).await;
    assert_eq!(registry.requests.load(Ordering::SeqCst), 1, "a joined node never joins again");
}

/// The agent's error when it runs with `answer` from the controller, and what its data directory holds then.
async fn refused_join(
    answer: impl FnOnce(&KeyPair) -> Answer,
    known: bool,
) -> (String, Option<edge_agent::identity::Identity>) {
    let (broker, registry) = start().await;
    let cluster = KeyPair::generate().unwrap();
    let token =
        if known { token_for(&registry, &cluster) } else { JoinToken::generate(cluster.fingerprint()).unwrap().0 };
    let _controller = controller(&broker.handle(), registry.clone(), answer(&cluster));
    let dir = tempfile::tempdir().unwrap();
    let (_stop, stop_rx) = watch::channel(false);
    let config = config("pi-1", broker.local_addr(), dir.path(), Some(&token));
    let e = within("the join to fail", edge_agent::run(config, stop_rx)).await.unwrap_err().to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    (e, edge_agent::identity::load(dir.path()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_token_is_refused_with_its_reason() {
    let (e, stored) = refused_join(|_| Answer::Refuse(JoinRefusal::Used), true).await;
    assert!(e.contains("token") && e.contains("already used"), "{e}");
    assert_eq!(stored, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_whose_key_the_token_does_not_pin_is_not_believed() {
    let impostor = KeyPair::generate().unwrap();
    let (e, stored) = refused_join(
        |_| Answer::Accept { signer: Box::new(impostor.clone()), offered: impostor.public().to_bytes() },
        true,
    )
    .await;
    assert!(e.contains(&impostor.fingerprint().to_string()), "{e}");
    assert!(e.contains("does not match the token's fingerprint"), "{e}");
    assert_eq!(stored, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_key_with_a_signature_by_another_is_not_believed() {
    let impostor = KeyPair::generate().unwrap();
    let (e, stored) =
        refused_join(|c| Answer::Accept { signer: Box::new(impostor.clone()), offered: c.public().to_bytes() }, true)
            .await;
    assert!(e.contains("not signed by the cluster key"), "{e}");
    assert_eq!(stored, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_broker_does_not_know_is_refused_at_connect() {
    let (e, stored) = refused_join(|_| Answer::Silent, false).await;
    assert_eq!(e, "join token refused: unknown token (the controller does not know it; was it deleted?)");
    assert_eq!(stored, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_controller_is_an_error_after_the_timeout() {
    let (broker, registry) = start().await;
    let cluster = KeyPair::generate().unwrap();
    let token = token_for(&registry, &cluster);
    let _controller = controller(&broker.handle(), registry.clone(), Answer::Silent);
    let dir = tempfile::tempdir().unwrap();
    let (_stop, mut stop_rx) = watch::channel(false);
    let config = config("pi-1", broker.local_addr(), dir.path(), None);
    let token = token.to_string();
    let join = edge_agent::join::join(&config, &token, Duration::from_millis(500), &mut stop_rx);
    let e = within("the join to time out", join).await.unwrap_err().to_string();
    assert!(e.contains("controller did not answer"), "{e}");
    assert_eq!(registry.requests.load(Ordering::SeqCst), 1, "the request did reach the controller");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_one_error_line_and_exits_1_for_a_bad_or_refused_token() {
    let (broker, registry) = start().await;
    let cluster = KeyPair::generate().unwrap();
    let token = token_for(&registry, &cluster);
    let _controller = controller(&broker.handle(), registry, Answer::Refuse(JoinRefusal::Expired));
    let dir = tempfile::tempdir().unwrap();
    let broker_url = format!("mqtt://{}", broker.local_addr());
    let token = token.to_string();
    for (join, expected) in
        [("EJ1abc", "error: --join: join token "), (token.as_str(), "error: join token refused: the token has expired")]
    {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_edge-agent"))
            .args(["--node", "pi-1", "--broker", &broker_url, "--join", join])
            .arg("--data")
            .arg(dir.path().join("data"))
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output();
        let out = within("the agent to exit", child).await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.starts_with(expected) && stderr.trim_end().lines().count() == 1, "{stderr}");
    }
    assert_eq!(edge_agent::identity::load(&dir.path().join("data")).unwrap(), None);
}

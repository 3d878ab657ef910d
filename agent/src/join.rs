//! The node's half of joining a cluster with a join token (the protocol is [`edge_proto::join`]'s).
//!
//! 1. The token is parsed; it pins the cluster key's fingerprint and carries the credential.
//! 2. The node key (`{data}/node.key`, made on the device, mode 0600) is loaded or created: its secret never
//!    leaves the device, only its public half is sent.
//! 3. The node connects as `join.<token id>` (password: the token secret in hex), subscribes to the reply
//!    topic, and once the subscription is acknowledged publishes the [`JoinRequest`]. It waits for the
//!    [`JoinReply`] at most a timeout ([`JOIN_TIMEOUT`]); a lost connection is retried (subscription and
//!    request again) with [`edge_link::Reconnect`]'s pacing within that time.
//! 4. [`check_reply`], without I/O: a refusal is an error naming the reason; an acceptance is believed only
//!    for this node's name, under a cluster key matching the token's fingerprint, with a valid signature
//!    (context `edge/join/v1`) over [`edge_proto::join::accepted_body`].
//! 5. Only then, knowing the cluster key, the node derives its MQTT password ([`edge_trust::MqttPassword`]:
//!    32 lowercase hex digits from the node key and the cluster key). The controller derives the same one;
//!    no password, not even a hash, is sent.
//!
//! What comes back is an [`Identity`]; storing it is the caller's ([`crate::identity::establish`]).
//! Every error reads as one line.

use std::path::Path;
use std::time::Duration;

use edge_link::{LinkOptions, Reconnect, Waited};
use edge_proto::join::{self as proto, JoinRefusal, JoinReply, JoinRequest};
use edge_proto::Message;
use edge_trust::{
    Context, Fingerprint, JoinToken, KeyError, KeyFileError, KeyPair, MqttPassword, PublicKey, Signed, TokenError,
};
use rumqttc::{ConnectReturnCode, ConnectionError, Event, Packet, QoS, SubscribeReasonCode};
use tokio::sync::watch;

use crate::config::AgentConfig;
use crate::identity::Identity;

/// How long a join waits for the controller's answer (connecting included).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The node key's file in the data directory.
pub const NODE_KEY_FILE: &str = "node.key";
/// How long the join connection gets to say DISCONNECT once the answer is in.
const GOODBYE: Duration = Duration::from_secs(1);

/// Why a join failed. Nothing is stored after any of them.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("--join: {0}")]
    Token(TokenError),
    #[error(transparent)]
    NodeKey(#[from] KeyFileError),
    #[error("cannot derive the MQTT password from the node key and the cluster key ({0})")]
    Password(edge_trust::AgreeError),
    /// The controller refused; also a CONNACK refusing the token's login (the broker does not know it).
    #[error("join token refused: {0}")]
    Refused(JoinRefusal),
    #[error("join refused: the controller accepted node {got:?}, not {asked:?}")]
    WrongNode { asked: String, got: String },
    #[error("join refused: the controller's key is not usable ({0})")]
    BadClusterKey(KeyError),
    #[error("cannot set up TLS to the broker: {0}")]
    Tls(String),
    #[error("join refused: the controller's key {offered} does not match the token's fingerprint {pinned}")]
    ClusterKeyMismatch { offered: Fingerprint, pinned: Fingerprint },
    #[error("join refused: the controller's acceptance is not signed by the cluster key")]
    BadSignature,
    #[error("the MQTT broker refused the join connection (return code {0:?})")]
    BrokerRefused(ConnectReturnCode),
    #[error("the MQTT broker refused the subscription to the join reply topic {0}")]
    SubscribeRefused(String),
    #[error("cannot reach the MQTT broker {broker} to join within {}s: {last}", timeout.as_secs_f32())]
    Unreachable { broker: String, timeout: Duration, last: String },
    #[error(
        "the controller did not answer the join request within {}s (is it running, with the same --topic-prefix?)",
        timeout.as_secs_f32()
    )]
    NoAnswer { timeout: Duration },
    #[error("join interrupted: the agent is shutting down")]
    Stopped,
}

/// Joins the cluster `token` names as `config.node`, through the broker of `config`, waiting at most
/// `timeout` (or until `shutdown` turns true). The data directory must exist (the node key goes there).
pub async fn join(
    config: &AgentConfig,
    token: &str,
    timeout: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Identity, JoinError> {
    let token = JoinToken::parse(token).map_err(JoinError::Token)?;
    let keys = node_key(&config.data_dir)?;
    let node_key = keys.public().to_bytes();
    let id = *token.id().as_bytes();
    let request =
        JoinRequest { token_id: id, token_secret: *token.secret().as_bytes(), node: config.node.clone(), node_key };
    let user = proto::join_username(&id);
    let mut link = LinkOptions::new(user.clone(), config.broker_host.clone(), config.broker_port)
        .credentials(user, proto::hex(token.secret().as_bytes()));
    if config.broker_tls {
        // The broker must be the cluster's before the token's secret goes to it.
        link = link.tls_pinned(*token.fingerprint().as_bytes()).map_err(|e| JoinError::Tls(e.to_string()))?;
    }
    let topics =
        Topics { request: proto::request_topic(&config.prefix, &id), reply: proto::reply_topic(&config.prefix, &id) };
    tracing::info!(node = %config.node, token = %token.id(), "joining the cluster");
    let reply = exchange(&link, &topics, edge_proto::encode(&Message::JoinRequest(request)), timeout, shutdown).await?;
    let cluster_key = check_reply(&token, &config.node, &node_key, reply)?;
    let password = password(&keys, &cluster_key, &config.node)?;
    Ok(Identity { node: config.node.clone(), cluster_key, password })
}

/// The node's key pair in `data_dir`, made there the first time.
pub fn node_key(data_dir: &Path) -> Result<KeyPair, KeyFileError> {
    KeyPair::load_or_create(&data_dir.join(NODE_KEY_FILE))
}

/// Checks the controller's answer to the join of `node` with `node_key` under `token`; on acceptance returns
/// the cluster key to pin. No I/O.
pub fn check_reply(
    token: &JoinToken,
    node: &str,
    node_key: &[u8; 32],
    reply: JoinReply,
) -> Result<[u8; 32], JoinError> {
    let (accepted, cluster_key, signature) = match reply {
        JoinReply::Refused(reason) => return Err(JoinError::Refused(reason)),
        JoinReply::Accepted { node, cluster_key, signature } => (node, cluster_key, signature),
    };
    if accepted != node {
        return Err(JoinError::WrongNode { asked: node.to_string(), got: accepted });
    }
    let key = PublicKey::from_bytes(&cluster_key).map_err(JoinError::BadClusterKey)?;
    if !token.fingerprint().matches(&key) {
        return Err(JoinError::ClusterKeyMismatch { offered: key.fingerprint(), pinned: token.fingerprint() });
    }
    let signature: [u8; 64] = signature.try_into().map_err(|_| JoinError::BadSignature)?;
    let body = proto::accepted_body(node, node_key, token.id().as_bytes());
    let max = body.len();
    edge_trust::verify(&key, Context::JOIN, max, &Signed::from_parts(body, signature))
        .map_err(|_| JoinError::BadSignature)?;
    Ok(cluster_key)
}

/// The node's MQTT password under the cluster key `check_reply` returned (the one the controller derives).
fn password(keys: &KeyPair, cluster_key: &[u8; 32], node: &str) -> Result<String, JoinError> {
    let cluster = PublicKey::from_bytes(cluster_key).map_err(JoinError::BadClusterKey)?;
    Ok(MqttPassword::for_node(keys, &cluster, node).map_err(JoinError::Password)?.into_string())
}

struct Topics {
    request: String,
    reply: String,
}

/// Connects, subscribes to the reply topic, publishes `request` once the subscription stands (again on
/// every new connection: the broker keeps nothing of a clean session), and returns the first join reply.
async fn exchange(
    link: &LinkOptions,
    topics: &Topics,
    request: Vec<u8>,
    timeout: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<JoinReply, JoinError> {
    let (client, mut eventloop) = edge_link::connect(link);
    let mut reconnect = Reconnect::new(link);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut connected = false;
    let mut last_error = String::from("no answer");
    let expired = |connected: bool, last: &str| {
        if connected {
            JoinError::NoAnswer { timeout }
        } else {
            let (host, port) = link.broker();
            JoinError::Unreachable { broker: format!("{host}:{port}"), timeout, last: last.to_string() }
        }
    };
    let result = loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = &mut deadline => break Err(expired(connected, &last_error)),
            _ = edge_link::stopped(shutdown) => break Err(JoinError::Stopped),
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                reconnect.connected();
                connected = true;
                let _ = client.try_subscribe(topics.reply.clone(), QoS::AtLeastOnce);
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                    break Err(JoinError::SubscribeRefused(topics.reply.clone()));
                }
                let _ = client.try_publish(topics.request.clone(), QoS::AtLeastOnce, false, request.clone());
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == topics.reply => {
                match edge_proto::decode(&p.payload) {
                    Ok(envelope) => match envelope.message {
                        Message::JoinReply(reply) => break Ok(reply),
                        other => tracing::debug!(?other, "unexpected message on the join reply topic ignored"),
                    },
                    Err(e) => tracing::warn!(error = %e, "undecodable join reply ignored"),
                }
            }
            Ok(_) => {}
            Err(ConnectionError::ConnectionRefused(code)) => match code {
                ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized => {
                    break Err(JoinError::Refused(JoinRefusal::Unknown));
                }
                // A broker at its bound, or shutting down: worth another try within the timeout.
                ConnectReturnCode::ServiceUnavailable => {
                    last_error = format!("the broker refused the connection ({code:?})");
                    let e = ConnectionError::ConnectionRefused(code);
                    match pause(&mut reconnect, &e, shutdown, &mut deadline).await {
                        Pause::Retry => {}
                        Pause::Stopped => break Err(JoinError::Stopped),
                        Pause::Expired => break Err(expired(connected, &last_error)),
                    }
                }
                code => break Err(JoinError::BrokerRefused(code)),
            },
            Err(e) => {
                last_error = e.to_string();
                match pause(&mut reconnect, &e, shutdown, &mut deadline).await {
                    Pause::Retry => {}
                    Pause::Stopped => break Err(JoinError::Stopped),
                    Pause::Expired => break Err(expired(connected, &last_error)),
                }
            }
        }
    };
    // Say goodbye, so the broker drops the join session now rather than at the keep-alive.
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(GOODBYE, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    result
}

/// How the wait between two connection attempts ended.
enum Pause {
    Retry,
    Stopped,
    Expired,
}

/// Waits as `reconnect` says after `error`, but never past the join's deadline.
async fn pause(
    reconnect: &mut Reconnect,
    error: &ConnectionError,
    shutdown: &mut watch::Receiver<bool>,
    deadline: &mut std::pin::Pin<&mut tokio::time::Sleep>,
) -> Pause {
    tokio::select! {
        waited = reconnect.wait(error, shutdown) => match waited {
            Waited::Retry => Pause::Retry,
            Waited::Shutdown => Pause::Stopped,
        },
        _ = deadline.as_mut() => Pause::Expired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_trust::sign;

    struct Case {
        cluster: KeyPair,
        token: JoinToken,
        node_key: [u8; 32],
    }

    fn case() -> Case {
        let cluster = KeyPair::from_secret_bytes(&[1; 32]);
        let (token, _) = JoinToken::generate(cluster.fingerprint()).unwrap();
        Case { cluster, token, node_key: KeyPair::from_secret_bytes(&[2; 32]).public().to_bytes() }
    }

    fn accepted(signer: &KeyPair, offered: &KeyPair, node: &str, c: &Case) -> JoinReply {
        let body = proto::accepted_body(node, &c.node_key, c.token.id().as_bytes());
        JoinReply::Accepted {
            node: node.into(),
            cluster_key: offered.public().to_bytes(),
            signature: sign(signer, Context::JOIN, body).signature().to_vec(),
        }
    }

    #[test]
    fn a_signed_acceptance_under_the_pinned_key_is_believed() {
        let c = case();
        let reply = accepted(&c.cluster, &c.cluster, "pi-1", &c);
        assert_eq!(check_reply(&c.token, "pi-1", &c.node_key, reply).unwrap(), c.cluster.public().to_bytes());
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        let c = case();
        let other = KeyPair::from_secret_bytes(&[3; 32]);
        let check = |reply| check_reply(&c.token, "pi-1", &c.node_key, reply).unwrap_err().to_string();

        let e = check(JoinReply::Refused(JoinRefusal::Used));
        assert!(e.starts_with("join token refused: the token was already used"), "{e}");
        let e = check(accepted(&c.cluster, &c.cluster, "pi-2", &c));
        assert!(e.contains("\"pi-2\"") && e.contains("\"pi-1\""), "{e}");
        let e = check(accepted(&other, &other, "pi-1", &c));
        assert!(e.contains(&other.fingerprint().to_string()) && e.contains(&c.token.fingerprint().to_string()), "{e}");
        // The right key offered, the signature by another.
        let e = check(accepted(&other, &c.cluster, "pi-1", &c));
        assert!(e.contains("not signed by the cluster key"), "{e}");
        let mut short = accepted(&c.cluster, &c.cluster, "pi-1", &c);
        if let JoinReply::Accepted { signature, .. } = &mut short {
            signature.pop();
        }
        assert!(matches!(check_reply(&c.token, "pi-1", &c.node_key, short), Err(JoinError::BadSignature)));
        // Signed for another node key: not ours.
        let e = check_reply(&c.token, "pi-1", &[5; 32], accepted(&c.cluster, &c.cluster, "pi-1", &c));
        assert!(matches!(e, Err(JoinError::BadSignature)));
        for e in [check(JoinReply::Refused(JoinRefusal::NameTaken)), check(accepted(&other, &other, "pi-1", &c))] {
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn the_password_is_the_one_the_controller_derives() {
        let c = case();
        let node = KeyPair::from_secret_bytes(&[2; 32]);
        let a = password(&node, &c.cluster.public().to_bytes(), "pi-1").unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{a}");
        let controller = MqttPassword::for_controller(&c.cluster, &node.public(), "pi-1").unwrap();
        assert_eq!(a, controller.as_str());
        assert_ne!(a, password(&node, &c.cluster.public().to_bytes(), "pi-2").unwrap());
    }
}

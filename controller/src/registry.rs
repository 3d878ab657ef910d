//! Who may use the embedded broker, and for what.
//!
//! The [`Registry`] holds the sha256 of every member's MQTT password and of every join token's secret; the
//! cluster's owner keeps it current as nodes join and are deleted and tokens are made and deleted. The broker
//! asks [`BrokerPolicy`] at every CONNECT, PUBLISH and SUBSCRIBE; the policy reads the registry under a short
//! read lock and never touches the cluster.
//!
//! Identities: `node/NAME` (username and client id both NAME, password checked), `join/ID` (username and client
//! id `join.ID`, password the token secret in hex), unjoined nodes (username and client id NAME, no password,
//! a name no member holds; refused with `--require-join`), and — only with `--mqtt-allow-anonymous` — anonymous
//! clients, which may do anything (the open mode the project had before identities; for tests and trusted
//! labs). The controller itself uses an in-process link, which bypasses the policy.
//!
//! What each may touch: a node publishes only on its own uplink topics (`{p}/nodes/NAME/{status,hello,
//! heartbeat,events,logs,module/req}`) and subscribes only to its own downlink topics, named exactly (no
//! wildcards); a joining node publishes only its join request and subscribes only to its join reply.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use edge_broker::{Credentials, Identity, Policy, Refusal};
use edge_proto::{join, Channel, Topics};
use sha2::{Digest, Sha256};

/// Password and secret hashes by member name and token id.
#[derive(Debug, Default)]
pub struct Registry {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    members: HashMap<String, [u8; 32]>,
    tokens: HashMap<String, [u8; 32]>,
}

impl Registry {
    pub fn set_member(&self, name: &str, password_sha256: [u8; 32]) {
        if let Ok(mut i) = self.inner.write() {
            i.members.insert(name.to_string(), password_sha256);
        }
    }

    pub fn remove_member(&self, name: &str) {
        if let Ok(mut i) = self.inner.write() {
            i.members.remove(name);
        }
    }

    pub fn set_token(&self, id: &str, secret_sha256: [u8; 32]) {
        if let Ok(mut i) = self.inner.write() {
            i.tokens.insert(id.to_string(), secret_sha256);
        }
    }

    pub fn remove_token(&self, id: &str) {
        if let Ok(mut i) = self.inner.write() {
            i.tokens.remove(id);
        }
    }

    pub fn is_member(&self, name: &str) -> bool {
        self.inner.read().is_ok_and(|i| i.members.contains_key(name))
    }

    fn check(&self, table: impl Fn(&Inner) -> Option<[u8; 32]>, presented: &[u8; 32]) -> bool {
        let Ok(inner) = self.inner.read() else { return false };
        // Constant-time enough: both sides are hashes of high-entropy secrets, compared whole.
        table(&inner).is_some_and(|stored| stored.iter().zip(presented).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0)
    }
}

/// The embedded broker's policy over a [`Registry`].
pub struct BrokerPolicy {
    registry: Arc<Registry>,
    topics: Topics,
    allow_anonymous: bool,
    /// Refuse nodes that never joined (`--require-join`). Without it, a client whose username and client id
    /// are the same valid node name that no member holds, and that sends no password, is admitted as that
    /// unjoined node, confined to its own topics like a member (agents started without a token keep working).
    require_join: bool,
}

impl BrokerPolicy {
    pub fn new(registry: Arc<Registry>, topics: Topics, allow_anonymous: bool, require_join: bool) -> BrokerPolicy {
        BrokerPolicy { registry, topics, allow_anonymous, require_join }
    }
}

const NODE: &str = "node/";
const JOIN: &str = "join/";

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A sha256 as stored in records (64 hex digits); `None` for anything else.
pub fn hash_from_hex(hex: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex, &mut hash).ok().map(|()| hash)
}

impl Policy for BrokerPolicy {
    fn connect(&self, c: &Credentials<'_>) -> Result<Identity, Refusal> {
        let Some(username) = c.username else {
            return if self.allow_anonymous { Ok(Identity::anonymous()) } else { Err(Refusal::NotAuthorized) };
        };
        // The client id is bound to the username: nobody logs in as one identity under another's id.
        if c.client_id != username {
            return Err(Refusal::BadClientId);
        }
        let Some(password) = c.password else {
            let unjoined = !self.require_join
                && !username.starts_with(join::JOIN_USER_PREFIX)
                && edge_proto::validate_name(username).is_ok()
                && !self.registry.is_member(username);
            return if unjoined {
                Ok(Identity::principal(format!("{NODE}{username}")))
            } else {
                Err(Refusal::BadCredentials)
            };
        };
        if let Some(id) = username.strip_prefix(join::JOIN_USER_PREFIX) {
            // The password is the token secret in hex; the registry holds the secret's sha256.
            let secret = hex::decode(password).map_err(|_| Refusal::BadCredentials)?;
            if !self.registry.check(|i| i.tokens.get(id).copied(), &sha256(&secret)) {
                return Err(Refusal::BadCredentials);
            }
            return Ok(Identity::principal(format!("{JOIN}{id}")));
        }
        if !self.registry.check(|i| i.members.get(username).copied(), &sha256(password)) {
            return Err(Refusal::BadCredentials);
        }
        Ok(Identity::principal(format!("{NODE}{username}")))
    }

    fn may_publish(&self, identity: &Identity, topic: &str) -> bool {
        match identity.name() {
            None => self.allow_anonymous,
            Some(name) => {
                if let Some(node) = name.strip_prefix(NODE) {
                    return self.topics.parse(topic).is_some_and(|(n, ch)| n == node && Channel::UPLINK.contains(&ch));
                }
                name.strip_prefix(JOIN)
                    .is_some_and(|id| join::parse_topic(self.topics.prefix(), topic) == Some((id, "request")))
            }
        }
    }

    fn may_subscribe(&self, identity: &Identity, filter: &str) -> bool {
        match identity.name() {
            None => self.allow_anonymous,
            Some(name) => {
                // Named topics only: a wildcard could reach past the identity's own.
                if filter.contains(['+', '#']) {
                    return false;
                }
                if let Some(node) = name.strip_prefix(NODE) {
                    return self
                        .topics
                        .parse(filter)
                        .is_some_and(|(n, ch)| n == node && Channel::DOWNLINK.contains(&ch));
                }
                name.strip_prefix(JOIN)
                    .is_some_and(|id| join::parse_topic(self.topics.prefix(), filter) == Some((id, "reply")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds<'a>(client_id: &'a str, username: Option<&'a str>, password: Option<&'a [u8]>) -> Credentials<'a> {
        Credentials { client_id, username, password, peer: "127.0.0.1:1".parse().unwrap() }
    }

    fn policy(anonymous: bool) -> BrokerPolicy {
        let registry = Arc::new(Registry::default());
        registry.set_member("a", sha256(b"pw-a"));
        registry.set_member("b", sha256(b"pw-b"));
        registry.set_token("00112233445566ff", sha256(&[7; 16]));
        BrokerPolicy::new(registry, Topics::default(), anonymous, true)
    }

    #[test]
    fn only_known_credentials_connect_and_the_client_id_is_the_username() {
        let p = policy(false);
        assert_eq!(p.connect(&creds("x", None, None)), Err(Refusal::NotAuthorized));
        assert!(policy(true).connect(&creds("x", None, None)).is_ok());
        assert_eq!(p.connect(&creds("a", Some("a"), Some(b"pw-a"))), Ok(Identity::principal("node/a")));
        assert_eq!(p.connect(&creds("a", Some("a"), Some(b"pw-b"))), Err(Refusal::BadCredentials));
        assert_eq!(p.connect(&creds("b", Some("a"), Some(b"pw-a"))), Err(Refusal::BadClientId));
        assert_eq!(p.connect(&creds("c", Some("c"), Some(b"pw-a"))), Err(Refusal::BadCredentials));
        let join = "join.00112233445566ff";
        let secret = hex::encode([7u8; 16]);
        assert_eq!(
            p.connect(&creds(join, Some(join), Some(secret.as_bytes()))),
            Ok(Identity::principal("join/00112233445566ff"))
        );
        assert_eq!(p.connect(&creds(join, Some(join), Some(b"00"))), Err(Refusal::BadCredentials));
        assert_eq!(p.connect(&creds(join, Some(join), Some(b"not hex"))), Err(Refusal::BadCredentials));
    }

    #[test]
    fn unjoined_nodes_are_admitted_only_under_free_names_and_only_if_allowed() {
        let registry = Arc::new(Registry::default());
        registry.set_member("a", sha256(b"pw-a"));
        let p = BrokerPolicy::new(registry.clone(), Topics::default(), false, false);
        assert_eq!(p.connect(&creds("n1", Some("n1"), None)), Ok(Identity::principal("node/n1")));
        assert_eq!(p.connect(&creds("a", Some("a"), None)), Err(Refusal::BadCredentials), "a member's name");
        assert_eq!(p.connect(&creds("n1", Some("n2"), None)), Err(Refusal::BadClientId));
        assert_eq!(p.connect(&creds("N/1", Some("N/1"), None)), Err(Refusal::BadCredentials));
        let join = "join.00112233445566ff";
        assert_eq!(p.connect(&creds(join, Some(join), None)), Err(Refusal::BadCredentials));
        assert_eq!(p.connect(&creds("x", None, None)), Err(Refusal::NotAuthorized), "anonymous");
        let strict = BrokerPolicy::new(registry, Topics::default(), false, true);
        assert_eq!(strict.connect(&creds("n1", Some("n1"), None)), Err(Refusal::BadCredentials));
    }

    #[test]
    fn a_node_touches_only_its_own_topics() {
        let p = policy(false);
        let t = Topics::default();
        let a = Identity::principal("node/a");
        for ch in Channel::UPLINK {
            assert!(p.may_publish(&a, &t.node("a", ch)), "{ch:?}");
            assert!(!p.may_publish(&a, &t.node("b", ch)), "{ch:?}");
        }
        for ch in Channel::DOWNLINK {
            assert!(!p.may_publish(&a, &t.node("a", ch)), "{ch:?}");
            assert!(p.may_subscribe(&a, &t.node("a", ch)), "{ch:?}");
            assert!(!p.may_subscribe(&a, &t.node("b", ch)), "{ch:?}");
        }
        for filter in ["#", "edge/v1/nodes/+/spec", "edge/v1/nodes/a/#", "edge/v1/nodes/a/+"] {
            assert!(!p.may_subscribe(&a, filter), "{filter}");
        }
        assert!(!p.may_subscribe(&a, &t.node("a", Channel::Heartbeat)));
    }

    #[test]
    fn a_joining_node_touches_only_its_join_topics() {
        let p = policy(false);
        let j = Identity::principal("join/00112233445566ff");
        let id = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xff];
        let other = [1; 8];
        assert!(p.may_publish(&j, &join::request_topic("edge/v1", &id)));
        assert!(!p.may_publish(&j, &join::reply_topic("edge/v1", &id)));
        assert!(!p.may_publish(&j, &join::request_topic("edge/v1", &other)));
        assert!(p.may_subscribe(&j, &join::reply_topic("edge/v1", &id)));
        assert!(!p.may_subscribe(&j, &join::reply_topic("edge/v1", &other)));
        assert!(!p.may_subscribe(&j, "edge/v1/join/+/reply"));
        assert!(!p.may_publish(&j, &Topics::default().node("a", Channel::Hello)));
    }
}

//! Authentic reports against the cluster core and a real store: members joined over the wire (a token, a
//! join request), their reports tagged as the agent tags them; untagged, forged, replayed and other-node-key
//! messages are dropped and counted for the node, good ones change state, non-members need no tag, and a
//! restarted controller still refuses what was accepted before its last save.

use std::sync::Arc;

use edge_api::TokenRequest;
use edge_proto::auth::{message_bytes, ReportAuth};
use edge_proto::join::{JoinReply, JoinRequest};
use edge_proto::{Channel, Heartbeat, Message, NodeStatus, Topics};
use edge_trust::{JoinToken, KeyPair, ReportKey};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::{Cluster, Publish, Timing, Trust};
use crate::registry::Registry;
use crate::store::Store;

fn cluster_key() -> Arc<KeyPair> {
    Arc::new(KeyPair::from_secret_bytes(&[7; 32]))
}

fn open(dir: &std::path::Path) -> (Cluster, UnboundedReceiver<Publish>) {
    let (tx, out) = unbounded_channel();
    let mut cluster = Cluster::load(Store::open(dir).unwrap(), Topics::new("edge/v1"), Timing::default(), tx).unwrap();
    cluster.set_trust(Trust {
        key: cluster_key(),
        registry: Arc::new(Registry::default()),
        broker: None,
        open: true,
        mosquitto: None,
    });
    (cluster, out)
}

/// A node as its agent would be: its key, its report key, its counter.
struct Node {
    name: &'static str,
    key: KeyPair,
    report: ReportKey,
    counter: u64,
}

impl Node {
    fn new(name: &'static str, seed: u8) -> Node {
        let key = KeyPair::from_secret_bytes(&[seed; 32]);
        let report = ReportKey::for_node(&key, &cluster_key().public(), name).unwrap();
        Node { name, key, report, counter: 1000 }
    }

    /// `message` for `channel`, tagged with the next counter.
    fn tagged(&mut self, channel: Channel, message: &Message) -> Vec<u8> {
        self.counter += 1;
        let auth = auth_for(&self.report, channel, self.name, self.counter, message);
        edge_proto::encode_with_auth(message, Some(&auth))
    }
}

fn auth_for(key: &ReportKey, channel: Channel, name: &str, counter: u64, message: &Message) -> Vec<u8> {
    let context = super::reports::context(channel).unwrap();
    let tag = key.tag(context, name, counter, &message_bytes(message));
    ReportAuth { counter, tag: *tag.as_bytes() }.to_bytes().to_vec()
}

/// Joins `node` with a fresh token, over the wire as the agent does.
fn join(cluster: &mut Cluster, out: &mut UnboundedReceiver<Publish>, node: &Node) {
    let created = cluster
        .create_token(TokenRequest { ttl_ms: None, uses: None, node: None, labels: Default::default() })
        .unwrap();
    let token = JoinToken::parse(&created.token).unwrap();
    let request = JoinRequest {
        token_id: *token.id().as_bytes(),
        token_secret: *token.secret().as_bytes(),
        node: node.name.into(),
        node_key: node.key.public().to_bytes(),
    };
    let id = edge_proto::join::hex(token.id().as_bytes());
    cluster.on_join(&id, &edge_proto::encode(&Message::JoinRequest(request)));
    let reply = std::iter::from_fn(|| out.try_recv().ok())
        .find_map(|p| match edge_proto::decode(&p.payload).ok()?.message {
            Message::JoinReply(r) => Some(r),
            _ => None,
        })
        .unwrap();
    assert!(matches!(reply, JoinReply::Accepted { .. }), "{reply:?}");
}

fn hello() -> Message {
    Message::Hello(super::tests::hello(9, 0))
}

fn heartbeat(applied_generation: u64) -> Message {
    Message::Heartbeat(Heartbeat {
        at_ms: 1,
        applied_generation,
        instances: vec![],
        events_dropped: 0,
        last_event_seq: 0,
        oldest_unacked_seq: 0,
        last_outage: None,
        store_id: 9,
    })
}

fn send(cluster: &mut Cluster, node: &str, channel: Channel, payload: &[u8]) {
    cluster.on_uplink(node, channel, payload);
    cluster.flush();
}

fn rejected(cluster: &Cluster, node: &str) -> u64 {
    cluster.node_view(node).unwrap().rejected_reports
}

fn generation(cluster: &Cluster, node: &str) -> u64 {
    cluster.node_view(node).unwrap().generation
}

#[test]
fn a_members_untagged_forged_replayed_and_other_key_reports_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, mut out) = open(dir.path());
    let mut n1 = Node::new("n1", 1);
    let mut n2 = Node::new("n2", 2);
    join(&mut c, &mut out, &n1);
    join(&mut c, &mut out, &n2);

    // An untagged hello from a member does not even make the node appear.
    send(&mut c, "n1", Channel::Hello, &edge_proto::encode(&hello()));
    assert!(c.node_view("n1").is_err(), "a member's untagged hello is not believed");
    assert_eq!(c.reports.rejected("n1"), 1);

    let good = n1.tagged(Channel::Hello, &hello());
    send(&mut c, "n1", Channel::Hello, &good);
    assert_eq!(c.counters.hellos, 1);
    assert_eq!(rejected(&c, "n1"), 1);
    send(&mut c, "n1", Channel::Heartbeat, &n1.tagged(Channel::Heartbeat, &heartbeat(1)));
    assert_eq!((generation(&c, "n1"), c.counters.heartbeats), (1, 1));

    // Untagged.
    send(&mut c, "n1", Channel::Heartbeat, &edge_proto::encode(&heartbeat(66)));
    // A garbage tag, and one of the wrong length.
    let mut garbage = ReportAuth { counter: n1.counter + 1, tag: [0xa5; 16] }.to_bytes().to_vec();
    send(&mut c, "n1", Channel::Heartbeat, &edge_proto::encode_with_auth(&heartbeat(66), Some(&garbage)));
    garbage.pop();
    send(&mut c, "n1", Channel::Heartbeat, &edge_proto::encode_with_auth(&heartbeat(66), Some(&garbage)));
    // A replay of n1's own good hello.
    send(&mut c, "n1", Channel::Hello, &good);
    // Tagged by n2 with its own key, published on n1's topic (as n1), and under n2's name.
    let theirs = n2.tagged(Channel::Heartbeat, &heartbeat(66));
    send(&mut c, "n1", Channel::Heartbeat, &theirs);
    let posing = auth_for(&n2.report, Channel::Heartbeat, "n1", 5_000, &heartbeat(66));
    send(&mut c, "n1", Channel::Heartbeat, &edge_proto::encode_with_auth(&heartbeat(66), Some(&posing)));
    // A good heartbeat's tag on the hello channel (another context).
    let n1_heartbeat = n1.tagged(Channel::Heartbeat, &heartbeat(66));
    send(&mut c, "n1", Channel::Hello, &n1_heartbeat);

    assert_eq!(rejected(&c, "n1"), 1 + 7);
    assert_eq!((generation(&c, "n1"), c.counters.hellos, c.counters.heartbeats), (1, 1, 1), "nothing believed");
    assert_eq!(c.reports.rejected("n2"), 0, "what was refused counts for the node it claimed to be");

    // The node's own next report still passes (forgeries did not move its window) and counts.
    send(&mut c, "n1", Channel::Heartbeat, &n1.tagged(Channel::Heartbeat, &heartbeat(2)));
    assert_eq!((generation(&c, "n1"), c.counters.heartbeats), (2, 2));
    // n2, on its own topic, is fine.
    send(&mut c, "n2", Channel::Hello, &n2.tagged(Channel::Hello, &hello()));
    assert_eq!(rejected(&c, "n2"), 0);

    // Status is never tagged: a member's is taken as is.
    send(&mut c, "n1", Channel::Status, &edge_proto::encode(&Message::Status(NodeStatus { online: true })));
    assert_eq!(rejected(&c, "n1"), 8);
}

#[test]
fn non_members_need_no_tag_and_a_deleted_node_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, mut out) = open(dir.path());
    send(&mut c, "open-1", Channel::Hello, &edge_proto::encode(&hello()));
    send(&mut c, "open-1", Channel::Heartbeat, &edge_proto::encode(&heartbeat(3)));
    assert_eq!((generation(&c, "open-1"), rejected(&c, "open-1")), (3, 0));

    let mut n1 = Node::new("n1", 1);
    join(&mut c, &mut out, &n1);
    send(&mut c, "n1", Channel::Hello, &n1.tagged(Channel::Hello, &hello()));
    send(&mut c, "n1", Channel::Heartbeat, &edge_proto::encode(&heartbeat(3)));
    assert_eq!(rejected(&c, "n1"), 1);
    c.delete_node("n1", true).unwrap();
    assert_eq!(c.reports.rejected("n1"), 0);
    // Joined again (same key): its counters start again with it.
    join(&mut c, &mut out, &n1);
    n1.counter = 0;
    send(&mut c, "n1", Channel::Hello, &n1.tagged(Channel::Hello, &hello()));
    assert_eq!(rejected(&c, "n1"), 0);
}

#[test]
fn a_restarted_controller_refuses_reports_up_to_the_saved_counter() {
    let dir = tempfile::tempdir().unwrap();
    let mut n1 = Node::new("n1", 1);
    let (old_hello, old_heartbeat, late) = {
        let (mut c, mut out) = open(dir.path());
        join(&mut c, &mut out, &n1);
        let h = n1.tagged(Channel::Hello, &hello());
        send(&mut c, "n1", Channel::Hello, &h);
        let hb = n1.tagged(Channel::Heartbeat, &heartbeat(1));
        send(&mut c, "n1", Channel::Heartbeat, &hb);
        // Heartbeats alone write the record every SAVE_EVERY accepted reports (the hello was the first).
        for _ in 2..super::reports::SAVE_EVERY {
            send(&mut c, "n1", Channel::Heartbeat, &n1.tagged(Channel::Heartbeat, &heartbeat(1)));
        }
        assert_eq!(c.nodes["n1"].report_counter, n1.counter);
        // Accepted after the last write: in memory only.
        let late = n1.tagged(Channel::Heartbeat, &heartbeat(1));
        send(&mut c, "n1", Channel::Heartbeat, &late);
        (h, hb, late)
    };
    let (mut c, _out) = open(dir.path());
    assert_eq!(c.nodes["n1"].report_counter, n1.counter - 1, "persisted with the record's last write");
    send(&mut c, "n1", Channel::Hello, &old_hello);
    send(&mut c, "n1", Channel::Heartbeat, &old_heartbeat);
    assert_eq!(rejected(&c, "n1"), 2, "captured before the last write: refused");
    // The stated limit: what was accepted after the record's last write plays back once.
    send(&mut c, "n1", Channel::Heartbeat, &late);
    send(&mut c, "n1", Channel::Heartbeat, &late);
    assert_eq!(rejected(&c, "n1"), 3);
    send(&mut c, "n1", Channel::Heartbeat, &n1.tagged(Channel::Heartbeat, &heartbeat(4)));
    assert_eq!((rejected(&c, "n1"), generation(&c, "n1")), (3, 4));
}

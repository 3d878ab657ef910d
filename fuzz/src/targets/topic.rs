//! Topic parsing: [`Topics::parse`] (`{prefix}/nodes/{node}/{channel}`) and `edge_proto::join::parse_topic`
//! (`{prefix}/join/{id}/{request|reply}`), the first thing either side does with a publish.
//!
//! Input: `PREFIX\nTOPIC` (no newline: the default prefix and the whole input as the topic).
//! Invariants: whatever parses, the builders rebuild exactly (so a parsed node name is the one in the topic,
//! never a neighbour's); whatever the builders make, parses back to what they were given.

use edge_proto::join::{hex, parse_topic, request_topic, TOKEN_ID_LEN};
use edge_proto::topic::DEFAULT_PREFIX;
use edge_proto::{Channel, Topics};

use super::{text, Target};

pub const TARGET: Target = Target {
    name: "topic",
    about: "Topics::parse and join::parse_topic",
    run,
    dict: &[
        b"/nodes/",
        b"/join/",
        b"/request",
        b"/reply",
        b"status",
        b"hello",
        b"heartbeat",
        b"spec",
        b"events",
        b"logs",
        b"module/req",
        b"module/chunk",
        b"ack",
        b"edge/v1",
        b"/",
        b"+",
        b"#",
        b"\n",
    ],
    max_len: 512,
};

fn run(data: &[u8]) -> bool {
    let input = text(data);
    let (prefix, topic) = input.split_once('\n').unwrap_or((DEFAULT_PREFIX, &input));
    let topics = Topics::new(prefix);
    let mut accepted = false;
    if let Some((node, channel)) = topics.parse(topic) {
        assert!(!node.is_empty() && !node.contains('/'), "node {node:?} from {topic:?}");
        assert_eq!(topics.node(node, channel), topic, "parse then build differs");
        accepted = true;
    }
    if let Some((id, kind)) = parse_topic(prefix, topic) {
        assert_eq!(format!("{}/join/{id}/{kind}", prefix.trim_end_matches('/')), topic);
        accepted = true;
    }
    // The builders, with names and ids drawn from the input.
    let node = topic.split('/').find(|n| !n.is_empty()).unwrap_or("n");
    for channel in Channel::ALL {
        assert_eq!(topics.parse(&topics.node(node, channel)), Some((node, channel)), "{prefix:?} {node:?}");
    }
    let mut id = [0u8; TOKEN_ID_LEN];
    for (slot, b) in id.iter_mut().zip(data) {
        *slot = *b;
    }
    let built = request_topic(prefix, &id);
    assert_eq!(parse_topic(prefix, &built), Some((hex(&id).as_str(), "request")), "{built:?}");
    accepted
}

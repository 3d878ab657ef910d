//! Bytes on the wire per heartbeat of a microcontroller node, built the way the core builds them: an
//! `edge-proto` envelope (postcard) around `Message::Heartbeat`, tagged with the node's report key, in an MQTT
//! 3.1.1 PUBLISH (QoS 0) from the core's own codec. `firmware/check.sh` runs it for BENCHMARKS.md.
//!
//! `cargo run --example wire_budget` (host; the figures do not depend on the target).

use edge_firmware::mqtt::{self, Publish, QoS};
use edge_proto::auth::{message_bytes, ReportAuth};
use edge_proto::{Channel, Heartbeat, InstanceState, InstanceStatus, Message, Topics};
use edge_trust::{Context, ReportKey};

/// A default node name: board and 8-byte chip id, as `edge_board_glue::node_name` makes it.
const NODE: &str = "pico-w-e6614c311b6d5c2a";

fn main() {
    let topics = Topics::new(edge_proto::topic::DEFAULT_PREFIX);
    let topic = topics.node(NODE, Channel::Heartbeat);
    let key = ReportKey::from_bytes(&[7; 32]);
    // Counters and times well past their first bytes, as on a node that has run for a while.
    let idle = Heartbeat {
        at_ms: 1_767_225_600_000,
        applied_generation: 12,
        instances: Vec::new(),
        events_dropped: 0,
        last_event_seq: 340,
        oldest_unacked_seq: 0,
        last_outage: None,
        store_id: 0x1234_5678_9abc_def0,
    };
    let one = Heartbeat {
        instances: vec![InstanceStatus {
            id: "blink-x7k2q".into(),
            state: InstanceState::Running,
            restarts: 0,
            started_at_ms: Some(1_767_225_000_000),
            exit_code: None,
            reason: None,
        }],
        ..idle.clone()
    };
    println!("heartbeat of node {NODE:?} on {topic:?} (QoS 0, tagged):");
    for (what, body) in [("idle (no instance)", idle), ("one instance running", one)] {
        let message = Message::Heartbeat(body);
        let counter = 1u64 << 32 | 77;
        let tag = key.tag(Context::HEARTBEAT, NODE, counter, &message_bytes(&message));
        let auth = ReportAuth { counter, tag: *tag.as_bytes() }.to_bytes();
        let payload = edge_proto::encode_with_auth(&message, Some(&auth));
        let mut packet = [0u8; 1024];
        let p = Publish { topic: &topic, payload: &payload, qos: QoS::AtMostOnce, retain: false, pkid: 0 };
        let total = mqtt::publish(&mut packet, &p).expect("a heartbeat fits 1 KiB");
        println!(
            "  {what:<22} envelope {:>3} B (message {:>3} B + auth {} B), MQTT PUBLISH {:>3} B",
            payload.len(),
            message_bytes(&message).len(),
            auth.len(),
            total
        );
    }
    let mut ping = [0u8; 8];
    let n = mqtt::pingreq(&mut ping).expect("2 bytes");
    println!("  keep-alive: PINGREQ {n} B up, PINGRESP 2 B down, every {} s", edge_proto::timing::KEEP_ALIVE.as_secs());
}

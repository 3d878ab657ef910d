//! The MQTT topic tree: `{prefix}/nodes/{node}/{channel}`.
//!
//! | channel        | direction | QoS | retained | payload                  |
//! |----------------|-----------|-----|----------|--------------------------|
//! | `status`       | N → C     | 1   | yes      | `NodeStatus` (Last Will) |
//! | `hello`        | N → C     | 1   | no       | `Hello`                  |
//! | `heartbeat`    | N → C     | 0   | no       | `Heartbeat`              |
//! | `spec`         | C → N     | 1   | yes      | `NodeSpec`               |
//! | `events`       | N → C     | 1   | no       | `Events`                 |
//! | `logs`         | N → C     | 0   | no       | `Logs`                   |
//! | `module/req`   | N → C     | 1   | no       | `ModuleRequest`          |
//! | `module/chunk` | C → N     | 1   | no       | `ModuleReply`            |
//! | `ack`          | C → N     | 1   | no       | `EventsAck`, `HelloRequest` |

use alloc::format;
use alloc::string::String;

/// The default topic prefix.
pub const DEFAULT_PREFIX: &str = "edge/v1";

/// One kind of traffic for one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Status,
    Hello,
    Heartbeat,
    Spec,
    Events,
    Logs,
    ModuleRequest,
    ModuleChunk,
    Ack,
}

impl Channel {
    pub const ALL: [Channel; 9] = [
        Channel::Status,
        Channel::Hello,
        Channel::Heartbeat,
        Channel::Spec,
        Channel::Events,
        Channel::Logs,
        Channel::ModuleRequest,
        Channel::ModuleChunk,
        Channel::Ack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Status => "status",
            Channel::Hello => "hello",
            Channel::Heartbeat => "heartbeat",
            Channel::Spec => "spec",
            Channel::Events => "events",
            Channel::Logs => "logs",
            Channel::ModuleRequest => "module/req",
            Channel::ModuleChunk => "module/chunk",
            Channel::Ack => "ack",
        }
    }

    /// Channels the controller publishes on (and the agent subscribes to).
    pub const DOWNLINK: [Channel; 3] = [Channel::Spec, Channel::ModuleChunk, Channel::Ack];

    /// Channels the agent publishes on (and the controller subscribes to).
    pub const UPLINK: [Channel; 6] =
        [Channel::Status, Channel::Hello, Channel::Heartbeat, Channel::Events, Channel::Logs, Channel::ModuleRequest];
}

/// Topic builder and parser for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// `prefix` without a trailing slash, e.g. `edge/v1`.
    pub fn new(prefix: &str) -> Topics {
        Topics { prefix: String::from(prefix.trim_end_matches('/')) }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The topic of `channel` for `node`.
    pub fn node(&self, node: &str, channel: Channel) -> String {
        format!("{}/nodes/{}/{}", self.prefix, node, channel.as_str())
    }

    /// A filter matching `channel` for every node.
    pub fn all_nodes(&self, channel: Channel) -> String {
        format!("{}/nodes/+/{}", self.prefix, channel.as_str())
    }

    /// Splits a topic into its node and channel; `None` for topics outside this tree.
    pub fn parse<'t>(&self, topic: &'t str) -> Option<(&'t str, Channel)> {
        let rest = topic.strip_prefix(self.prefix.as_str())?.strip_prefix("/nodes/")?;
        let (node, channel) = rest.split_once('/')?;
        if node.is_empty() {
            return None;
        }
        let channel = Channel::ALL.into_iter().find(|c| c.as_str() == channel)?;
        Some((node, channel))
    }
}

impl Default for Topics {
    fn default() -> Self {
        Topics::new(DEFAULT_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_every_channel() {
        let t = Topics::new("edge/v1/");
        for c in Channel::ALL {
            let topic = t.node("dev-1", c);
            assert_eq!(t.parse(&topic), Some(("dev-1", c)), "{topic}");
        }
        assert_eq!(t.node("n", Channel::ModuleChunk), "edge/v1/nodes/n/module/chunk");
        assert_eq!(t.all_nodes(Channel::Heartbeat), "edge/v1/nodes/+/heartbeat");
    }

    #[test]
    fn ignores_foreign_topics() {
        let t = Topics::default();
        for bad in [
            "other/nodes/a/hello",
            "edge/v1/nodes//hello",
            "edge/v1/nodes/a/nope",
            "edge/v1/nodes/a",
            "edge/v1x/nodes/a/hello",
        ] {
            assert_eq!(t.parse(bad), None, "{bad}");
        }
    }
}

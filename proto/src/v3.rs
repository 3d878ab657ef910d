//! Protocol 3, frozen: the messages a peer one version behind sends and understands.
//!
//! A controller of protocol N serves agents of N and N − 1 (see [`crate::envelope`]). These are protocol 3's
//! shapes where they differ from protocol 4's; every other body is shared and pinned by the golden vectors of
//! both versions (`tests` below and in [`crate::envelope`]). When protocol 5 comes, this module is deleted and
//! protocol 4's shapes move here.
//!
//! Differences from protocol 4: `Heartbeat` has no `store_id`; `EventsAck` is a bare sequence number;
//! `NodeSpec` has no `issuer`.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::message::{
    self, Event, Hello, InstanceSpec, InstanceStatus, LogLine, ModuleReply, ModuleRequest, NodeStatus, Outage,
};

pub const VERSION: u16 = 3;

/// Protocol 3's `Message`: the same variants in the same order as protocol 4's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    Hello(Hello),
    Heartbeat(Heartbeat),
    Spec(NodeSpec),
    Events(Vec<Event>),
    Logs(Vec<LogLine>),
    ModuleRequest(ModuleRequest),
    ModuleReply(ModuleReply),
    Status(NodeStatus),
    EventsAck(u64),
    HelloRequest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub at_ms: u64,
    pub applied_generation: u64,
    pub instances: Vec<InstanceStatus>,
    pub events_dropped: u64,
    pub last_event_seq: u64,
    pub oldest_unacked_seq: u64,
    pub last_outage: Option<Outage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub generation: u64,
    pub instances: Vec<InstanceSpec>,
}

/// Protocol 3's envelope (the same layout as protocol 4's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u16,
    pub message: Message,
    pub auth: Option<Vec<u8>>,
}

impl From<Message> for message::Message {
    /// A protocol 3 message as protocol 4 sees it: fields protocol 3 lacks are 0 ("not said").
    fn from(m: Message) -> Self {
        use message::Message as M;
        match m {
            Message::Hello(h) => M::Hello(h),
            Message::Heartbeat(h) => M::Heartbeat(message::Heartbeat {
                at_ms: h.at_ms,
                applied_generation: h.applied_generation,
                instances: h.instances,
                events_dropped: h.events_dropped,
                last_event_seq: h.last_event_seq,
                oldest_unacked_seq: h.oldest_unacked_seq,
                last_outage: h.last_outage,
                store_id: 0,
            }),
            Message::Spec(s) => {
                M::Spec(message::NodeSpec { issuer: 0, generation: s.generation, instances: s.instances })
            }
            Message::Events(e) => M::Events(e),
            Message::Logs(l) => M::Logs(l),
            Message::ModuleRequest(r) => M::ModuleRequest(r),
            Message::ModuleReply(r) => M::ModuleReply(r),
            Message::Status(s) => M::Status(s),
            Message::EventsAck(up_to) => M::EventsAck(message::EventsAck { store_id: 0, up_to }),
            Message::HelloRequest => M::HelloRequest,
        }
    }
}

impl From<&message::Message> for Message {
    /// A protocol 4 message for a protocol 3 peer: fields it does not know are left out.
    fn from(m: &message::Message) -> Self {
        use message::Message as M;
        match m.clone() {
            M::Hello(h) => Message::Hello(h),
            M::Heartbeat(h) => Message::Heartbeat(Heartbeat {
                at_ms: h.at_ms,
                applied_generation: h.applied_generation,
                instances: h.instances,
                events_dropped: h.events_dropped,
                last_event_seq: h.last_event_seq,
                oldest_unacked_seq: h.oldest_unacked_seq,
                last_outage: h.last_outage,
            }),
            M::Spec(s) => Message::Spec(NodeSpec { generation: s.generation, instances: s.instances }),
            M::Events(e) => Message::Events(e),
            M::Logs(l) => Message::Logs(l),
            M::ModuleRequest(r) => Message::ModuleRequest(r),
            M::ModuleReply(r) => Message::ModuleReply(r),
            M::Status(s) => Message::Status(s),
            M::EventsAck(a) => Message::EventsAck(a.up_to),
            M::HelloRequest => Message::HelloRequest,
            // Never sent to protocol 3: joining is newer, and a protocol 3 agent never asks; usage goes only from
            // nodes to the controller. A harmless request stands in so the conversion stays total.
            M::JoinRequest(_) | M::JoinReply(_) | M::Usage(_) => Message::HelloRequest,
        }
    }
}

//! The wire contract shared by the controller, the agents and the firmware.
//!
//! `no_std` + `alloc`, so a microcontroller speaks exactly the same bytes as a Raspberry Pi.
//!
//! Layout:
//! - [`topic`]: the MQTT topic tree (`{prefix}/nodes/{node}/{channel}`), builders and a parser.
//! - [`message`]: every message body (hello, heartbeat, spec, events, logs, module transfer, status).
//! - [`envelope`]: the versioned envelope every payload travels in, with room for an authentication tag.
//! - [`auth`]: what the cluster key signs (specs, artifacts) and what a node's report tag covers.
//! - [`join`]: joining with a token (request, reply, topics).
//! - [`mcu`]: the host ABI of modules for microcontroller nodes (wasmi), shared by the controller's validator
//!   and the firmware, and what such an instance needs of a node's RAM.
//! - [`broker`]: broker URLs (`mqtt://HOST:PORT`) as users write them.
//! - [`quantity`]: Kubernetes-style CPU and memory quantities (`250m`, `64Mi`).
//! - [`backoff`]: the jittered reconnect back-off both MQTT clients use.
//! - [`timing`]: timing defaults (heartbeat, node timeout, …) defined once for every binary.
//! - [`name`]: validation of the names that end up in topics and on disk (nodes, workloads, namespaces).
//!
//! - [`v3`]: protocol 3's message shapes, frozen, so a controller serves agents one version behind.
//!
//! **Wire invariant:** payloads are postcard-encoded [`envelope::Envelope`]s, and postcard is not
//! self-describing: a struct's fields are read in order with no names or lengths, and an enum variant by its
//! index. So adding, removing or reordering a field is incompatible, and even a variant appended at the end of
//! an enum is compatible only with peers that never receive it (an older decoder refuses an index it does not
//! know). Any such change needs a new [`envelope::PROTOCOL_VERSION`], with the previous version's shapes kept
//! (today [`v3`]) so one version of skew is served. Golden byte vectors in the tests pin both versions.
#![no_std]

extern crate alloc;

pub mod auth;
pub mod backoff;
pub mod broker;
pub mod envelope;
pub mod join;
pub mod mcu;
pub mod message;
pub mod name;
pub mod quantity;
pub mod timing;
pub mod topic;
pub mod v3;

pub use broker::{parse_broker_endpoint, parse_broker_url, BadBrokerUrl, BrokerEndpoint};
pub use envelope::{
    decode, encode, encode_for, encode_for_with_auth, encode_with_auth, DecodeError, Envelope, MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
};
pub use join::{JoinRefusal, JoinReply, JoinRequest};
pub use message::{
    EngineProfile, EngineTarget, Event, EventKind, EventsAck, Heartbeat, Hello, InstanceSpec, InstanceState,
    InstanceStatus, LogLine, LogStream, Message, ModuleChunk, ModuleReply, ModuleRequest, NodeSpec, NodeStatus, Outage,
    Resources, RestartPolicy, Sha256, VolumeSpec,
};
pub use name::{validate_name, NameError};
pub use topic::{Channel, Topics};

/// The largest payload either side publishes or accepts. Module chunks are the largest messages.
pub const MAX_PAYLOAD: usize = 512 * 1024;

/// Size of one module chunk on the wire; leaves room for the envelope inside [`MAX_PAYLOAD`].
pub const MODULE_CHUNK: u32 = 256 * 1024;

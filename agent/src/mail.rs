//! The messages the agent's tasks exchange: [`Input`]s into the core (from the session, instance tasks and
//! back-off timers) and [`Outgoing`] messages from the core and the log forwarder into the session, the only
//! task that writes to MQTT. Types only, so neither the core nor the session depends on the other.

use std::time::Duration;

use edge_proto::{Channel, Message, Sha256};

use crate::supervisor::Exit;

/// Everything that happens to the core.
#[derive(Debug)]
pub enum Input {
    Connected,
    Disconnected,
    /// A message from the controller's topics, with its envelope's `auth` (a signature, for specs and artifact
    /// chunks): nothing in it is believed before [`crate::verify::Verifier`] says so.
    Message(Message, Option<Vec<u8>>),
    Started {
        id: String,
        run: u64,
        at_ms: u64,
    },
    Exited {
        id: String,
        run: u64,
        exit: Exit,
        ran_for: Duration,
    },
    RestartDue {
        id: String,
        run: u64,
    },
    /// A cached module could not be loaded (an incompatible or corrupt artifact): drop it so it is fetched again.
    ModuleUnusable {
        sha: Sha256,
    },
}

/// MQTT delivery guarantee of an outgoing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    /// Repeated anyway (heartbeats, logs).
    AtMostOnce,
    /// Must arrive (hellos, events until acknowledged, module requests).
    AtLeastOnce,
}

/// One message for the session to publish on this node's `channel`.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub channel: Channel,
    pub qos: Qos,
    pub retain: bool,
    pub message: Message,
}

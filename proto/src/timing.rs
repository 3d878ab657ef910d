//! Timing defaults shared by the controller, the agents and the firmware: defined once, here, so a flag's
//! default, its help text and the peer that depends on it never disagree.
//!
//! The relations that matter: a node is NotReady after [`NODE_TIMEOUT`] of silence, which must span a few
//! [`HEARTBEAT`]s (three by default) so one lost heartbeat never flips readiness.

use core::time::Duration;

/// How often an agent heartbeats.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node silent this long is NotReady.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(6);
/// A node NotReady this long is lost: instances of workloads with `on_node_loss: reschedule` move.
pub const RESCHEDULE_AFTER: Duration = Duration::from_secs(30);
/// A replica is ready once it has been Running this long without restarting (rollout pacing too).
pub const MIN_READY: Duration = Duration::from_secs(3);
/// MQTT keep-alive of every client we run.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// How often a node heard from without a `Hello` is asked for one.
pub const HELLO_REQUEST_EVERY: Duration = Duration::from_secs(2);
/// Unacknowledged events are sent again after this long.
pub const RESEND_AFTER: Duration = Duration::from_secs(3);
/// A module download with no chunk for this long is asked for again.
pub const FETCH_STALL: Duration = Duration::from_secs(10);

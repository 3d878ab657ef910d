//! Timing defaults shared by the controller, the agents and the firmware: defined once, here, so a flag's
//! default, its help text and the peer that depends on it never disagree.
//!
//! Liveness costs an idle node almost nothing on the wire (see BENCHMARKS.md, "Bytes on the wire"): an agent
//! sends a heartbeat when what it reports changes (checked every [`TICK`]) and otherwise only every
//! [`HEARTBEAT`]; between them the MQTT keep-alive ([`KEEP_ALIVE`], 2 + 2 bytes a round) is what shows the
//! connection alive, and a node that dies without closing its socket is noticed by its broker after 1.5 ×
//! [`KEEP_ALIVE`], which then publishes the node's Last Will: NotReady at once.
//!
//! The relations that matter: [`NODE_TIMEOUT`] of silence (a node whose connection is alive but whose agent
//! says nothing, e.g. a wedged process) must span a few [`HEARTBEAT`]s (2.5 by default) so one lost heartbeat
//! never flips readiness; [`TICK`] ≤ [`HEARTBEAT`].

use core::time::Duration;

/// The longest an agent goes without a heartbeat (a refresh of unchanged state).
pub const HEARTBEAT: Duration = Duration::from_secs(60);
/// How often an agent checks for changes to report, events to resend and downloads to re-ask.
pub const TICK: Duration = Duration::from_secs(2);
/// A node silent this long is NotReady (a dead connection is noticed sooner, by its Last Will).
pub const NODE_TIMEOUT: Duration = Duration::from_secs(150);
/// A node NotReady this long is lost: instances of workloads with `on_node_loss: reschedule` move.
pub const RESCHEDULE_AFTER: Duration = Duration::from_secs(30);
/// A replica is ready once it has been Running this long without restarting (rollout pacing too).
pub const MIN_READY: Duration = Duration::from_secs(3);
/// MQTT keep-alive of every client we run: a silently dead peer is noticed after 1.5 × this.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often a node heard from without a `Hello` is asked for one.
pub const HELLO_REQUEST_EVERY: Duration = Duration::from_secs(2);
/// Unacknowledged events are sent again after this long.
pub const RESEND_AFTER: Duration = Duration::from_secs(3);
/// A module download with no chunk for this long is asked for again.
pub const FETCH_STALL: Duration = Duration::from_secs(10);

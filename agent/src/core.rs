//! The agent's core: one task owning the node's state. Everything that happens arrives as an [`Input`]:
//! MQTT connection changes and messages (from the session), instance starts and exits (from instance tasks),
//! due restarts (from back-off timers), and heartbeat ticks. What it sends goes to the session as
//! [`Outgoing`] messages over a bounded queue it never waits on.
//!
//! The core drives pure state machines and keeps the I/O: [`Outbox`] (event numbering, acks, resend pacing),
//! [`Download`] (one per module being fetched), [`Supervisor`] (one per instance); persistence is
//! [`crate::store`]'s, running guests [`crate::runtime`]'s. Layout: this file holds the state, the dispatch of
//! inputs, specs, heartbeats (and usage reports) and events; `instances` converges, starts and handles exits;
//! `fetch` drives module downloads.
//!
//! **Invariants:**
//! - A spec is applied only if it supersedes the persisted one ([`NodeSpec::supersedes`]: another issuer, or a
//!   newer generation of the same), and it is persisted first. No arithmetic is done on wire generations.
//! - A joined node applies, stores and boots only specs that verify under its pinned cluster key, and loads
//!   only artifacts whose announced hash the cluster signed ([`Verifier`]); what fails is reported as a
//!   `Rejected` event (at most one per [`REJECTION_EVENT_EVERY`]), never acted on.
//! - An instance id that is already running is never restarted by a spec: ids change with their template.
//! - A finished run-to-completion instance (`never`, or `on-failure` that exited 0) is never started again,
//!   not even by an agent restart: its final state is persisted and reported as it was.
//! - A disconnection alone never starts or stops anything.
//! - Every event is committed to the store's outbox (at the end of the input that produced it) before it is
//!   published, and leaves the outbox only when the controller acknowledges it for this store: events survive
//!   disconnection, agent restarts and a controller that was down when they were first sent.
//! - Sequence numbers are contiguous and never repeat (see [`crate::store`]).
//! - The core never blocks on MQTT: a full queue to the session drops the message (what matters is repeated,
//!   like heartbeats, or kept until acknowledged, like events).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_proto::{
    Channel, EventKind, EventsAck, Heartbeat, Hello, InstanceSpec, InstanceStatus, LogLine, Message, NodeSpec, Outage,
    Sha256,
};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::now_ms;
use crate::config::NodeIdentity;
use crate::download::Download;
use crate::mail::{Outgoing, Qos};
use crate::outbox::{Acked, Outbox};
use crate::runtime::Runtime;
use crate::store::{Store, StoreError};
use crate::supervisor::Supervisor;
use crate::usage::{Consumption, Meter, Reading};
use crate::verify::{Rejection, Verifier};

mod fetch;
mod instances;

pub use crate::config::{Limits, MODULE_BUDGET, OUTBOX_LIMIT};
pub use crate::download::MAX_MODULE;
pub use crate::mail::Input;
pub use edge_proto::timing::{FETCH_STALL, RESEND_AFTER};

/// A spec with more instances than this is refused (neither persisted nor applied): more than any controller
/// places on one node, and more than a heartbeat could report.
pub const MAX_SPEC_INSTANCES: usize = 4096;
/// A disconnection at boot (before the first connection) shorter than this, with no events buffered, is not
/// worth reporting as an outage: it is just the time to connect.
const BOOT_GAP_REPORTED: Duration = Duration::from_secs(2);
/// Bytes of instance statuses one heartbeat carries at most (estimated), leaving room in the payload limit.
const HEARTBEAT_BUDGET: usize = edge_proto::MAX_PAYLOAD * 3 / 4;
/// `Rejected` events are rationed: a burst of [`REJECTION_EVENTS`], then one per [`REJECTION_EVENT_EVERY`].
/// Whoever floods a node's topics with forged specs must not push its real events out of the bounded outbox.
pub const REJECTION_EVENTS: u32 = 8;
pub const REJECTION_EVENT_EVERY: Duration = Duration::from_secs(10);

struct Instance {
    spec: InstanceSpec,
    sup: Supervisor,
    /// Counts runs, so reports from an aborted run are told apart from the current one.
    run: u64,
    task: Option<JoinHandle<()>>,
    /// Waiting for its module to arrive.
    waiting_module: bool,
    /// Ended for good (persisted in the store): never started again.
    finished: bool,
    /// What the current (or last) run consumed, counted by its task; read for usage reports while it runs.
    usage: Option<Arc<Consumption>>,
}

/// Counters the log forwarder keeps, read by the core to report an outage.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Lines put in the ring while disconnected.
    pub buffered: AtomicU64,
    /// Lines the full ring dropped.
    pub dropped: AtomicU64,
}

/// What the core talks to besides its store and runtime.
pub struct Wiring {
    /// To the session; `None` in standalone mode (nothing is published, nothing acknowledged).
    pub outgoing: Option<mpsc::Sender<Outgoing>>,
    /// The core's own inputs, handed to instance tasks and timers.
    pub inputs: UnboundedSender<Input>,
    /// Whether the session has a broker connection (the core is its only writer).
    pub connected: watch::Sender<bool>,
    /// Guest output, to the log forwarder.
    pub logs: mpsc::Sender<LogLine>,
    /// Guest lines dropped by the output rate limit.
    pub lines_dropped: Arc<AtomicU64>,
    pub log_stats: Arc<LogStats>,
}

/// Where an ongoing disconnection started, to report it once it ends.
struct Gap {
    /// The agent's start, before its first connection: only worth reporting when it lasted.
    boot: bool,
    started_ms: u64,
    next_seq: u64,
    events_dropped: u64,
    logs_buffered: u64,
    logs_dropped: u64,
}

pub struct Core {
    identity: NodeIdentity,
    store: Store,
    store_id: u64,
    runtime: Runtime,
    wiring: Wiring,
    limits: Limits,
    /// Issuer and generation of the applied spec (`instances` left empty: only the header is compared).
    applied: Option<NodeSpec>,
    instances: HashMap<String, Instance>,
    fetches: HashMap<Sha256, Download>,
    outbox: Outbox,
    gap: Option<Gap>,
    last_outage: Option<Outage>,
    verifier: Verifier,
    rejections: Ration,
    /// When the last heartbeat was sent and what it said (its time zeroed), to send only changes in between.
    last_heartbeat: Option<(Instant, Heartbeat)>,
    /// The running instances' previous readings, and when usage was last reported (or found nothing to say).
    meter: Meter,
    last_usage: Option<Instant>,
}

impl Core {
    pub fn new(
        identity: NodeIdentity,
        store: Store,
        runtime: Runtime,
        limits: Limits,
        wiring: Wiring,
        verifier: Verifier,
    ) -> Result<Core, StoreError> {
        let store_id = store.store_id()?;
        let outbox = Outbox::new(store_id, limits.outbox, store.outbox()?, store.next_seq()?, store.events_dropped()?);
        Ok(Core {
            identity,
            store,
            store_id,
            runtime,
            wiring,
            limits,
            applied: None,
            instances: HashMap::new(),
            fetches: HashMap::new(),
            outbox,
            gap: None,
            last_outage: None,
            verifier,
            rejections: Ration::new(REJECTION_EVENTS, Instant::now()),
            last_heartbeat: None,
            meter: Meter::default(),
            last_usage: None,
        })
    }

    /// Starts the instances of the persisted spec: a node runs its last desired state with no broker at all.
    pub fn boot(&mut self) -> Result<(), StoreError> {
        self.gap = Some(Gap { boot: true, ..self.gap_now() });
        if let Some((spec, signature)) = self.store.signed_spec()? {
            if let Err(r) = self.verifier.stored_spec(&spec, signature.as_ref()) {
                // Nothing runs; the controller's signed spec replaces it once the node connects.
                self.reject(r);
                self.commit_events();
                return Ok(());
            }
            tracing::info!(
                issuer = spec.issuer,
                generation = spec.generation,
                instances = spec.instances.len(),
                "resuming persisted spec"
            );
            let instances = self.note_applied(spec);
            self.converge(instances);
        }
        self.commit_events();
        Ok(())
    }

    /// Applies a spec from a local manifest (standalone mode): persisted like one from the controller, issued by
    /// this store itself, under its next generation unless it equals the persisted one. Any controller's spec
    /// (another issuer) supersedes it later.
    pub fn apply_local(&mut self, instances: Vec<InstanceSpec>) {
        let current = self.store.spec().ok().flatten();
        if current.as_ref().is_some_and(|s| s.instances == instances) {
            self.commit_events();
            return;
        }
        let generation = match &current {
            Some(c) if c.issuer == self.store_id => c.generation.saturating_add(1),
            _ => 1,
        };
        self.adopt(NodeSpec { issuer: self.store_id, generation, instances }, None);
        self.commit_events();
    }

    /// Puts a module read from local disk into the store (standalone mode); `sha` must be the bytes' sha256.
    pub fn put_local_module(&mut self, sha: &Sha256, bytes: &[u8]) -> Result<(), StoreError> {
        if self.store.has_module(sha)? {
            return Ok(());
        }
        self.store.put_module(sha, bytes, now_ms())
    }

    pub fn handle(&mut self, input: Input) {
        self.dispatch(input);
        self.commit_events();
    }

    fn dispatch(&mut self, input: Input) {
        match input {
            Input::Connected => self.on_connected(),
            Input::Disconnected => {
                self.outbox.disconnected();
                if self.wiring.connected.send_replace(false) {
                    self.gap = Some(self.gap_now());
                }
            }
            Input::Message(Message::Spec(spec), auth) => {
                let signature = match self.verifier.spec(&spec, auth.as_deref()) {
                    Ok(signature) => signature,
                    Err(r) => return self.reject(r),
                };
                if let Some(r) = self.replayed(&spec) {
                    self.reject(r);
                } else if spec.supersedes(self.applied.as_ref()) {
                    self.apply_spec(spec, signature);
                } else {
                    // Already applied (or older): a retained re-delivery, or a controller that just (re)connected
                    // and re-published every spec, possibly after our events went to a broker it was not yet
                    // subscribed to. Either way someone is listening: catch it up now (duplicates are ignored).
                    if self.outbox.awaiting_ack() {
                        self.outbox.resend();
                        self.flush_events();
                    }
                    self.heartbeat();
                }
            }
            Input::Message(Message::ModuleReply(reply), auth) => self.on_module_reply(reply, auth.as_deref()),
            Input::Message(Message::EventsAck(ack), _) => self.on_ack(ack),
            Input::Message(Message::HelloRequest, _) => {
                let hello = self.hello();
                self.publish(Channel::Hello, Qos::AtLeastOnce, Message::Hello(hello));
            }
            Input::Message(other, _) => tracing::debug!(?other, "unexpected message kind ignored"),
            Input::Started { id, run, at_ms } => {
                let Some(inst) = self.instances.get_mut(&id).filter(|i| i.run == run) else { return };
                inst.sup.started(at_ms);
                let restarts = inst.sup.restarts;
                if run == 1 {
                    // The first start in this process: from now on a restart of the agent counts as a restart.
                    if let Err(e) = self.store.put_restarts(&id, restarts) {
                        tracing::warn!(error = %e, "cannot persist a restart counter");
                    }
                }
                self.event(&id, restarts, EventKind::Started { started_at_ms: at_ms });
            }
            Input::Exited { id, run, exit, ran_for } => self.on_exit(id, run, exit, ran_for),
            Input::ModuleUnusable { sha } => {
                self.runtime.forget(&sha);
                if let Err(e) = self.store.remove_module(&sha) {
                    tracing::warn!(error = %e, "cannot drop an unusable module");
                }
            }
            Input::RestartDue { id, run } => {
                let Some(inst) = self.instances.get_mut(&id).filter(|i| i.run == run && i.task.is_none()) else {
                    return;
                };
                inst.sup.restarting();
                if let Err(e) = self.store.put_restarts(&id, inst.sup.restarts) {
                    tracing::warn!(error = %e, "cannot persist a restart counter");
                }
                self.start(&id);
            }
        }
    }

    /// Periodic: heartbeat, events still unacknowledged, and stalled module downloads.
    /// The periodic work: a heartbeat if what it reports changed or `refresh` has passed since the last one,
    /// events due again, downloads to re-ask.
    pub fn tick(&mut self, refresh: Duration) {
        let now = Instant::now();
        self.heartbeat_if_due(refresh, now);
        self.usage_if_due(refresh, now);
        if self.outbox.resend_if_due(now) {
            self.flush_events();
        }
        let connected = self.is_connected();
        let mut asks = Vec::new();
        for d in self.fetches.values_mut() {
            if let Some(req) = d.re_ask(now) {
                asks.push(req);
            }
        }
        if connected {
            for req in asks {
                self.publish(Channel::ModuleRequest, Qos::AtLeastOnce, Message::ModuleRequest(req));
            }
        }
        self.commit_events();
    }

    pub fn shutdown(&mut self) {
        for inst in self.instances.values_mut() {
            if let Some(t) = inst.task.take() {
                t.abort();
            }
        }
        self.runtime.shutdown();
    }

    fn is_connected(&self) -> bool {
        *self.wiring.connected.borrow()
    }

    fn on_connected(&mut self) {
        self.wiring.connected.send_replace(true);
        self.outbox.connected();
        if let Some(gap) = self.gap.take() {
            let outage = self.outage_from(&gap);
            let lasted = outage.ended_ms.saturating_sub(outage.started_ms) >= BOOT_GAP_REPORTED.as_millis() as u64;
            if !gap.boot || lasted || outage.events_buffered > 0 {
                self.last_outage = Some(outage);
            }
        }
        let hello = self.hello();
        self.publish(Channel::Hello, Qos::AtLeastOnce, Message::Hello(hello));
        self.flush_events();
        self.heartbeat();
        let pending: Vec<Sha256> = self.fetches.keys().copied().collect();
        for sha in pending {
            self.request_chunk(sha);
        }
    }

    fn hello(&self) -> Hello {
        Hello {
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            board: self.identity.board.clone(),
            arch: self.identity.arch.clone(),
            engine: self.identity.engine,
            capacity: self.identity.capacity,
            labels: self.identity.labels.clone(),
            applied_generation: self.applied_generation(),
            store_id: self.store_id,
            reserved: self.identity.reserved,
        }
    }

    fn applied_generation(&self) -> u64 {
        self.applied.as_ref().map_or(0, |s| s.generation)
    }

    /// A heartbeat now (something changed, or someone is listening anew).
    fn heartbeat(&mut self) {
        if !self.is_connected() {
            return;
        }
        let hb = self.heartbeat_body();
        self.last_heartbeat = Some((Instant::now(), Heartbeat { at_ms: 0, ..hb.clone() }));
        self.publish(Channel::Heartbeat, Qos::AtMostOnce, Message::Heartbeat(hb));
    }

    /// A heartbeat if its content (all but the time) differs from the last one sent, or none was sent for
    /// `refresh`: an idle node costs one message per `refresh`.
    fn heartbeat_if_due(&mut self, refresh: Duration, now: Instant) {
        let due = match &self.last_heartbeat {
            None => true,
            Some((at, _)) if now.saturating_duration_since(*at) >= refresh => true,
            Some((_, last)) => *last != Heartbeat { at_ms: 0, ..self.heartbeat_body() },
        };
        if due {
            self.heartbeat();
        }
    }

    fn heartbeat_body(&self) -> Heartbeat {
        Heartbeat {
            at_ms: now_ms(),
            applied_generation: self.applied_generation(),
            instances: self.statuses(),
            events_dropped: self.outbox.dropped(),
            last_event_seq: self.outbox.last_seq(),
            oldest_unacked_seq: self.outbox.oldest_unacked(),
            last_outage: self.last_outage,
            store_id: self.store_id,
        }
    }

    /// The running instances' usage, once per `every` (the heartbeat's refresh), in a message of its own: usage
    /// always changes, so it never makes a heartbeat "changed". A node running nothing sends nothing.
    fn usage_if_due(&mut self, every: Duration, now: Instant) {
        if self.last_usage.is_some_and(|at| now.saturating_duration_since(at) < every) || !self.is_connected() {
            return;
        }
        self.last_usage = Some(now);
        let readings: Vec<(String, Reading)> = self
            .instances
            .iter()
            .filter(|(_, i)| i.task.is_some() && i.sup.status().state == edge_proto::InstanceState::Running)
            .filter_map(|(id, i)| Some((id.clone(), Reading::of(i.usage.as_deref()?))))
            .collect();
        let usage = self.meter.report(now, now_ms(), readings);
        if !usage.instances.is_empty() {
            self.publish(Channel::Heartbeat, Qos::AtMostOnce, Message::Usage(usage));
        }
    }

    /// Every instance's status, by id, as many as fit a heartbeat (all of them for any spec a controller sends).
    fn statuses(&self) -> Vec<InstanceStatus> {
        let mut all: Vec<InstanceStatus> = self.instances.values().map(|i| i.sup.status()).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let mut bytes = 0usize;
        let fit = all
            .iter()
            .take_while(|s| {
                bytes += s.id.len() + s.reason.as_ref().map_or(0, String::len) + 40;
                bytes <= HEARTBEAT_BUDGET
            })
            .count();
        if fit < all.len() {
            tracing::warn!(reported = fit, instances = all.len(), "too many instance statuses for one heartbeat");
            all.truncate(fit);
        }
        all
    }

    /// Hands a message to the session; false when it could not be queued (no session, or its queue is full).
    fn publish(&self, channel: Channel, qos: Qos, message: Message) -> bool {
        let Some(out) = &self.wiring.outgoing else { return false };
        // Never block the core on MQTT: what matters is repeated (heartbeats, hellos) or kept until
        // acknowledged (events).
        match out.try_send(Outgoing { channel, qos, retain: false, message }) {
            Ok(()) => true,
            Err(e) => {
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "the session's queue is full",
                    mpsc::error::TrySendError::Closed(_) => "the session has stopped",
                };
                tracing::warn!(channel = channel.as_str(), why, "MQTT publish dropped");
                false
            }
        }
    }

    fn gap_now(&self) -> Gap {
        Gap {
            boot: false,
            started_ms: now_ms(),
            next_seq: self.outbox.next_seq(),
            events_dropped: self.outbox.dropped(),
            logs_buffered: self.wiring.log_stats.buffered.load(Ordering::Relaxed),
            logs_dropped: self.wiring.log_stats.dropped.load(Ordering::Relaxed),
        }
    }

    fn outage_from(&self, gap: &Gap) -> Outage {
        let stats = &self.wiring.log_stats;
        Outage {
            started_ms: gap.started_ms,
            ended_ms: now_ms(),
            events_buffered: self.outbox.next_seq().saturating_sub(gap.next_seq),
            events_dropped: self.outbox.dropped().saturating_sub(gap.events_dropped),
            logs_buffered: stats.buffered.load(Ordering::Relaxed).saturating_sub(gap.logs_buffered),
            logs_dropped: stats.dropped.load(Ordering::Relaxed).saturating_sub(gap.logs_dropped),
        }
    }

    // ---- spec ------------------------------------------------------------------------------------------------

    /// A spec from the controller that supersedes the applied one (verified: `signature` is stored with it).
    fn apply_spec(&mut self, spec: NodeSpec, signature: Option<[u8; 64]>) {
        if spec.instances.len() > MAX_SPEC_INSTANCES {
            tracing::warn!(
                instances = spec.instances.len(),
                limit = MAX_SPEC_INSTANCES,
                "spec refused: more instances than one node runs"
            );
            return;
        }
        self.adopt(spec, signature);
    }

    /// A verified spec older than the applied one of the same issuer, or of an issuer this node already left
    /// behind (a controller store since replaced), on a joined node: someone replays what the cluster once
    /// signed. (An equal generation is the retained copy delivered again: not a replay.)
    fn replayed(&self, spec: &NodeSpec) -> Option<Rejection> {
        if self.verifier.is_pinned() && self.store.retired_issuers().unwrap_or_default().contains(&spec.issuer) {
            return Some(Rejection::RetiredIssuer { generation: spec.generation });
        }
        let applied = self.applied.as_ref()?;
        (self.verifier.is_pinned() && applied.issuer == spec.issuer && spec.generation < applied.generation)
            .then_some(Rejection::Replayed { generation: spec.generation, running: applied.generation })
    }

    /// Refuses what did not verify: logged always, reported as a node-level `Rejected` event as the [`Ration`]
    /// allows (the next report says how many were not).
    pub(super) fn reject(&mut self, r: Rejection) {
        tracing::warn!(reason = %r, "refused a message from the controller's topics");
        let reason = match self.rejections.take(Instant::now()) {
            None => return,
            Some(0) => r.to_string(),
            Some(quiet) => format!("{r} (and {quiet} more refused since the last report)"),
        };
        self.event("", 0, EventKind::Rejected { reason });
    }

    /// Persists `spec` (with the signature it arrived with, if any), then converges to it.
    fn adopt(&mut self, spec: NodeSpec, signature: Option<[u8; 64]>) {
        if let Err(e) = self.store.put_spec(&spec, signature.as_ref(), now_ms()) {
            tracing::error!(error = %e, "cannot persist the new spec; not applying it");
            return;
        }
        tracing::info!(
            issuer = spec.issuer,
            generation = spec.generation,
            instances = spec.instances.len(),
            "applying spec"
        );
        let instances = self.note_applied(spec);
        self.converge(instances);
        let keep: HashSet<&str> = self.instances.keys().map(String::as_str).collect();
        if let Err(e) = self.store.retain_restarts(&keep) {
            tracing::warn!(error = %e, "cannot prune restart counters");
        }
        self.evict_modules();
        self.heartbeat();
    }

    /// Remembers `spec`'s header as the applied one; returns its instances.
    fn note_applied(&mut self, spec: NodeSpec) -> Vec<InstanceSpec> {
        let NodeSpec { issuer, generation, instances } = spec;
        self.applied = Some(NodeSpec { issuer, generation, instances: Vec::new() });
        instances
    }

    /// Keeps the module cache within its budget; modules the current spec uses always stay.
    fn evict_modules(&mut self) {
        let keep: HashSet<Sha256> = self.instances.values().map(|i| i.spec.module).collect();
        match self.store.evict_modules(&keep, self.limits.module_budget) {
            Ok(evicted) => {
                for sha in evicted {
                    tracing::info!(module = %hex::encode(sha), "evicted an unused module from the cache");
                    self.runtime.forget(&sha);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot evict modules"),
        }
    }

    // ---- events ----------------------------------------------------------------------------------------------

    fn event(&mut self, instance: &str, restarts: u32, kind: EventKind) {
        tracing::info!(instance, seq = self.outbox.next_seq(), restarts, event = ?kind, "instance event");
        self.outbox.push(now_ms(), instance, restarts, kind);
    }

    /// Commits the events the current input produced, then sends them if connected.
    fn commit_events(&mut self) {
        if self.outbox.staged().is_empty() {
            return;
        }
        if self.wiring.outgoing.is_none() {
            // Standalone: nobody will ever acknowledge; the agent's log is the record.
            self.outbox.discard_staged();
            return;
        }
        let dropped = match self.store.append_events(self.outbox.staged(), self.limits.outbox) {
            Ok(a) => a.dropped,
            Err(e) => {
                // Keep them in memory at least: they are still sent, just not crash-safe.
                tracing::error!(error = %e, "cannot persist events");
                0
            }
        };
        self.outbox.commit(dropped);
        self.flush_events();
    }

    /// Sends unacknowledged events not yet sent on this connection, in order, in batches.
    fn flush_events(&mut self) {
        while let Some(batch) = self.outbox.next_batch() {
            let up_to = batch.last().map_or(0, |e| e.seq);
            if !self.publish(Channel::Events, Qos::AtLeastOnce, Message::Events(batch)) {
                break; // Kept in the outbox; the resend timer tries again.
            }
            self.outbox.sent(up_to, Instant::now());
        }
    }

    fn on_ack(&mut self, ack: EventsAck) {
        match self.outbox.ack(&ack, Instant::now()) {
            Acked::OtherStore => {
                tracing::debug!(store_id = ack.store_id, "acknowledgement for another agent store ignored");
            }
            Acked::Nothing => {}
            Acked::Forgot { up_to } => {
                if let Err(e) = self.store.ack_events(up_to) {
                    tracing::warn!(error = %e, "cannot forget acknowledged events");
                }
            }
        }
    }
}

/// A token bucket for reports: `burst` at once, then one more per [`REJECTION_EVENT_EVERY`]. Pure.
#[derive(Debug, Clone)]
struct Ration {
    tokens: u32,
    burst: u32,
    since: Instant,
    /// Refused reports not made since the last one.
    quiet: u64,
}

impl Ration {
    fn new(burst: u32, now: Instant) -> Ration {
        Ration { tokens: burst, burst, since: now, quiet: 0 }
    }

    /// `Some(n)`: report now, `n` having been kept quiet since the last report; `None`: stay quiet.
    fn take(&mut self, now: Instant) -> Option<u64> {
        let earned = now.saturating_duration_since(self.since).as_secs() / REJECTION_EVENT_EVERY.as_secs();
        if earned > 0 {
            self.tokens = self.burst.min(self.tokens.saturating_add(u32::try_from(earned).unwrap_or(u32::MAX)));
            self.since = now;
        }
        if self.tokens == 0 {
            self.quiet = self.quiet.saturating_add(1);
            return None;
        }
        self.tokens -= 1;
        Some(std::mem::take(&mut self.quiet))
    }
}

#[cfg(test)]
mod ration_tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval_and_the_quiet_ones_are_counted() {
        let t0 = Instant::now();
        let mut r = Ration::new(2, t0);
        assert_eq!((r.take(t0), r.take(t0), r.take(t0), r.take(t0)), (Some(0), Some(0), None, None));
        assert_eq!(r.take(t0 + REJECTION_EVENT_EVERY), Some(2));
        assert_eq!(r.take(t0 + REJECTION_EVENT_EVERY), None);
        // A long silence refills the burst, never more.
        let later = t0 + REJECTION_EVENT_EVERY * 1000;
        assert_eq!((r.take(later), r.take(later), r.take(later)), (Some(1), Some(0), None));
    }
}

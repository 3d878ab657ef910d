//! What agents say: hello, heartbeat (and usage, on the heartbeat's channel), events, logs and status, each from
//! a node's own topics. A member's report is believed only with a valid tag under its key (`reports.rs`),
//! checked right after decoding. Garbage is counted and dropped; no message fails the controller, and none runs
//! a reconcile pass itself (it marks the cluster dirty; the owner runs one pass per batch, see
//! [`Cluster::flush`]).
//!
//! Every wire value is bounded before use: instance lists are capped, sequence numbers go through the pure
//! [`super::ledger::Ledger`] (arithmetic, never a loop per number), generations are only displayed.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use edge_proto::{
    Channel, EventKind, EventsAck, Heartbeat, Hello, InstanceState, InstanceStatus, LogLine, Message, Resources,
};

use super::ledger::Outcome;
use super::{Cluster, LastUsage, Publish, RECENT_EVENTS, WORKLOAD_EVENTS};
use crate::clock::now_ms;
use crate::model::NodeRecord;

/// Most instance statuses kept from one heartbeat (a node runs far fewer; the rest is ignored).
const MAX_STATUSES: usize = 4_096;
/// Most nodes tracked live without a record (heard from, no hello yet): names on the wire cost bounded memory.
const MAX_UNKNOWN_NODES: usize = 4_096;

impl Cluster {
    /// Handles one message from an agent.
    pub fn on_uplink(&mut self, node: &str, channel: Channel, payload: &[u8]) {
        if edge_proto::validate_name(node).is_err() {
            self.counters.rejected += 1;
            tracing::debug!("message from a node with an invalid name ignored");
            return;
        }
        if !self.accepts_from(node) {
            self.counters.rejected += 1;
            tracing::debug!(node, "message from a node that is not a member ignored");
            return;
        }
        // Without identities enforced, a hello from a new node still gets through: it is how it appears.
        if channel != Channel::Hello
            && !self.live.contains_key(node)
            && !self.nodes.contains_key(node)
            && self.live.len() >= self.nodes.len() + MAX_UNKNOWN_NODES
        {
            self.counters.rejected += 1;
            tracing::debug!(node, "message from yet another unknown node ignored");
            return;
        }
        let envelope = match edge_proto::decode(payload) {
            Ok(e) => e,
            Err(e) => {
                self.counters.rejected += 1;
                tracing::warn!(node, channel = channel.as_str(), error = %e, "undecodable message ignored");
                return;
            }
        };
        // Before anything it says is believed: a member's report must carry its tag (see `reports.rs`).
        if !self.authentic(node, channel, &envelope.message, envelope.auth.as_deref()) {
            return;
        }
        match (channel, envelope.message) {
            (Channel::Status, Message::Status(s)) => self.on_status(node, s.online),
            (Channel::Hello, Message::Hello(h)) => self.on_hello(node, h, envelope.version),
            (Channel::Heartbeat, Message::Heartbeat(h)) => self.on_heartbeat(node, h, envelope.version),
            (Channel::Heartbeat, Message::Usage(u)) => self.on_usage(node, u),
            (Channel::Events, Message::Events(events)) => self.on_events(node, events),
            (Channel::Logs, Message::Logs(lines)) => self.on_logs(node, lines),
            (Channel::ModuleRequest, Message::ModuleRequest(r)) => self.on_module_request(node, r),
            (channel, _) => {
                self.counters.rejected += 1;
                tracing::warn!(node, channel = channel.as_str(), "message of the wrong kind for its topic ignored");
            }
        }
    }

    /// The retained status (`online` at connect, the Last Will's `offline`). It cannot carry a report tag (the
    /// Last Will is fixed when the node connects), so an `offline` about a member is checked: the node is asked
    /// for its (tagged) hello, and a live node answers at once: a forged `offline` on an open broker costs it a
    /// moment of NotReady, never a reschedule. A node that really went away answers nothing.
    fn on_status(&mut self, node: &str, online: bool) {
        let was_ready = self.is_ready(node);
        self.live_mut(node).liveness.status(online, Instant::now());
        if !online && self.members.contains_key(node) {
            self.ask_for_hello(node);
        }
        if was_ready != self.is_ready(node) && self.nodes.contains_key(node) {
            self.dirty = true;
        }
    }

    fn on_hello(&mut self, node: &str, h: Hello, protocol: u16) {
        self.counters.hellos += 1;
        let now = now_ms();
        let was_ready = self.is_ready(node);
        let live = self.live_mut(node);
        live.liveness.heard(Instant::now());
        live.last_seen_ms = Some(now);
        live.applied_generation = h.applied_generation;
        live.protocol = protocol;
        let labels: BTreeMap<String, String> = h.labels.into_iter().collect();
        let mut record = self.nodes.get(node).cloned().unwrap_or_else(|| NodeRecord {
            name: node.to_string(),
            board: String::new(),
            arch: String::new(),
            engine: h.engine.target,
            engine_profile: None,
            agent_version: String::new(),
            capacity: h.capacity,
            reserved: h.reserved,
            labels: BTreeMap::new(),
            spec_generation: 0,
            spec_hash: String::new(),
            first_seen_ms: now,
            store_id: h.store_id,
            last_event_seq: 0,
            last_seen_ms: now,
            cordoned: false,
            // A node that joined with a labelled token starts with the token's labels.
            user_labels: self.members.get(node).map(|m| m.labels.clone()).unwrap_or_default(),
            protocol,
            report_counter: self.reports.highest(node),
        });
        if record.store_id != h.store_id {
            tracing::info!(node, "the node's agent store is new: its event numbering starts again");
            record.store_id = h.store_id;
            record.last_event_seq = 0;
            self.live_mut(node).ledger.reset();
        }
        record.last_seen_ms = now;
        record.board = h.board;
        record.arch = h.arch;
        record.engine = h.engine.target;
        let new_profile = record.engine_profile != Some(h.engine);
        record.engine_profile = Some(h.engine);
        record.agent_version = h.agent_version;
        record.capacity = h.capacity;
        record.reserved = h.reserved;
        record.labels = labels;
        record.protocol = protocol;
        // `applied_generation` is the agent's word and is never adopted: our generations count only what this
        // store published, under its own issuer, which an agent running another issuer's spec accepts anyway.
        let previous = self.nodes.get(node);
        let scheduling_changed = previous.is_none_or(|p| {
            (p.capacity, p.reserved, &p.labels, p.engine_profile)
                != (record.capacity, record.reserved, &record.labels, record.engine_profile)
        });
        if scheduling_changed {
            // The kept scheduler snapshot no longer describes this node.
            self.sched = None;
        }
        if self.nodes.get(node) != Some(&record) {
            // Written with the next flush (a batch): a hello is not a user's write, and the agent says it again
            // on its next connection. Spec generations are committed before any spec is published.
            self.nodes.insert(node.to_string(), record);
            self.unsaved_nodes.insert(node.to_string());
        }
        if new_profile {
            self.build_for_profile(&h.engine);
        }
        if self.pending > 0 || !was_ready {
            self.dirty = true;
        }
        // The retained spec may have been lost with a broker restart, or this may be a new node running another
        // issuer's spec: send ours (for an agent that has it, the same generation is a no-op).
        if let Some(spec) = self.current_spec(node) {
            self.send(node, Channel::Spec, &Message::Spec(spec), true);
        }
    }

    fn on_heartbeat(&mut self, node: &str, h: Heartbeat, protocol: u16) {
        self.counters.heartbeats += 1;
        let now = Instant::now();
        let was_ready = self.is_ready(node);
        // Only instances placed on this node: another node's ids (or made-up ones) change nothing.
        let known: Vec<InstanceStatus> =
            h.instances.into_iter().filter(|s| self.placed_on(&s.id, node)).take(MAX_STATUSES).collect();
        let record = self.nodes.get(node);
        let stale_store = record.is_some_and(|r| h.store_id != 0 && r.store_id != h.store_id);
        let live = self.live_mut(node);
        live.liveness.heard(now);
        live.last_seen_ms = Some(now_ms());
        live.applied_generation = h.applied_generation;
        live.protocol = protocol;
        live.instances = known.into_iter().map(|s| (s.id.clone(), s)).collect();
        live.track_running(now);
        live.heartbeat_at_ms = h.at_ms;
        live.agent_last_event_seq = h.last_event_seq;
        live.agent_events_dropped = h.events_dropped;
        live.last_outage = h.last_outage;
        if stale_store {
            // A new agent store whose hello was lost: its numbering starts again, so numbers seen from the old
            // store must not make its events look like duplicates. Ask for the hello to refresh the record.
            live.ledger.reset();
            if let Some(r) = self.nodes.get_mut(node) {
                tracing::info!(node, "heartbeat from a new agent store: its event numbering starts again");
                r.store_id = h.store_id;
                r.last_event_seq = 0;
                self.unsaved_nodes.insert(node.to_string());
            }
            self.ask_for_hello(node);
        }
        if !self.nodes.contains_key(node) {
            self.ask_for_hello(node);
        } else {
            // Everything below the agent's oldest unacknowledged event was applied here or is gone for good; a
            // floor past the agent's own last number is not believed.
            let floor = match h.oldest_unacked_seq {
                0 => h.last_event_seq,
                oldest => oldest - 1,
            }
            .min(h.last_event_seq);
            let live = self.live_mut(node);
            live.ledger.settle(floor);
            let watermark = live.ledger.watermark();
            if let Some(r) = self.nodes.get_mut(node) {
                if r.last_event_seq != watermark {
                    r.last_event_seq = watermark;
                    self.unsaved_nodes.insert(node.to_string());
                }
            }
        }
        if !was_ready && self.nodes.contains_key(node) {
            self.dirty = true;
        }
    }

    /// Usage (for `edgectl top`): kept as the node's latest, for instances placed on it only (bounded like
    /// statuses). It changes nothing else: no liveness, no reconcile.
    fn on_usage(&mut self, node: &str, u: edge_proto::message::NodeUsage) {
        let instances: HashMap<String, Resources> = u
            .instances
            .into_iter()
            .filter(|i| self.placed_on(&i.id, node))
            .take(MAX_STATUSES)
            .map(|i| (i.id, Resources { cpu_millis: i.cpu_millis, memory_bytes: i.memory_bytes }))
            .collect();
        let usage = LastUsage { received_ms: now_ms(), window_ms: u.window_ms, instances };
        self.live_mut(node).usage = Some(usage);
    }

    fn on_events(&mut self, node: &str, events: Vec<edge_proto::Event>) {
        let Some(store_id) = self.nodes.get(node).map(|r| r.store_id) else {
            // Not announced yet (its hello comes first on every connection): the agent sends these again.
            tracing::debug!(node, "events from a node that has not said hello ignored");
            return;
        };
        let live_now = now_ms();
        for e in events {
            let live = self.live_mut(node);
            live.last_seen_ms = Some(live_now);
            match live.ledger.apply(e.seq) {
                Outcome::Applied => {}
                Outcome::Duplicate | Outcome::Deferred => continue,
            }
            self.counters.events += 1;
            // As people read it (`Exited with code 0`), in the one-line form the events API reads back.
            let line = super::event::Record::of(node, &e).line();
            if let Some(key) = self.workload_of(&e.instance).cloned() {
                let ring = self.workload_events.entry(key).or_default();
                if ring.len() >= WORKLOAD_EVENTS {
                    ring.pop_front();
                }
                ring.push_back(line.clone());
            }
            let known = self.placed_on(&e.instance, node);
            let live = self.live_mut(node);
            if live.recent_events.len() >= RECENT_EVENTS {
                live.recent_events.pop_front();
            }
            live.recent_events.push_back(line);
            if e.at_ms < live.heartbeat_at_ms || !known {
                // Replayed from the outbox (the last heartbeat already says how things stand), or about an
                // instance that is not ours: it counts, it changes no state.
                continue;
            }
            let status = live.instances.entry(e.instance.clone()).or_insert_with(|| InstanceStatus {
                id: e.instance.clone(),
                state: InstanceState::Starting,
                restarts: 0,
                started_at_ms: None,
                exit_code: None,
                reason: None,
            });
            status.restarts = e.restarts;
            match e.kind {
                EventKind::Starting => status.state = InstanceState::Starting,
                EventKind::Started { started_at_ms } => {
                    status.state = InstanceState::Running;
                    status.started_at_ms = Some(started_at_ms);
                    status.exit_code = None;
                    status.reason = None;
                }
                EventKind::Exited { code } => {
                    status.state = if code == 0 { InstanceState::Succeeded } else { InstanceState::Failed };
                    status.exit_code = Some(code);
                    status.reason = (code != 0).then(|| format!("exited with code {code}"));
                }
                EventKind::Trapped { reason } | EventKind::Failed { reason } => {
                    status.state = InstanceState::Failed;
                    status.reason = Some(reason);
                }
                EventKind::BackOff { delay_ms } => {
                    status.state = InstanceState::CrashLoopBackOff;
                    // Why it ended matters more than how long it waits: keep the exit's reason when there is one.
                    if status.reason.is_none() {
                        status.reason = Some(format!("back-off {delay_ms} ms before restarting"));
                    }
                }
                EventKind::Stopped => {
                    live.instances.remove(&e.instance);
                }
                // About the node, not an instance (`known` is false for it): kept in its recent events only.
                EventKind::Rejected { .. } => {}
            }
        }
        let live = self.live_mut(node);
        live.track_running(Instant::now());
        let watermark = live.ledger.watermark();
        if let Some(r) = self.nodes.get_mut(node) {
            if r.last_event_seq != watermark {
                r.last_event_seq = watermark;
                self.unsaved_nodes.insert(node.to_string());
            }
        }
        // Sent once the watermark is committed (the next flush), never before.
        let ack = Message::EventsAck(EventsAck { store_id, up_to: watermark });
        self.after_commit.push(Publish {
            topic: self.topics.node(node, Channel::Ack),
            payload: edge_proto::encode_for(self.protocol_of(node), &ack),
            retain: false,
        });
    }

    fn on_logs(&mut self, node: &str, lines: Vec<LogLine>) {
        for line in lines {
            if let Some(key) = self.instance_index.get(&line.instance) {
                self.logs.push(key, node, line);
            }
        }
    }

    /// Whether instance `id` is one of ours, bound to `node`.
    fn placed_on(&self, id: &str, node: &str) -> bool {
        self.instance_index
            .get(id)
            .and_then(|key| self.workloads.get(key))
            .is_some_and(|w| w.instances.iter().any(|i| i.id == id && i.node.as_deref() == Some(node)))
    }

    /// Asks a node heard from without a (current) `Hello` to send one, at most every
    /// `edge_proto::timing::HELLO_REQUEST_EVERY`.
    fn ask_for_hello(&mut self, node: &str) {
        let live = self.live_mut(node);
        if live.hello_requested.is_some_and(|t| t.elapsed() < edge_proto::timing::HELLO_REQUEST_EVERY) {
            return;
        }
        live.hello_requested = Some(Instant::now());
        self.send(node, Channel::Ack, &Message::HelloRequest, false);
    }
}

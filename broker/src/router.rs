//! The router: every session, the subscription trie and the retained store, behind one lock.
//!
//! All state that more than one connection touches lives here, and every operation is a short synchronous
//! critical section with no I/O and no call into the policy — connections ask the policy first, then call in
//! with the answers. Delivering a publish is: match the trie, push onto each matching session's bounded
//! [`Outbox`](crate::session::Outbox), wake its connection. Writing to sockets happens in the connection tasks.
//!
//! Invariants:
//! - `by_client` and `sessions` are inverse maps; the trie holds exactly the `subscriptions` of live sessions.
//! - A session has at most one attachment; every call from a connection names its `(SessionId, ConnId)` and is
//!   ignored (answered `None`) if that connection is no longer the one attached, so a connection that was taken
//!   over, kicked or shut down can never act on what replaced it.
//! - Whoever ends an attachment other than by the connection's own clean DISCONNECT publishes its Last Will,
//!   under this lock and before anything else happens to the session, so a will always precedes what the client's
//!   successor publishes.
//! - A non-persistent session is removed when its attachment ends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::mqttbytes::v4::SubscribeReasonCode;
use rumqttc::mqttbytes::QoS;
use tracing::warn;

use crate::config::{Config, Takeover};
use crate::message::{min_qos, Message};
use crate::policy::{Identity, Refusal};
use crate::rate::Sampler;
use crate::retained::{Owner, Retain, RetainedSink, RetainedStore};
use crate::session::{Attachment, ConnId, Outbox, Outgoing, Session, SessionId, Signal};
use crate::stats::{add, bump, Counters};
use crate::trie::FilterTrie;

/// At most one warning about refused retained messages per this interval (the rest are counted in it).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// Longest topic or client id quoted in a warning: both are the peer's words, up to 64 KiB.
const LOG_QUOTE: usize = 128;

/// A request to attach a connection (or local link) to the session for `client_id`.
#[derive(Debug)]
pub(crate) struct Attach {
    pub client_id: Arc<str>,
    pub identity: Identity,
    pub clean: bool,
    pub will: Option<Message>,
    pub local: bool,
    pub conn: ConnId,
    pub signal: Arc<Signal>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Attached {
    pub session: SessionId,
    pub session_present: bool,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    max_sessions: usize,
    max_queued_messages: usize,
    max_queued_bytes: usize,
    max_inflight: u16,
    max_local_queued_messages: usize,
    max_subscriptions: usize,
    takeover: Takeover,
}

pub(crate) struct Router {
    sessions: HashMap<SessionId, Session>,
    by_client: HashMap<Arc<str>, SessionId>,
    trie: FilterTrie<SessionId>,
    retained: RetainedStore,
    /// Client ids refused at CONNECT until reinstated (the controller's revocations).
    revoked: HashSet<Box<str>>,
    next_session: u64,
    /// Set by shutdown: nothing attaches any more.
    closed: bool,
    limits: Limits,
    sink: Option<Arc<dyn RetainedSink>>,
    /// Rate-limits the warning a refused retained message logs.
    refusals: Sampler,
    stats: Arc<Counters>,
}

impl Router {
    pub(crate) fn new(config: &Config, stats: Arc<Counters>) -> Router {
        Router {
            sessions: HashMap::new(),
            by_client: HashMap::new(),
            trie: FilterTrie::default(),
            retained: RetainedStore::new(config.retained_caps()),
            revoked: HashSet::new(),
            next_session: 0,
            closed: false,
            limits: Limits {
                max_sessions: config.max_sessions,
                max_queued_messages: config.max_queued_messages,
                max_queued_bytes: config.max_queued_bytes,
                max_inflight: config.max_inflight,
                max_local_queued_messages: config.max_local_queued_messages,
                max_subscriptions: config.max_subscriptions_per_session,
                takeover: config.takeover,
            },
            sink: config.retained_sink.clone(),
            refusals: Sampler::new(REFUSAL_LOG_EVERY),
            stats,
        }
    }

    pub(crate) fn sessions(&self) -> usize {
        self.sessions.len()
    }

    pub(crate) fn retained(&self) -> usize {
        self.retained.len()
    }

    pub(crate) fn retained_bytes(&self) -> usize {
        self.retained.bytes()
    }

    /// Attaches a connection, taking over, resuming or creating the session (see [`Takeover`]).
    pub(crate) fn attach(&mut self, a: Attach) -> Result<Attached, Refusal> {
        if self.closed {
            return Err(Refusal::ServiceUnavailable);
        }
        if !a.local && self.revoked.contains(&*a.client_id) {
            return Err(Refusal::NotAuthorized);
        }
        let mut resumed = None;
        if let Some(&sid) = self.by_client.get(&a.client_id) {
            let s = &self.sessions[&sid];
            if s.attached.is_some() {
                if s.local && !a.local {
                    return Err(Refusal::BadClientId);
                }
                let allowed = a.local
                    || match self.limits.takeover {
                        Takeover::Always => true,
                        Takeover::Never => false,
                        Takeover::SameIdentity => s.identity == a.identity,
                    };
                if !allowed {
                    return Err(Refusal::NotAuthorized);
                }
                bump(&self.stats.takeovers);
                self.end_attachment(sid, true);
            }
            // `end_attachment` may have removed a non-persistent session.
            if let Some(s) = self.sessions.get(&sid) {
                if a.clean || s.identity != a.identity || s.local != a.local {
                    self.discard(sid);
                } else {
                    resumed = Some(sid);
                }
            }
        }
        let (sid, session_present) = match resumed {
            Some(sid) => (sid, true),
            None => {
                if self.sessions.len() >= self.limits.max_sessions {
                    return Err(Refusal::ServiceUnavailable);
                }
                (self.create(&a), false)
            }
        };
        let Some(s) = self.sessions.get_mut(&sid) else { return Err(Refusal::ServiceUnavailable) };
        s.persistent = !a.clean;
        s.outbox.requeue_inflight();
        if s.outbox.queued() > 0 {
            a.signal.wake();
        }
        s.attached = Some(Attachment { conn: a.conn, will: a.will, signal: a.signal });
        Ok(Attached { session: sid, session_present })
    }

    fn create(&mut self, a: &Attach) -> SessionId {
        self.next_session += 1;
        let sid = SessionId(self.next_session);
        let max_messages =
            if a.local { self.limits.max_local_queued_messages } else { self.limits.max_queued_messages };
        let bytes = if a.local { usize::MAX } else { self.limits.max_queued_bytes };
        let session = Session {
            client_id: a.client_id.clone(),
            identity: a.identity.clone(),
            local: a.local,
            persistent: !a.clean,
            subscriptions: HashMap::new(),
            outbox: Outbox::new(max_messages, bytes, self.limits.max_inflight),
            attached: None,
        };
        self.sessions.insert(sid, session);
        self.by_client.insert(a.client_id.clone(), sid);
        sid
    }

    /// Removes a session and its subscriptions.
    fn discard(&mut self, sid: SessionId) {
        let Some(s) = self.sessions.remove(&sid) else { return };
        if let Some(att) = &s.attached {
            att.signal.kill();
        }
        self.by_client.remove(&s.client_id);
        for filter in s.subscriptions.keys() {
            self.trie.remove(filter, sid);
        }
    }

    /// Ends whatever attachment `sid` has (stopping its task) and, if `will`, publishes its Last Will.
    fn end_attachment(&mut self, sid: SessionId, will: bool) {
        if let Some((w, owner)) = self.detach_will(sid).filter(|_| will) {
            bump(&self.stats.wills_published);
            self.route(w, owner);
        }
    }

    /// Ends whatever attachment `sid` has and returns its will, with who is charged if it is retained, for the
    /// caller to publish (the owner is taken first: the session may be gone after).
    fn detach_will(&mut self, sid: SessionId) -> Option<(Message, Owner)> {
        let s = self.sessions.get_mut(&sid)?;
        let att = s.attached.take()?;
        att.signal.kill();
        let owner = owner_of(s);
        if !s.persistent {
            self.discard(sid);
        }
        att.will.map(|w| (w, owner))
    }

    /// Called by a connection as it ends. `will`: false only after a clean DISCONNECT.
    pub(crate) fn detach(&mut self, sid: SessionId, conn: ConnId, will: bool) {
        if self.is_attached(sid, conn) {
            self.end_attachment(sid, will);
        }
    }

    fn is_attached(&self, sid: SessionId, conn: ConnId) -> bool {
        self.sessions.get(&sid).and_then(|s| s.attached.as_ref()).is_some_and(|a| a.conn == conn)
    }

    fn session_for(&mut self, sid: SessionId, conn: ConnId) -> Option<&mut Session> {
        self.sessions.get_mut(&sid).filter(|s| s.attached.as_ref().is_some_and(|a| a.conn == conn))
    }

    /// Publishes `message` (a valid topic name; QoS already capped at 1) from an attached connection. Returns
    /// false if the connection is stale.
    pub(crate) fn publish(&mut self, sid: SessionId, conn: ConnId, message: Message) -> bool {
        let Some(owner) = self.session_for(sid, conn).map(|s| owner_of(s)) else { return false };
        bump(&self.stats.messages_in);
        self.route(message, owner);
        true
    }

    /// Stores (if retained) and delivers a message to every matching session. Wills of the slow consumers it
    /// disconnects are routed in turn, iteratively (each session ends at most once, so this terminates, and
    /// the stack does not grow with the number of sessions).
    fn route(&mut self, message: Message, owner: Owner) {
        let mut pending = vec![(message, owner)];
        while let Some((message, owner)) = pending.pop() {
            if message.retain {
                self.retain(&message, &owner);
            }
            let mut targets: HashMap<SessionId, QoS> = HashMap::new();
            self.trie.for_each_match(&message.topic, |sid, qos| {
                let q = targets.entry(sid).or_insert(qos);
                if qos == QoS::AtLeastOnce {
                    *q = qos;
                }
            });
            let mut slow = Vec::new();
            for (sid, granted) in targets {
                let delivered = message.delivered(min_qos(message.qos, granted), false);
                if let Err(Overflow::Disconnect) = self.deliver(sid, delivered) {
                    slow.push(sid);
                }
            }
            for sid in slow {
                bump(&self.stats.slow_consumers_disconnected);
                if let Some(will) = self.detach_will(sid) {
                    bump(&self.stats.wills_published);
                    pending.push(will);
                }
            }
        }
    }

    fn retain(&mut self, message: &Message, owner: &Owner) {
        let outcome = self.retained.set(message, owner);
        if let Retain::Refused(bound) = outcome {
            bump(&self.stats.retained_refused);
            if let Some(suppressed) = self.refusals.sample(Instant::now()) {
                warn!(
                    topic = ?clip(&message.topic),
                    bytes = message.cost(),
                    publisher = %clip(&owner.to_string()),
                    suppressed,
                    "retained message refused: over {bound}; delivered but not stored, and the topic's retained \
                     message removed (`suppressed`: refusals since the last warning)"
                );
            }
        }
        if let Some(sink) = &self.sink {
            match outcome {
                Retain::Stored => sink.changed(&message.topic, Some(message)),
                Retain::Removed | Retain::Refused(_) => sink.changed(&message.topic, None),
                Retain::Nothing => {}
            }
        }
    }

    /// Queues one message for one session. Offline sessions keep only QoS 1. A full queue drops the message;
    /// for an online network client a dropped QoS 1 message also means it must be disconnected (its queue
    /// will not drain in time, and silently losing QoS 1 would break the at-least-once promise).
    fn deliver(&mut self, sid: SessionId, message: Message) -> Result<(), Overflow> {
        let Some(s) = self.sessions.get_mut(&sid) else { return Ok(()) };
        if s.attached.is_none() && message.qos == QoS::AtMostOnce {
            return Ok(());
        }
        let qos = message.qos;
        match s.outbox.push(message) {
            Ok(()) => {
                if let Some(att) = &s.attached {
                    att.signal.wake();
                }
                Ok(())
            }
            Err(_) => {
                bump(&self.stats.dropped_queue_full);
                if s.attached.is_some() && !s.local && qos == QoS::AtLeastOnce {
                    Err(Overflow::Disconnect)
                } else {
                    Err(Overflow::Dropped)
                }
            }
        }
    }

    /// Applies a SUBSCRIBE whose filters the connection has already checked: `None` means refused (invalid or
    /// not allowed), `Some(qos)` the QoS to grant. Queues matching retained messages. `None` if stale.
    pub(crate) fn subscribe(
        &mut self,
        sid: SessionId,
        conn: ConnId,
        filters: Vec<(String, Option<QoS>)>,
    ) -> Option<Vec<SubscribeReasonCode>> {
        let max_subscriptions = self.limits.max_subscriptions;
        let s = self.session_for(sid, conn)?;
        let mut codes = Vec::with_capacity(filters.len());
        let mut granted_filters = Vec::new();
        for (filter, grant) in filters {
            let Some(qos) = grant else {
                codes.push(SubscribeReasonCode::Failure);
                continue;
            };
            let existing = s.subscriptions.contains_key(filter.as_str());
            if !existing && s.subscriptions.len() >= max_subscriptions {
                codes.push(SubscribeReasonCode::Failure);
                continue;
            }
            s.subscriptions.insert(filter.as_str().into(), qos);
            codes.push(SubscribeReasonCode::Success(qos));
            granted_filters.push((filter, qos));
        }
        let refused = codes.iter().filter(|c| **c == SubscribeReasonCode::Failure).count();
        add(&self.stats.subscribe_refused, refused as u64);
        for (filter, qos) in granted_filters {
            self.trie.insert(&filter, sid, qos);
            self.queue_retained(sid, &filter, qos);
        }
        Some(codes)
    }

    /// Retained messages for a new subscription. They are bounded by the queue's room; an excess is dropped
    /// (counted) rather than treated as a slow consumer, since the client has not had a chance to read yet.
    fn queue_retained(&mut self, sid: SessionId, filter: &str, granted: QoS) {
        let Some(room) = self.sessions.get(&sid).map(|s| s.outbox.room()) else { return };
        let mut found = Vec::new();
        let complete = self.retained.matching(filter, room, &mut found);
        if !complete {
            bump(&self.stats.dropped_queue_full);
        }
        for m in found {
            let delivered = m.delivered(min_qos(m.qos, granted), true);
            let _ = self.deliver(sid, delivered);
        }
    }

    /// Returns false if stale.
    pub(crate) fn unsubscribe(&mut self, sid: SessionId, conn: ConnId, filters: &[String]) -> bool {
        let Some(s) = self.session_for(sid, conn) else { return false };
        let removed: Vec<String> =
            filters.iter().filter(|f| s.subscriptions.remove(f.as_str()).is_some()).cloned().collect();
        for f in removed {
            self.trie.remove(&f, sid);
        }
        true
    }

    /// Takes up to `max` messages to send (see [`Outbox::take`]); `None` if stale. `Some(true)`: more are
    /// ready now.
    pub(crate) fn take(
        &mut self,
        sid: SessionId,
        conn: ConnId,
        max: usize,
        budget: usize,
        out: &mut Vec<Outgoing>,
    ) -> Option<bool> {
        let s = self.session_for(sid, conn)?;
        let track_acks = !s.local;
        let more = s.outbox.take(max, budget, track_acks, out);
        add(&self.stats.messages_out, out.len() as u64);
        Some(more)
    }

    /// A PUBACK. Returns false if stale.
    pub(crate) fn ack(&mut self, sid: SessionId, conn: ConnId, pkid: u16) -> bool {
        let Some(s) = self.session_for(sid, conn) else { return false };
        s.outbox.ack(pkid);
        true
    }

    /// Closes the client's connection now (publishing its will). With `revoke`, also forgets its session and
    /// refuses the client id at CONNECT until [`Router::reinstate`]. Returns true if a connection was closed.
    pub(crate) fn kick(&mut self, client_id: &str, revoke: bool) -> bool {
        if revoke {
            self.revoked.insert(client_id.into());
        }
        let Some(&sid) = self.by_client.get(client_id) else { return false };
        let Some(s) = self.sessions.get(&sid) else { return false };
        if s.local {
            return false;
        }
        let online = s.attached.is_some();
        if online {
            bump(&self.stats.kicked);
            self.end_attachment(sid, true);
        }
        if revoke {
            self.discard(sid);
        }
        online
    }

    pub(crate) fn reinstate(&mut self, client_id: &str) -> bool {
        self.revoked.remove(client_id)
    }

    /// Stops every attachment; nothing attaches afterwards. No wills: the whole broker is going away.
    pub(crate) fn close(&mut self) {
        self.closed = true;
        for s in self.sessions.values_mut() {
            if let Some(att) = s.attached.take() {
                att.signal.kill();
            }
        }
    }
}

/// Who is charged for what a session publishes retained: local links on their own budget, a principal for
/// all its client ids, an anonymous client by its id.
fn owner_of(s: &Session) -> Owner {
    if s.local {
        return Owner::Local;
    }
    match s.identity.shared_name() {
        Some(name) => Owner::Principal(name.clone()),
        None => Owner::Client(s.client_id.clone()),
    }
}

/// The first [`LOG_QUOTE`] bytes of `s` (cut at a character boundary).
fn clip(s: &str) -> &str {
    let mut end = s.len().min(LOG_QUOTE);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Dropped,
    Disconnect,
}

#[cfg(test)]
mod tests;

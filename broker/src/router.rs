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

use rumqttc::mqttbytes::v4::SubscribeReasonCode;
use rumqttc::mqttbytes::QoS;

use crate::config::{Config, Takeover};
use crate::message::{min_qos, Message};
use crate::policy::{Identity, Refusal};
use crate::retained::{Retain, RetainedSink, RetainedStore};
use crate::session::{Attachment, ConnId, Outbox, Outgoing, Session, SessionId, Signal};
use crate::stats::{add, bump, Counters};
use crate::trie::FilterTrie;

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
    stats: Arc<Counters>,
}

impl Router {
    pub(crate) fn new(config: &Config, stats: Arc<Counters>) -> Router {
        Router {
            sessions: HashMap::new(),
            by_client: HashMap::new(),
            trie: FilterTrie::default(),
            retained: RetainedStore::new(config.max_retained_messages, config.max_retained_bytes),
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
            stats,
        }
    }

    pub(crate) fn sessions(&self) -> usize {
        self.sessions.len()
    }

    pub(crate) fn retained(&self) -> usize {
        self.retained.len()
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
        if let Some(w) = self.detach_will(sid).filter(|_| will) {
            bump(&self.stats.wills_published);
            self.route(w);
        }
    }

    /// Ends whatever attachment `sid` has and returns its will for the caller to publish.
    fn detach_will(&mut self, sid: SessionId) -> Option<Message> {
        let s = self.sessions.get_mut(&sid)?;
        let att = s.attached.take()?;
        att.signal.kill();
        if !s.persistent {
            self.discard(sid);
        }
        att.will
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
        if !self.is_attached(sid, conn) {
            return false;
        }
        bump(&self.stats.messages_in);
        self.route(message);
        true
    }

    /// Stores (if retained) and delivers a message to every matching session. Wills of the slow consumers it
    /// disconnects are routed in turn, iteratively (each session ends at most once, so this terminates, and
    /// the stack does not grow with the number of sessions).
    fn route(&mut self, message: Message) {
        let mut pending = vec![message];
        while let Some(message) = pending.pop() {
            if message.retain {
                self.retain(&message);
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
                if let Some(w) = self.detach_will(sid) {
                    bump(&self.stats.wills_published);
                    pending.push(w);
                }
            }
        }
    }

    fn retain(&mut self, message: &Message) {
        let outcome = self.retained.set(message);
        if outcome == Retain::Refused {
            bump(&self.stats.retained_refused);
        }
        if let Some(sink) = &self.sink {
            match outcome {
                Retain::Stored => sink.changed(&message.topic, Some(message)),
                Retain::Removed | Retain::Refused => sink.changed(&message.topic, None),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Dropped,
    Disconnect,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::QoS::{AtLeastOnce, AtMostOnce};

    fn router(f: impl FnOnce(&mut Config)) -> Router {
        let mut c = Config::new("127.0.0.1:0".parse().unwrap());
        f(&mut c);
        Router::new(&c, Arc::new(Counters::default()))
    }

    struct Client {
        sid: SessionId,
        conn: ConnId,
        signal: Arc<Signal>,
        present: bool,
    }

    fn attach(r: &mut Router, id: &str, who: Identity, clean: bool, conn: u64) -> Result<Client, Refusal> {
        let signal = Arc::new(Signal::default());
        let will = Some(Message::new(format!("will/{id}"), "gone", AtLeastOnce, false));
        let a = Attach {
            client_id: id.into(),
            identity: who,
            clean,
            will,
            local: false,
            conn: ConnId(conn),
            signal: signal.clone(),
        };
        r.attach(a).map(|at| Client { sid: at.session, conn: ConnId(conn), signal, present: at.session_present })
    }

    fn drain(r: &mut Router, c: &Client) -> Vec<Outgoing> {
        let mut out = Vec::new();
        r.take(c.sid, c.conn, usize::MAX, usize::MAX, &mut out);
        for o in &out {
            if o.pkid != 0 {
                r.ack(c.sid, c.conn, o.pkid);
            }
        }
        out
    }

    fn sub(r: &mut Router, c: &Client, f: &str, q: QoS) {
        r.subscribe(c.sid, c.conn, vec![(f.into(), Some(q))]).unwrap();
    }

    #[test]
    fn overlapping_filters_deliver_once_at_the_highest_qos() {
        let mut r = router(|_| {});
        let a = attach(&mut r, "a", Identity::anonymous(), true, 1).unwrap();
        sub(&mut r, &a, "t/#", AtMostOnce);
        sub(&mut r, &a, "t/+", AtLeastOnce);
        r.publish(a.sid, a.conn, Message::new("t/x", "p", AtLeastOnce, false));
        let got = drain(&mut r, &a);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message.qos, AtLeastOnce);
    }

    #[test]
    fn takeover_rules() {
        let mut r = router(|_| {});
        let n1 = Identity::principal("n1");
        let first = attach(&mut r, "c", n1.clone(), true, 1).unwrap();
        assert_eq!(attach(&mut r, "c", Identity::principal("n2"), true, 2).err(), Some(Refusal::NotAuthorized));
        assert!(!first.signal.is_killed());
        let second = attach(&mut r, "c", n1, true, 3).unwrap();
        assert!(first.signal.is_killed());
        assert!(!r.ack(first.sid, first.conn, 1), "the old connection is stale");
        assert!(r.ack(second.sid, second.conn, 1));

        let mut r = router(|c| c.takeover = Takeover::Never);
        attach(&mut r, "c", Identity::anonymous(), true, 1).unwrap();
        assert!(attach(&mut r, "c", Identity::anonymous(), true, 2).is_err());
    }

    #[test]
    fn takeover_publishes_the_old_will_first() {
        let mut r = router(|_| {});
        let watcher = attach(&mut r, "w", Identity::anonymous(), true, 1).unwrap();
        sub(&mut r, &watcher, "will/#", AtLeastOnce);
        attach(&mut r, "c", Identity::anonymous(), true, 2).unwrap();
        attach(&mut r, "c", Identity::anonymous(), true, 3).unwrap();
        let got = drain(&mut r, &watcher);
        assert_eq!(got.len(), 1);
        assert_eq!(&*got[0].message.topic, "will/c");
    }

    #[test]
    fn persistent_session_queues_qos1_only_while_offline() {
        let mut r = router(|_| {});
        let p = attach(&mut r, "p", Identity::anonymous(), false, 1).unwrap();
        assert!(!p.present);
        sub(&mut r, &p, "t", AtLeastOnce);
        r.detach(p.sid, p.conn, false);
        let pubr = attach(&mut r, "pub", Identity::anonymous(), true, 2).unwrap();
        r.publish(pubr.sid, pubr.conn, Message::new("t", "q0", AtMostOnce, false));
        r.publish(pubr.sid, pubr.conn, Message::new("t", "q1", AtLeastOnce, false));
        let p = attach(&mut r, "p", Identity::anonymous(), false, 3).unwrap();
        assert!(p.present);
        let got = drain(&mut r, &p);
        assert_eq!(got.iter().map(|o| &o.message.payload[..]).collect::<Vec<_>>(), vec![b"q1"]);
        // A clean reconnect forgets it.
        let p = attach(&mut r, "p", Identity::anonymous(), true, 4).unwrap();
        assert!(!p.present);
        r.detach(p.sid, p.conn, false);
        assert_eq!(r.sessions(), 1, "only the publisher's session is left");
    }

    #[test]
    fn offline_session_of_another_identity_is_not_resumed() {
        let mut r = router(|_| {});
        let p = attach(&mut r, "p", Identity::principal("a"), false, 1).unwrap();
        sub(&mut r, &p, "t", AtLeastOnce);
        r.detach(p.sid, p.conn, false);
        let q = attach(&mut r, "p", Identity::principal("b"), false, 2).unwrap();
        assert!(!q.present);
    }

    #[test]
    fn slow_consumer_is_disconnected_on_qos1_overflow_but_qos0_only_drops() {
        let mut r = router(|c| c.max_queued_messages = 2);
        let slow = attach(&mut r, "slow", Identity::anonymous(), true, 1).unwrap();
        sub(&mut r, &slow, "t", AtLeastOnce);
        let p = attach(&mut r, "p", Identity::anonymous(), true, 2).unwrap();
        for _ in 0..3 {
            r.publish(p.sid, p.conn, Message::new("t", "x", AtMostOnce, false));
        }
        assert!(!slow.signal.is_killed());
        r.publish(p.sid, p.conn, Message::new("t", "x", AtLeastOnce, false));
        assert!(slow.signal.is_killed());
        assert_eq!(r.sessions(), 1, "its clean session is gone");
    }

    #[test]
    fn kick_and_revoke() {
        let mut r = router(|_| {});
        let c = attach(&mut r, "n", Identity::anonymous(), false, 1).unwrap();
        assert!(r.kick("n", false));
        assert!(c.signal.is_killed());
        assert!(!r.kick("n", false), "already offline");
        let c = attach(&mut r, "n", Identity::anonymous(), false, 2).unwrap();
        assert!(c.present, "a plain kick keeps the persistent session");
        assert!(r.kick("n", true));
        assert_eq!(attach(&mut r, "n", Identity::anonymous(), false, 3).err(), Some(Refusal::NotAuthorized));
        assert!(r.reinstate("n"));
        assert!(!attach(&mut r, "n", Identity::anonymous(), false, 4).unwrap().present);
    }

    #[test]
    fn retained_for_new_subscriptions_is_bounded_by_the_queue() {
        let mut r = router(|c| c.max_queued_messages = 3);
        let p = attach(&mut r, "p", Identity::anonymous(), true, 1).unwrap();
        for i in 0..5 {
            r.publish(p.sid, p.conn, Message::new(format!("r/{i}"), "v", AtLeastOnce, true));
        }
        let s = attach(&mut r, "s", Identity::anonymous(), true, 2).unwrap();
        sub(&mut r, &s, "r/+", AtMostOnce);
        let got = drain(&mut r, &s);
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|o| o.message.retain && o.message.qos == AtMostOnce));
        assert!(!s.signal.is_killed(), "retained overflow is not a slow consumer");
    }

    #[test]
    fn retained_sink_hears_every_change() {
        use std::sync::Mutex;
        #[derive(Default)]
        struct Log(Mutex<Vec<(String, Option<Vec<u8>>)>>);
        impl RetainedSink for Log {
            fn changed(&self, topic: &str, message: Option<&Message>) {
                self.0.lock().unwrap().push((topic.into(), message.map(|m| m.payload.to_vec())));
            }
        }
        let log = Arc::new(Log::default());
        let sink: Arc<dyn RetainedSink> = log.clone();
        let mut r = router(|c| {
            c.retained_sink = Some(sink);
            c.max_retained_messages = 1;
        });
        let p = attach(&mut r, "p", Identity::anonymous(), true, 1).unwrap();
        for (topic, payload, retain) in
            [("a", "1", true), ("a", "", true), ("b", "x", false), ("c", "2", true), ("d", "3", true)]
        {
            r.publish(p.sid, p.conn, Message::new(topic, payload, AtLeastOnce, retain));
        }
        let got = log.0.lock().unwrap().clone();
        let expected: Vec<(String, Option<Vec<u8>>)> = vec![
            ("a".into(), Some(b"1".to_vec())),
            ("a".into(), None),
            ("c".into(), Some(b"2".to_vec())),
            ("d".into(), None), // refused by the bound: the sink is told the topic holds nothing
        ];
        assert_eq!(got, expected);
        assert_eq!(r.retained(), 1);
    }
}

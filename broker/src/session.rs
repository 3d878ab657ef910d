//! A session: what the broker keeps per client id — identity, subscriptions, the bounded outgoing queue with
//! its QoS 1 in-flight window — and the signal that wakes or stops the connection serving it.
//!
//! [`Outbox`] is pure and holds the delivery invariants:
//! - `bytes` is the [`Message::cost`] sum of everything queued or in flight; a push that would take the queue
//!   past `max_messages` or `bytes` past `max_bytes` is refused (the caller decides what that means);
//! - at most `max_inflight` QoS 1 messages are in flight, each under a distinct non-zero packet id;
//! - messages to re-send after a reconnect (`resend`) sit at the front of the queue with their original packet
//!   ids (MQTT 3.1.1 section 4.4), so every fresh id is chosen after all of them are back in flight and cannot
//!   collide with one.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rumqttc::mqttbytes::QoS;
use tokio::sync::Notify;

use crate::message::Message;
use crate::policy::Identity;

/// Upper bound on the in-flight window whatever the config says: keeps packet-id search and ack lookup cheap.
pub(crate) const MAX_INFLIGHT: u16 = 4096;

/// Identifies a session for its lifetime; a new session for the same client id gets a new one, so a stale
/// connection can never act on its successor's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SessionId(pub u64);

/// Identifies one connection (or local link) attached to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConnId(pub u64);

/// Wakes and stops the task serving a connection. Both use `notify_one`, which stores a permit when nobody
/// waits, so a wake or a kill that lands between the task's check and its await is never lost.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    wake: Notify,
    kill: Notify,
    killed: AtomicBool,
}

impl Signal {
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill.notify_one();
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    pub(crate) async fn killed(&self) {
        self.kill.notified().await;
    }
}

/// The connection currently serving a session.
#[derive(Debug)]
pub(crate) struct Attachment {
    pub conn: ConnId,
    /// Published if this attachment ends any way but a clean DISCONNECT (QoS already capped at 1).
    pub will: Option<Message>,
    pub signal: Arc<Signal>,
}

#[derive(Debug)]
pub(crate) struct Session {
    pub client_id: Arc<str>,
    pub identity: Identity,
    /// A local link (the embedding program itself): never authorised per packet, never taken over by a
    /// network client, never disconnected for being slow.
    pub local: bool,
    /// clean_session = false: kept, with its subscriptions and QoS 1 queue, while offline.
    pub persistent: bool,
    /// Filter → granted QoS; mirrors this session's entries in the router's trie.
    pub subscriptions: HashMap<Box<str>, QoS>,
    pub outbox: Outbox,
    pub attached: Option<Attachment>,
}

/// A message to write to the client now.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub message: Message,
    /// 0 for QoS 0 (and for every message to a local link).
    pub pkid: u16,
    pub dup: bool,
}

#[derive(Debug)]
struct Queued {
    message: Message,
    /// Packet id of an unacknowledged send from an earlier connection.
    resend: Option<u16>,
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

#[derive(Debug)]
pub(crate) struct Outbox {
    queue: VecDeque<Queued>,
    inflight: VecDeque<(u16, Message)>,
    bytes: usize,
    next_pkid: u16,
    max_messages: usize,
    max_bytes: usize,
    max_inflight: usize,
}

impl Outbox {
    pub(crate) fn new(max_messages: usize, max_bytes: usize, max_inflight: u16) -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            inflight: VecDeque::new(),
            bytes: 0,
            next_pkid: 0,
            max_messages,
            max_bytes,
            max_inflight: usize::from(max_inflight.clamp(1, MAX_INFLIGHT)),
        }
    }

    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Room left in the queue, by count.
    pub(crate) fn room(&self) -> usize {
        self.max_messages.saturating_sub(self.queue.len())
    }

    pub(crate) fn push(&mut self, message: Message) -> Result<(), Full> {
        let bytes = self.bytes.checked_add(message.cost()).filter(|b| *b <= self.max_bytes).ok_or(Full)?;
        if self.queue.len() >= self.max_messages {
            return Err(Full);
        }
        self.bytes = bytes;
        self.queue.push_back(Queued { message, resend: None });
        Ok(())
    }

    /// Moves up to `max` messages, and no more once `budget` bytes are taken (at least one is), to `out`. With
    /// `track_acks`, QoS 1 messages get a packet id and stay in flight until [`Outbox::ack`]; without (local
    /// links) they are delivered when taken. Returns true if more could be taken right now (stopped at a limit,
    /// not for an empty queue or a full window).
    pub(crate) fn take(&mut self, max: usize, budget: usize, track_acks: bool, out: &mut Vec<Outgoing>) -> bool {
        let mut taken = 0;
        let mut spent = 0usize;
        while taken < max && spent < budget {
            let Some(front) = self.queue.front() else { return false };
            let acked = track_acks && front.message.qos != QoS::AtMostOnce;
            if acked && self.inflight.len() >= self.max_inflight {
                return false;
            }
            let Some(Queued { message, resend }) = self.queue.pop_front() else { return false };
            taken += 1;
            spent = spent.saturating_add(message.cost());
            if !acked {
                self.bytes -= message.cost();
                out.push(Outgoing { message, pkid: 0, dup: false });
                continue;
            }
            let (pkid, dup) = match resend {
                Some(pkid) => (pkid, true),
                None => (self.fresh_pkid(), false),
            };
            self.inflight.push_back((pkid, message.clone()));
            out.push(Outgoing { message, pkid, dup });
        }
        !self.queue.is_empty()
    }

    /// A packet id not in flight. Terminates: fewer than `MAX_INFLIGHT` < 65535 ids are in flight.
    fn fresh_pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            let id = self.next_pkid;
            if !self.inflight.iter().any(|(p, _)| *p == id) {
                return id;
            }
        }
    }

    /// A PUBACK from the client. Unknown ids are ignored (a duplicate ack, or one for a session since cleared).
    pub(crate) fn ack(&mut self, pkid: u16) -> bool {
        // Acks almost always come in order, so this usually finds the front.
        let Some(i) = self.inflight.iter().position(|(p, _)| *p == pkid) else { return false };
        if let Some((_, m)) = self.inflight.remove(i) {
            self.bytes -= m.cost();
        }
        true
    }

    /// On resuming a persistent session: everything unacknowledged goes back to the front of the queue, in its
    /// original order and with its packet id, to be re-sent with DUP set.
    pub(crate) fn requeue_inflight(&mut self) {
        while let Some((pkid, message)) = self.inflight.pop_back() {
            self.queue.push_front(Queued { message, resend: Some(pkid) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::QoS::{AtLeastOnce, AtMostOnce};

    fn m(t: &str, qos: QoS) -> Message {
        Message::new(t, vec![0u8; 10], qos, false)
    }

    #[test]
    fn bounds_by_count_and_bytes() {
        let mut o = Outbox::new(2, 1000, 8);
        assert!(o.push(m("a", AtMostOnce)).is_ok());
        assert!(o.push(m("a", AtMostOnce)).is_ok());
        assert_eq!(o.push(m("a", AtMostOnce)), Err(Full));
        let mut o = Outbox::new(100, 25, 8);
        assert!(o.push(m("ab", AtMostOnce)).is_ok());
        assert!(o.push(m("ab", AtMostOnce)).is_ok());
        assert_eq!(o.push(m("ab", AtMostOnce)), Err(Full), "24 bytes + 12 > 25");
    }

    #[test]
    fn window_limits_qos1_and_acks_free_it() {
        let mut o = Outbox::new(100, 10_000, 2);
        for _ in 0..3 {
            o.push(m("a", AtLeastOnce)).unwrap();
        }
        o.push(m("b", AtMostOnce)).unwrap();
        let mut out = Vec::new();
        assert!(!o.take(10, usize::MAX, true, &mut out), "stopped by the window");
        let ids: Vec<u16> = out.iter().map(|g| g.pkid).collect();
        assert_eq!(ids, vec![1, 2]);
        assert!(o.ack(1));
        assert!(!o.ack(1), "duplicate ack ignored");
        out.clear();
        o.take(10, usize::MAX, true, &mut out);
        assert_eq!(out.iter().map(|g| g.pkid).collect::<Vec<_>>(), vec![3, 0]);
        assert!(o.ack(2) && o.ack(3));
        assert_eq!(o.bytes, 0, "everything delivered and acknowledged costs nothing");
    }

    #[test]
    fn take_stops_at_the_byte_budget_after_at_least_one() {
        let mut o = Outbox::new(100, 10_000, 8);
        for _ in 0..3 {
            o.push(m("a", AtMostOnce)).unwrap();
        }
        let mut out = Vec::new();
        assert!(o.take(10, 1, true, &mut out));
        assert_eq!(out.len(), 1);
        assert!(!o.take(10, 22, true, &mut out));
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn take_reports_more_at_the_batch_limit() {
        let mut o = Outbox::new(100, 10_000, 8);
        for _ in 0..3 {
            o.push(m("a", AtMostOnce)).unwrap();
        }
        let mut out = Vec::new();
        assert!(o.take(2, usize::MAX, true, &mut out));
        assert!(!o.take(2, usize::MAX, true, &mut out));
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn requeue_resends_with_original_ids_before_fresh_ones() {
        let mut o = Outbox::new(100, 10_000, 3);
        for t in ["1", "2", "3", "4"] {
            o.push(m(t, AtLeastOnce)).unwrap();
        }
        let mut out = Vec::new();
        o.take(10, usize::MAX, true, &mut out);
        assert!(o.ack(2));
        o.requeue_inflight();
        out.clear();
        o.take(10, usize::MAX, true, &mut out);
        let got: Vec<(&str, u16, bool)> = out.iter().map(|g| (&*g.message.topic, g.pkid, g.dup)).collect();
        assert_eq!(got, vec![("1", 1, true), ("3", 3, true), ("4", 4, false)]);
    }

    #[test]
    fn packet_ids_wrap_and_skip_zero_and_in_flight() {
        let mut o = Outbox::new(100, 10_000, 2);
        o.next_pkid = u16::MAX - 1;
        for _ in 0..3 {
            o.push(m("a", AtLeastOnce)).unwrap();
        }
        let mut out = Vec::new();
        o.take(10, usize::MAX, true, &mut out);
        assert_eq!(out.iter().map(|g| g.pkid).collect::<Vec<_>>(), vec![u16::MAX, 1]);
        o.ack(u16::MAX);
        o.next_pkid = 0; // force a collision check with id 1, still in flight
        out.clear();
        o.take(10, usize::MAX, true, &mut out);
        assert_eq!(out[0].pkid, 2);
    }

    #[test]
    fn local_take_needs_no_acks() {
        let mut o = Outbox::new(100, 10_000, 1);
        for _ in 0..3 {
            o.push(m("a", AtLeastOnce)).unwrap();
        }
        let mut out = Vec::new();
        o.take(10, usize::MAX, false, &mut out);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|g| g.pkid == 0));
        assert_eq!(o.bytes, 0);
    }
}

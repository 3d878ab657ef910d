//! The event outbox as a pure state machine: numbering, the bounded queue of unacknowledged events, what to
//! send next on the current connection, acknowledgements and resend pacing. No I/O and no clock: the core
//! persists what [`Outbox::staged`] holds (in [`crate::store`]) before calling [`Outbox::commit`], publishes
//! what [`Outbox::next_batch`] returns, and passes `now` in.
//!
//! Life of an event: [`Outbox::push`] numbers it and stages it; [`Outbox::commit`] (after the store commit)
//! queues it; [`Outbox::next_batch`] / [`Outbox::sent`] send it on the current connection; an
//! [`EventsAck`] naming this store and a sequence number at or past it forgets it. Unacknowledged events are
//! sent again from the oldest on every connection ([`Outbox::connected`]), after [`RESEND_AFTER`] without an
//! acknowledgement, and when the core learns someone new is listening ([`Outbox::resend`]).
//!
//! **Invariants:**
//! - Sequence numbers are contiguous and increasing: `push` hands out `next_seq` and moves it by one.
//! - The queue holds at most `limit` events; the oldest beyond it are dropped and counted, never silently.
//! - An acknowledgement removes only events this store numbered and queued: another store id changes nothing,
//!   and whatever number it names (`u64::MAX` included) the work is bounded by the queue's length.

use std::collections::VecDeque;
use std::time::Instant;

use edge_proto::timing::RESEND_AFTER;
use edge_proto::{Event, EventKind, EventsAck};

/// Events per published batch: small events, well under the payload limit.
pub const BATCH: usize = 256;

/// What an acknowledgement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acked {
    /// For another store (a reset store's predecessor, or a controller that never heard our `Hello`): ignored.
    OtherStore,
    /// Nothing queued was covered (a duplicate or a stale ack).
    Nothing,
    /// Every queued event up to and including `up_to` (a number this store handed out) is forgotten: the core
    /// removes the same range from the store.
    Forgot { up_to: u64 },
}

#[derive(Debug, Clone)]
pub struct Outbox {
    store_id: u64,
    limit: usize,
    /// Committed, unacknowledged events, oldest first (mirrors the store's outbox table).
    queue: VecDeque<Event>,
    /// Numbered by the input being handled, not committed yet.
    staged: Vec<Event>,
    next_seq: u64,
    /// Events the full queue dropped since the store was created.
    dropped: u64,
    online: bool,
    /// Highest sequence number sent on the current connection (0: none).
    sent_up_to: u64,
    /// When the oldest unacknowledged event was last sent, while any is sent and unacknowledged.
    awaiting_since: Option<Instant>,
}

impl Outbox {
    /// The outbox of store `store_id` as persisted: its queued events (oldest first), the next sequence number
    /// and the drop count. Numbering resumes past both the stored counter and the newest queued event.
    pub fn new(store_id: u64, limit: usize, queued: Vec<Event>, next_seq: u64, dropped: u64) -> Outbox {
        let limit = limit.max(1);
        let mut queue: VecDeque<Event> = queued.into();
        let next_seq = next_seq.max(queue.back().map_or(0, |e| e.seq.saturating_add(1))).max(1);
        let over = queue.len().saturating_sub(limit);
        queue.drain(..over);
        Outbox {
            store_id,
            limit,
            queue,
            staged: Vec::new(),
            next_seq,
            dropped,
            online: false,
            sent_up_to: 0,
            awaiting_since: None,
        }
    }

    /// Numbers a new event and stages it; returns its sequence number.
    pub fn push(&mut self, at_ms: u64, instance: &str, restarts: u32, kind: EventKind) -> u64 {
        let seq = self.next_seq;
        // 2^64 events is beyond any node's life; saturating keeps a corrupt counter from wrapping to 1.
        self.next_seq = self.next_seq.saturating_add(1);
        self.staged.push(Event { seq, at_ms, instance: instance.to_string(), restarts, kind });
        seq
    }

    /// Events staged since the last [`Outbox::commit`], to persist.
    pub fn staged(&self) -> &[Event] {
        &self.staged
    }

    /// Queues the staged events once persisted, dropping the oldest beyond the limit. `store_dropped` is how
    /// many the store dropped for the same append (the two agree unless a store write failed); the larger
    /// count is recorded. Returns how many were dropped now.
    pub fn commit(&mut self, store_dropped: u64) -> u64 {
        self.queue.extend(self.staged.drain(..));
        let over = self.queue.len().saturating_sub(self.limit);
        self.queue.drain(..over);
        let dropped = (over as u64).max(store_dropped);
        self.dropped = self.dropped.saturating_add(dropped);
        dropped
    }

    /// Forgets the staged events without queueing them (standalone mode: nobody will acknowledge them).
    pub fn discard_staged(&mut self) {
        self.staged.clear();
    }

    /// A connection is up: everything unacknowledged is sent again on it, from the oldest.
    pub fn connected(&mut self) {
        self.online = true;
        self.sent_up_to = 0;
    }

    pub fn disconnected(&mut self) {
        self.online = false;
    }

    /// Sends everything unacknowledged again from the oldest (someone new may be listening).
    pub fn resend(&mut self) {
        self.sent_up_to = 0;
    }

    /// Whether events are sent and waiting for an acknowledgement.
    pub fn awaiting_ack(&self) -> bool {
        self.awaiting_since.is_some()
    }

    /// At a tick: when the oldest unacknowledged event has waited [`RESEND_AFTER`] for its acknowledgement,
    /// everything is due again; returns whether it is.
    pub fn resend_if_due(&mut self, now: Instant) -> bool {
        let due = self.awaiting_since.is_some_and(|t| now.saturating_duration_since(t) >= RESEND_AFTER);
        if due {
            self.resend();
        }
        due
    }

    /// The next events to send on this connection, oldest first, at most [`BATCH`]; `None` when offline or
    /// when everything queued was sent. Nothing changes until [`Outbox::sent`] says the batch went out.
    pub fn next_batch(&self) -> Option<Vec<Event>> {
        if !self.online {
            return None;
        }
        let start = self.queue.partition_point(|e| e.seq <= self.sent_up_to);
        let batch: Vec<Event> = self.queue.iter().skip(start).take(BATCH).cloned().collect();
        (!batch.is_empty()).then_some(batch)
    }

    /// The batch ending at `up_to` was handed to the connection at `now`.
    pub fn sent(&mut self, up_to: u64, now: Instant) {
        let from_oldest = self.queue.front().is_some_and(|e| e.seq > self.sent_up_to);
        if from_oldest || self.awaiting_since.is_none() {
            // The ack timer runs from the latest send of the oldest event.
            self.awaiting_since = Some(now);
        }
        self.sent_up_to = self.sent_up_to.max(up_to);
    }

    /// Applies an acknowledgement: forgets queued events of this store numbered up to `ack.up_to`.
    pub fn ack(&mut self, ack: &EventsAck, now: Instant) -> Acked {
        if ack.store_id != self.store_id {
            return Acked::OtherStore;
        }
        let mut forgot = None;
        while let Some(e) = self.queue.front().filter(|e| e.seq <= ack.up_to) {
            forgot = Some(e.seq);
            self.queue.pop_front();
        }
        let Some(up_to) = forgot else { return Acked::Nothing };
        self.awaiting_since = if self.queue.is_empty() { None } else { Some(now) };
        Acked::Forgot { up_to }
    }

    /// The oldest unacknowledged event's number (0: none). Staged events count: they are numbered already, and
    /// a controller told otherwise would take them for dropped.
    pub fn oldest_unacked(&self) -> u64 {
        self.queue.front().or(self.staged.first()).map_or(0, |e| e.seq)
    }

    /// The highest sequence number handed out (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.next_seq.saturating_sub(1)
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Events the full queue dropped since the store was created.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Committed events not acknowledged yet.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const STORE: u64 = 7;

    fn outbox(limit: usize) -> Outbox {
        Outbox::new(STORE, limit, Vec::new(), 1, 0)
    }

    fn push(o: &mut Outbox, n: usize) {
        for _ in 0..n {
            o.push(0, "i-1", 0, EventKind::Stopped);
        }
        o.commit(0);
    }

    fn seqs(batch: &Option<Vec<Event>>) -> Vec<u64> {
        batch.iter().flatten().map(|e| e.seq).collect()
    }

    fn ack(up_to: u64) -> EventsAck {
        EventsAck { store_id: STORE, up_to }
    }

    #[test]
    fn numbers_contiguously_and_resumes_past_what_was_persisted() {
        let mut o = outbox(10);
        assert_eq!(o.push(5, "i-1", 0, EventKind::Starting), 1);
        assert_eq!(o.push(6, "i-1", 0, EventKind::Stopped), 2);
        assert_eq!(o.oldest_unacked(), 1, "staged events count as unacknowledged");
        assert_eq!(o.staged().len(), 2);
        assert_eq!(o.commit(0), 0);
        assert_eq!((o.len(), o.last_seq(), o.next_seq()), (2, 2, 3));
        let queued: Vec<Event> = o.queue.iter().cloned().collect();
        // The stored counter lags the queue (a crash between writes cannot happen, but a corrupt meta can).
        let again = Outbox::new(STORE, 10, queued, 1, 0);
        assert_eq!(again.next_seq(), 3);
        assert_eq!(Outbox::new(STORE, 10, vec![], 0, 0).next_seq(), 1, "0 is never a sequence number");
    }

    #[test]
    fn sends_in_batches_once_per_connection_and_again_after_reconnecting() {
        let mut o = outbox(10_000);
        let t0 = Instant::now();
        push(&mut o, BATCH + 10);
        assert_eq!(o.next_batch(), None, "offline: nothing to send");
        o.connected();
        let first = o.next_batch();
        assert_eq!(seqs(&first), (1..=BATCH as u64).collect::<Vec<_>>());
        assert_eq!(o.next_batch(), first, "nothing moves until the batch is sent");
        o.sent(BATCH as u64, t0);
        assert_eq!(seqs(&o.next_batch()).len(), 10);
        o.sent(BATCH as u64 + 10, t0);
        assert_eq!(o.next_batch(), None);
        assert!(o.awaiting_ack());
        o.disconnected();
        o.connected();
        assert_eq!(seqs(&o.next_batch())[0], 1, "a new connection sends everything unacknowledged again");
    }

    #[test]
    fn resends_after_resend_after_without_an_ack() {
        let mut o = outbox(100);
        let t0 = Instant::now();
        o.connected();
        push(&mut o, 3);
        o.sent(3, t0);
        assert!(!o.resend_if_due(t0 + RESEND_AFTER - Duration::from_millis(1)));
        assert_eq!(o.next_batch(), None);
        assert!(o.resend_if_due(t0 + RESEND_AFTER));
        assert_eq!(seqs(&o.next_batch()), [1, 2, 3]);
        // Sending the oldest again restarts the timer.
        o.sent(3, t0 + RESEND_AFTER);
        assert!(!o.resend_if_due(t0 + RESEND_AFTER + Duration::from_secs(1)));
        // A partial ack restarts it too; a full one stops it.
        assert_eq!(o.ack(&ack(1), t0 + RESEND_AFTER * 2), Acked::Forgot { up_to: 1 });
        assert!(!o.resend_if_due(t0 + RESEND_AFTER * 2 + Duration::from_secs(1)));
        assert_eq!(o.ack(&ack(3), t0 + RESEND_AFTER * 3), Acked::Forgot { up_to: 3 });
        assert!(!o.awaiting_ack());
        assert!(!o.resend_if_due(t0 + RESEND_AFTER * 10));
    }

    #[test]
    fn acks_forget_only_this_stores_events_with_bounded_work() {
        let mut o = outbox(100);
        let now = Instant::now();
        push(&mut o, 5);
        assert_eq!(o.ack(&EventsAck { store_id: STORE + 1, up_to: 5 }, now), Acked::OtherStore);
        assert_eq!(o.ack(&EventsAck { store_id: 0, up_to: 5 }, now), Acked::OtherStore);
        assert_eq!(o.len(), 5);
        assert_eq!(o.ack(&ack(0), now), Acked::Nothing);
        assert_eq!(o.ack(&ack(2), now), Acked::Forgot { up_to: 2 });
        assert_eq!(o.ack(&ack(2), now), Acked::Nothing, "a duplicate ack changes nothing");
        assert_eq!(o.oldest_unacked(), 3);
        // A hostile number: forgets what is queued (up to our own last number), loops once per queued event.
        assert_eq!(o.ack(&ack(u64::MAX), now), Acked::Forgot { up_to: 5 });
        assert!(o.is_empty());
        assert_eq!(o.oldest_unacked(), 0);
        assert_eq!(o.ack(&ack(u64::MAX), now), Acked::Nothing);
        // Numbering goes on past acknowledged events.
        push(&mut o, 1);
        assert_eq!(o.oldest_unacked(), 6);
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_and_counts_them() {
        let mut o = Outbox::new(STORE, 3, Vec::new(), 1, 10);
        for _ in 0..5 {
            o.push(0, "i-1", 0, EventKind::Stopped);
        }
        assert_eq!(o.commit(2), 2);
        assert_eq!(o.queue.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(o.dropped(), 12);
        // The store dropped more (its copy held events the memory one lost with a failed ack write).
        o.push(0, "i-1", 0, EventKind::Stopped);
        assert_eq!(o.commit(3), 3);
        assert_eq!(o.dropped(), 15);
        // Standalone: staged events are discarded, never queued.
        o.push(0, "i-1", 0, EventKind::Stopped);
        o.discard_staged();
        assert_eq!(o.commit(0), 0);
        assert_eq!(o.len(), 3);
        assert_eq!(o.last_seq(), 7);
    }
}

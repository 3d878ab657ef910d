//! Events waiting for the controller's acknowledgement, in RAM (pure, like the agent's `outbox.rs` without
//! its store).
//!
//! Flash is too precious to write per event, so the outbox lives in RAM and a reboot starts a new event store:
//! the node draws a new `store_id` at every boot, which tells the controller its numbering starts again at 1
//! (see `Hello::store_id`). Within a boot numbers are contiguous; a full outbox drops its oldest and counts it
//! (`events_dropped` in heartbeats), so the controller stops waiting for those.

use edge_proto::{Event, EventKind, EventsAck};

/// Events kept at most.
pub const CAPACITY: usize = 32;
/// Events per `Events` message.
pub const BATCH: usize = 8;

#[derive(Debug)]
pub struct Outbox {
    store_id: u64,
    events: heapless::Deque<Event, CAPACITY>,
    next_seq: u64,
    dropped: u64,
    /// The highest sequence number sent on this connection, and when (to resend after a silence).
    sent_up_to: u64,
    sent_at: u64,
}

impl Outbox {
    pub fn new(store_id: u64) -> Outbox {
        Outbox { store_id, events: heapless::Deque::new(), next_seq: 1, dropped: 0, sent_up_to: 0, sent_at: 0 }
    }

    pub fn push(&mut self, at_ms: u64, instance: &str, restarts: u32, kind: EventKind) {
        let event = Event { seq: self.next_seq, at_ms, instance: instance.into(), restarts, kind };
        self.next_seq += 1;
        if let Err(event) = self.events.push_back(event) {
            let _ = self.events.pop_front();
            self.dropped += 1;
            let _ = self.events.push_back(event);
        }
    }

    /// The next batch not yet sent on this connection, marked sent at `now`.
    pub fn next_batch(&mut self, now: u64) -> Option<alloc::vec::Vec<Event>> {
        let batch: alloc::vec::Vec<Event> =
            self.events.iter().filter(|e| e.seq > self.sent_up_to).take(BATCH).cloned().collect();
        let last = batch.last()?.seq;
        self.sent_up_to = last;
        self.sent_at = now;
        Some(batch)
    }

    /// A new connection, or no acknowledgement for `after` ms since the last send: send everything again.
    pub fn resend_if(&mut self, now: u64, after: u64, force: bool) {
        if force || (!self.events.is_empty() && now.saturating_sub(self.sent_at) >= after) {
            self.sent_up_to = 0;
        }
    }

    pub fn ack(&mut self, ack: &EventsAck) {
        if ack.store_id != self.store_id {
            return;
        }
        while self.events.front().is_some_and(|e| e.seq <= ack.up_to) {
            let _ = self.events.pop_front();
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    pub fn oldest_unacked(&self) -> u64 {
        self.events.front().map_or(0, |e| e.seq)
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_batches_acks_and_drops_the_oldest_when_full() {
        let mut o = Outbox::new(5);
        for _ in 0..10 {
            o.push(1, "i", 0, EventKind::Starting);
        }
        let first = o.next_batch(100).unwrap();
        assert_eq!(first.iter().map(|e| e.seq).collect::<alloc::vec::Vec<_>>(), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(o.next_batch(100).unwrap().len(), 2);
        assert!(o.next_batch(100).is_none());
        o.ack(&EventsAck { store_id: 9, up_to: 10 });
        assert_eq!(o.oldest_unacked(), 1, "an ack for another store is ignored");
        o.ack(&EventsAck { store_id: 5, up_to: 4 });
        assert_eq!(o.oldest_unacked(), 5);
        o.resend_if(3000, 3000, false);
        assert!(o.next_batch(3000).is_none(), "not yet");
        o.resend_if(3100, 3000, false);
        assert_eq!(o.next_batch(3100).unwrap()[0].seq, 5, "resent after a silence");
        for _ in 0..CAPACITY {
            o.push(2, "i", 0, EventKind::Stopped);
        }
        assert_eq!((o.dropped(), o.last_seq(), o.oldest_unacked()), (6, 10 + CAPACITY as u64, 11));
    }
}

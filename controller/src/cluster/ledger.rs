//! The event ledger of one node, pure: which sequence numbers were applied, the contiguous watermark that is
//! persisted and acknowledged, and how many the agent lost for good.
//!
//! **Invariants:**
//! - Each sequence number is applied at most once: at or below the watermark, or in the set above it, is a
//!   duplicate.
//! - The watermark only moves over numbers that were applied, or that the agent says it no longer has
//!   ([`Ledger::settle`]); those it skips are counted `missing` arithmetically, never one by one, so a peer
//!   claiming `u64::MAX` costs no more than one claiming 2.
//! - The set above the watermark holds at most [`MAX_ABOVE`] numbers; beyond that an out-of-order event is
//!   deferred (not applied, not acknowledged): the agent sends it again.

use std::collections::BTreeSet;

/// Most sequence numbers kept above the watermark (events applied out of order, waiting for a gap to close).
pub const MAX_ABOVE: usize = 65_536;

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Duplicate,
    /// Not applied now (too far out of order); the agent keeps it and sends it again.
    Deferred,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    watermark: u64,
    above: BTreeSet<u64>,
    pub received: u64,
    pub duplicates: u64,
    pub missing: u64,
}

impl Ledger {
    /// A ledger whose events up to `watermark` were applied (the persisted watermark).
    pub fn new(watermark: u64) -> Ledger {
        Ledger { watermark, ..Ledger::default() }
    }

    /// Every event up to this number was applied or given up: what is persisted and acknowledged.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    pub fn apply(&mut self, seq: u64) -> Outcome {
        if seq <= self.watermark || self.above.contains(&seq) {
            self.duplicates = self.duplicates.saturating_add(1);
            return Outcome::Duplicate;
        }
        if Some(seq) == self.watermark.checked_add(1) {
            self.watermark = seq;
            self.absorb();
        } else if self.above.len() >= MAX_ABOVE {
            return Outcome::Deferred;
        } else {
            self.above.insert(seq);
        }
        self.received = self.received.saturating_add(1);
        Outcome::Applied
    }

    /// The agent says every event up to `floor` was either applied here or dropped by its full outbox: stop
    /// waiting for the ones missing, and count them.
    pub fn settle(&mut self, floor: u64) {
        if floor <= self.watermark {
            return;
        }
        // Every number in `above` is past the watermark; those up to `floor` were applied, the rest of the
        // range is missing. At most MAX_ABOVE numbers are looked at.
        let keep = match floor.checked_add(1) {
            Some(next) => self.above.split_off(&next),
            None => BTreeSet::new(),
        };
        let applied_below = std::mem::replace(&mut self.above, keep).len() as u64;
        let skipped = (floor - self.watermark).saturating_sub(applied_below);
        self.missing = self.missing.saturating_add(skipped);
        self.watermark = floor;
        self.absorb();
    }

    /// The agent's store is new: its numbering starts again. Counters keep counting.
    pub fn reset(&mut self) {
        self.watermark = 0;
        self.above.clear();
    }

    /// Moves the watermark over what is now contiguous.
    fn absorb(&mut self) {
        while let Some(next) = self.watermark.checked_add(1) {
            if !self.above.remove(&next) {
                break;
            }
            self.watermark = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn in_order_out_of_order_and_duplicates() {
        let mut l = Ledger::new(0);
        assert_eq!(l.apply(1), Outcome::Applied);
        assert_eq!(l.apply(3), Outcome::Applied);
        assert_eq!(l.watermark(), 1);
        assert_eq!(l.apply(3), Outcome::Duplicate);
        assert_eq!(l.apply(1), Outcome::Duplicate);
        assert_eq!(l.apply(2), Outcome::Applied);
        assert_eq!(l.watermark(), 3);
        assert_eq!((l.received, l.duplicates, l.missing), (3, 2, 0));
    }

    #[test]
    fn settling_counts_the_gaps_arithmetically() {
        let mut l = Ledger::new(10);
        l.apply(12);
        l.apply(15);
        l.settle(20);
        assert_eq!(l.watermark(), 20);
        assert_eq!(l.missing, 10 - 2);
        // A peer claiming the whole number space costs one subtraction, not 2^64 steps.
        l.settle(u64::MAX);
        assert_eq!(l.watermark(), u64::MAX);
        assert_eq!(l.missing, 8 + (u64::MAX - 20));
        assert_eq!(l.apply(u64::MAX), Outcome::Duplicate);
    }

    #[test]
    fn the_top_of_the_number_space_never_overflows() {
        let mut l = Ledger::new(u64::MAX - 1);
        assert_eq!(l.apply(u64::MAX), Outcome::Applied);
        assert_eq!(l.watermark(), u64::MAX);
        let mut l = Ledger::new(0);
        assert_eq!(l.apply(u64::MAX), Outcome::Applied);
        l.settle(u64::MAX);
        assert_eq!(l.missing, u64::MAX - 1);
    }

    #[test]
    fn the_set_above_the_watermark_is_bounded() {
        let mut l = Ledger::new(0);
        for seq in 2..(MAX_ABOVE as u64 + 2) {
            assert_eq!(l.apply(seq), Outcome::Applied);
        }
        assert_eq!(l.apply(u64::MAX), Outcome::Deferred);
        assert_eq!(l.apply(1), Outcome::Applied);
        assert_eq!(l.watermark(), MAX_ABOVE as u64 + 1);
        assert_eq!(l.apply(u64::MAX), Outcome::Applied);
    }

    #[test]
    fn a_reset_starts_numbering_again() {
        let mut l = Ledger::new(50);
        l.reset();
        assert_eq!(l.apply(1), Outcome::Applied);
        assert_eq!(l.watermark(), 1);
    }

    proptest! {
        /// Any order, any duplicates and any gaps of one stream give the same applied set and the same
        /// `missing` count once the agent settles past its end.
        #[test]
        fn order_duplicates_and_gaps_do_not_change_the_outcome(
            present in proptest::collection::vec(any::<bool>(), 1..200),
            copies in proptest::collection::vec(1usize..4, 200),
            shuffle in proptest::collection::vec(any::<u64>(), 600),
        ) {
            let n = present.len() as u64;
            let mut stream: Vec<u64> = Vec::new();
            for (i, keep) in present.iter().enumerate() {
                if *keep {
                    stream.extend(std::iter::repeat_n(i as u64 + 1, copies[i]));
                }
            }
            let mut keyed: Vec<(u64, u64)> = stream.iter().zip(&shuffle).map(|(s, k)| (*k, *s)).collect();
            keyed.sort();
            let shuffled: Vec<u64> = keyed.into_iter().map(|(_, s)| s).collect();
            let run = |events: &[u64]| {
                let mut l = Ledger::new(0);
                let applied: BTreeSet<u64> =
                    events.iter().filter(|s| l.apply(**s) == Outcome::Applied).copied().collect();
                l.settle(n);
                (applied, l.missing, l.watermark())
            };
            let distinct: BTreeSet<u64> = stream.iter().copied().collect();
            let (applied, missing, watermark) = run(&shuffled);
            prop_assert_eq!(&applied, &distinct);
            prop_assert_eq!(missing, n - distinct.len() as u64);
            prop_assert_eq!(watermark, n);
            prop_assert_eq!(run(&stream), (applied, missing, watermark));
        }
    }
}

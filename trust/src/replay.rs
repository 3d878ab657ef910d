//! Replay protection for report counters: pure state, one per node (and per counter stream), kept by the
//! controller.
//!
//! Every report carries a `u64` counter its node increases for each report. [`ReplayWindow::accept`]
//! admits a counter above any seen so far, and also one up to 63 below the highest if it has not been seen
//! (MQTT orders messages per topic only, so reports on two topics may arrive interleaved); every counter
//! is admitted at most once. This is the IPsec/DTLS anti-replay window, with a 64-bit bitmap.
//!
//! **Invariants:** every operation is O(1) whatever the counters (no loop over a counter range; `u64::MAX`
//! is an ordinary value); no arithmetic can overflow (differences are taken only in the direction known to
//! be non-negative). A node whose counter reached `u64::MAX` can send nothing newer: it must rejoin (new
//! key, new window), which at one report per millisecond is 584 million years away.
//!
//! Check the tag **before** calling `accept`: an unauthenticated counter must not advance the window (a
//! forger would otherwise lock the node out by sending `u64::MAX`). Persist [`ReplayWindow::highest`] and
//! restore it with [`ReplayWindow::resume`], or a restarted controller would accept old reports again; the
//! node likewise must not reuse counters after a reboot (persist a high-water mark ahead of use, e.g. in
//! blocks of 1,000).

/// How far below the highest counter a late, unseen counter is still admitted.
pub const WINDOW: u64 = 64;

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("report counter {0} was already accepted")]
    Duplicate(u64),
    #[error("report counter {counter} is older than the window below {highest}")]
    TooOld { counter: u64, highest: u64 },
}

/// The counters seen from one node. `Default` is a window that has seen nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayWindow {
    /// The highest counter accepted; `None` before the first.
    highest: Option<u64>,
    /// Bit `i` set: counter `highest - i` was accepted. Bit 0 is `highest` itself.
    seen: u64,
}

impl ReplayWindow {
    /// A window that has seen nothing: any counter is accepted first.
    pub const fn new() -> ReplayWindow {
        ReplayWindow { highest: None, seen: 0 }
    }

    /// A window restored from a persisted [`ReplayWindow::highest`]: everything at or below it counts as
    /// seen, since which late counters were still missing is not persisted.
    pub const fn resume(highest: u64) -> ReplayWindow {
        ReplayWindow { highest: Some(highest), seen: u64::MAX }
    }

    /// The highest counter accepted, to persist.
    pub const fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Whether `counter` would be accepted, without recording it.
    pub fn check(&self, counter: u64) -> Result<(), ReplayError> {
        let Some(highest) = self.highest else { return Ok(()) };
        if counter > highest {
            return Ok(());
        }
        let behind = highest - counter; // counter <= highest: cannot underflow.
        if behind >= WINDOW {
            return Err(ReplayError::TooOld { counter, highest });
        }
        if self.seen & (1 << behind) != 0 {
            return Err(ReplayError::Duplicate(counter));
        }
        Ok(())
    }

    /// Records `counter` if it is new; refuses it (and changes nothing) otherwise.
    pub fn accept(&mut self, counter: u64) -> Result<(), ReplayError> {
        self.check(counter)?;
        match self.highest {
            Some(highest) if counter <= highest => self.seen |= 1 << (highest - counter),
            Some(highest) => {
                let ahead = counter - highest; // counter > highest: at least 1, no underflow.
                self.seen = if ahead >= WINDOW { 1 } else { (self.seen << ahead) | 1 };
                self.highest = Some(counter);
            }
            None => {
                self.seen = 1;
                self.highest = Some(counter);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increasing_counters_are_accepted_once() {
        let mut w = ReplayWindow::new();
        for c in 1..=200 {
            assert_eq!(w.accept(c), Ok(()));
            assert_eq!(w.accept(c), Err(ReplayError::Duplicate(c)));
        }
        assert_eq!(w.highest(), Some(200));
    }

    #[test]
    fn late_counters_inside_the_window_are_accepted_once() {
        let mut w = ReplayWindow::new();
        w.accept(100).unwrap();
        assert_eq!(w.accept(37), Ok(()), "63 behind: inside");
        assert_eq!(w.accept(36), Err(ReplayError::TooOld { counter: 36, highest: 100 }), "64 behind: outside");
        assert_eq!(w.accept(99), Ok(()));
        assert_eq!(w.accept(99), Err(ReplayError::Duplicate(99)));
        assert_eq!(w.accept(37), Err(ReplayError::Duplicate(37)));
        // Moving ahead keeps what was seen, shifted.
        w.accept(110).unwrap();
        assert_eq!(w.accept(99), Err(ReplayError::Duplicate(99)));
        assert_eq!(w.accept(98), Ok(()));
        assert_eq!(w.accept(47), Ok(()));
        assert_eq!(w.accept(46), Err(ReplayError::TooOld { counter: 46, highest: 110 }));
    }

    #[test]
    fn jumping_far_ahead_forgets_the_old_bitmap() {
        let mut w = ReplayWindow::new();
        w.accept(5).unwrap();
        w.accept(5 + WINDOW).unwrap();
        assert_eq!(w.accept(6), Ok(()), "63 behind, never seen");
        assert_eq!(w.accept(5), Err(ReplayError::TooOld { counter: 5, highest: 69 }));
    }

    #[test]
    fn refusal_changes_nothing() {
        let mut w = ReplayWindow::new();
        w.accept(10).unwrap();
        let before = w;
        assert!(w.accept(10).is_err());
        assert!(w.check(11).is_ok());
        assert_eq!(w, before, "check is pure, a refused accept records nothing");
    }

    #[test]
    fn extreme_counters_neither_overflow_nor_loop() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.accept(0), Ok(()));
        assert_eq!(w.accept(u64::MAX), Ok(()));
        assert_eq!(w.accept(0), Err(ReplayError::TooOld { counter: 0, highest: u64::MAX }));
        assert_eq!(w.accept(u64::MAX), Err(ReplayError::Duplicate(u64::MAX)));
        assert_eq!(w.accept(u64::MAX - 1), Ok(()));
        assert_eq!(w.accept(u64::MAX - 63), Ok(()));
        assert_eq!(w.accept(u64::MAX - 64), Err(ReplayError::TooOld { counter: u64::MAX - 64, highest: u64::MAX }));

        let mut first = ReplayWindow::new();
        assert_eq!(first.accept(u64::MAX), Ok(()));
        assert_eq!(first.accept(u64::MAX), Err(ReplayError::Duplicate(u64::MAX)));
        assert_eq!(first.accept(u64::MAX - 1), Ok(()));
    }

    #[test]
    fn resumed_window_refuses_everything_up_to_highest() {
        let mut w = ReplayWindow::resume(1000);
        assert_eq!(w.accept(1000), Err(ReplayError::Duplicate(1000)));
        assert_eq!(w.accept(990), Err(ReplayError::Duplicate(990)));
        assert_eq!(w.accept(1), Err(ReplayError::TooOld { counter: 1, highest: 1000 }));
        assert_eq!(w.accept(1001), Ok(()));
        let mut top = ReplayWindow::resume(u64::MAX);
        assert!(top.accept(u64::MAX).is_err() && top.accept(0).is_err());
    }

    #[test]
    fn model_check_against_a_set() {
        // Deterministic pseudo-random counters near each other, checked against a plain set model.
        let mut w = ReplayWindow::new();
        let mut seen = alloc::collections::BTreeSet::new();
        let mut highest: Option<u64> = None;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let c = (step / 4).saturating_add(x % 90);
            let expected_ok = !seen.contains(&c) && highest.is_none_or(|h| c > h || h - c < WINDOW);
            assert_eq!(w.accept(c).is_ok(), expected_ok, "counter {c} at step {step}");
            if expected_ok {
                seen.insert(c);
                highest = Some(highest.map_or(c, |h| h.max(c)));
            }
        }
    }
}

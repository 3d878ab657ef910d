//! Rates: how fast a network connection may send to the broker ([`Inbound`]: a token bucket on bytes and one
//! on packets), and a gate that keeps a repeated warning to one line per interval ([`Sampler`]). Pure: callers
//! pass the time.
//!
//! A bucket is kept the way the generic cell rate algorithm keeps it: one instant, the *theoretical arrival
//! time* `tat`, when the bucket would be full again. Spending `n` units moves `tat` forward by `n / rate`;
//! spending is allowed while `tat` is at most `burst / rate` ahead of now. That is a token bucket of depth
//! `burst` refilled at `rate` per second (tokens = (now + burst / rate − tat) × rate), with no fraction to carry
//! and no refill step. A spend is never refused: the packet that crosses the limit is already read, so it
//! overdraws the bucket, and the reader waits until the debt is repaid. That is what makes the limit
//! back-pressure (the socket is not read, TCP's window closes, the client's writes block) instead of a
//! disconnection.
//!
//! Invariant: nothing here can overflow or panic, whatever the packet sizes and rates. Times are `Duration`s
//! since the limiter's origin, added with saturation; a cost is computed in `u128` and saturates at
//! `u64::MAX` nanoseconds (584 years); a rate of 0 is taken as 1 per second.

use std::time::{Duration, Instant};

/// A sustained rate with a burst allowance, in units (bytes or packets) per second. See
/// [`crate::Config::inbound_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Units per second, sustained. 0 is taken as 1.
    pub per_second: u64,
    /// Units that may arrive at once after a quiet spell (the bucket's depth).
    pub burst: u64,
}

impl Rate {
    pub const fn new(per_second: u64, burst: u64) -> Rate {
        Rate { per_second, burst }
    }
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// One token bucket (see the module docs).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    per_second: u64,
    /// `burst / rate`: how far ahead of now `tat` may be while spending is allowed.
    tolerance: Duration,
    /// Since the owning limiter's origin.
    tat: Duration,
}

impl Bucket {
    fn new(rate: Rate) -> Bucket {
        let per_second = rate.per_second.max(1);
        Bucket { per_second, tolerance: cost(rate.burst, per_second), tat: Duration::ZERO }
    }

    /// How long from `now` until spending is allowed again; zero if it is now.
    fn wait(&self, now: Duration) -> Duration {
        self.tat.saturating_sub(now).saturating_sub(self.tolerance)
    }

    fn spend(&mut self, now: Duration, units: u64) {
        // An idle bucket does not bank time beyond its burst: spending starts from now at the earliest.
        self.tat = self.tat.max(now).saturating_add(cost(units, self.per_second));
    }

    /// Units that may be spent now without any wait (the tokens in the bucket).
    #[cfg(test)]
    fn available(&self, now: Duration) -> u64 {
        // Time banked beyond the burst does not count: the bucket is full at `tolerance` of headroom.
        let headroom = self.tolerance.saturating_sub(self.tat.saturating_sub(now));
        let units = headroom.as_nanos().saturating_mul(u128::from(self.per_second)) / NANOS_PER_SEC;
        u64::try_from(units).unwrap_or(u64::MAX)
    }
}

/// The time `units` take at `per_second` (≥ 1), rounded up so a stream of small spends cannot beat the rate.
fn cost(units: u64, per_second: u64) -> Duration {
    let nanos = (u128::from(units) * NANOS_PER_SEC).div_ceil(u128::from(per_second));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The inbound pace of one network connection: every packet spends its size from the byte bucket and one from
/// the packet bucket; the connection reads on only while both allow it. A missing bucket is no limit.
#[derive(Debug, Clone)]
pub(crate) struct Inbound {
    origin: Instant,
    bytes: Option<Bucket>,
    packets: Option<Bucket>,
}

impl Inbound {
    pub(crate) fn new(bytes: Option<Rate>, packets: Option<Rate>, origin: Instant) -> Inbound {
        Inbound { origin, bytes: bytes.map(Bucket::new), packets: packets.map(Bucket::new) }
    }

    fn since(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.origin)
    }

    /// How long from `now` until the connection may handle its next packet; zero if it may now.
    pub(crate) fn wait(&self, now: Instant) -> Duration {
        let at = self.since(now);
        let wait = |b: &Option<Bucket>| b.as_ref().map_or(Duration::ZERO, |b| b.wait(at));
        wait(&self.bytes).max(wait(&self.packets))
    }

    /// One packet of `bytes` bytes (its whole frame) was handled at `now`.
    pub(crate) fn spend(&mut self, now: Instant, bytes: usize) {
        let at = self.since(now);
        if let Some(b) = &mut self.bytes {
            b.spend(at, u64::try_from(bytes).unwrap_or(u64::MAX));
        }
        if let Some(p) = &mut self.packets {
            p.spend(at, 1);
        }
    }
}

/// Lets a repeated warning through at most once per interval and counts the occurrences it held back, so a
/// flood of refusals costs one log line per interval, not one per message.
#[derive(Debug, Clone)]
pub(crate) struct Sampler {
    every: Duration,
    /// When the last line was let through; `None` before the first.
    last: Option<Instant>,
    suppressed: u64,
}

impl Sampler {
    pub(crate) fn new(every: Duration) -> Sampler {
        Sampler { every, last: None, suppressed: 0 }
    }

    /// `Some(n)`: write the line now; `n` occurrences were held back since the last one. `None`: hold it back.
    pub(crate) fn sample(&mut self, now: Instant) -> Option<u64> {
        // Measured from the last line (never added to it), so no interval can overflow the clock.
        if self.last.is_some_and(|last| now.saturating_duration_since(last) < self.every) {
            self.suppressed = self.suppressed.saturating_add(1);
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_full_bucket_lets_the_burst_through_then_paces_at_the_rate() {
        let mut b = Bucket::new(Rate::new(1000, 100));
        let t0 = Duration::from_secs(5);
        assert_eq!(b.available(t0), 100);
        b.spend(t0, 100);
        assert_eq!(b.wait(t0), Duration::ZERO, "spending the whole burst is allowed");
        assert_eq!(b.available(t0), 0);
        b.spend(t0, 50);
        assert_eq!(b.wait(t0), 50 * MS, "50 units overdrawn at 1000/s");
        assert_eq!(b.wait(t0 + 20 * MS), 30 * MS);
        assert_eq!(b.wait(t0 + 50 * MS), Duration::ZERO);
        assert_eq!(b.available(t0 + 50 * MS), 0);
        assert_eq!(b.available(t0 + 60 * MS), 10);
        assert_eq!(b.available(t0 + Duration::from_secs(60)), 100, "never more than the burst");
    }

    #[test]
    fn an_idle_bucket_banks_no_more_than_its_burst() {
        let mut b = Bucket::new(Rate::new(10, 10));
        b.spend(Duration::from_secs(100), 10);
        b.spend(Duration::from_secs(100), 10);
        assert_eq!(b.wait(Duration::from_secs(100)), Duration::from_secs(1));
    }

    #[test]
    fn sustained_spending_converges_on_the_rate() {
        // A reader that handles a packet whenever it may: over 10 s at 1,000 B/s it gets 10 × 1,000 plus the
        // burst, to within one packet.
        let mut b = Bucket::new(Rate::new(1000, 500));
        let mut now = Duration::ZERO;
        let mut spent = 0u64;
        while now < Duration::from_secs(10) {
            let w = b.wait(now);
            if w.is_zero() {
                b.spend(now, 64);
                spent += 64;
            } else {
                now += w;
            }
        }
        assert!((10_500..=10_500 + 64).contains(&spent), "{spent}");
    }

    #[test]
    fn small_spends_cannot_beat_the_rate_by_rounding() {
        // 1 unit at 3/s is 333,333,333.3 ns: rounded up, three of them take at least a second.
        let mut b = Bucket::new(Rate::new(3, 0));
        for _ in 0..3 {
            b.spend(Duration::ZERO, 1);
        }
        assert!(b.wait(Duration::ZERO) >= Duration::from_secs(1));
    }

    #[test]
    fn extreme_values_saturate_instead_of_overflowing() {
        let mut b = Bucket::new(Rate::new(0, u64::MAX));
        b.spend(Duration::MAX, u64::MAX);
        b.spend(Duration::MAX, u64::MAX);
        assert_eq!(b.wait(Duration::ZERO), Duration::MAX.saturating_sub(b.tolerance));
        let _ = b.available(Duration::MAX);
        let mut b = Bucket::new(Rate::new(u64::MAX, 0));
        b.spend(Duration::ZERO, u64::MAX);
        assert_eq!(b.wait(Duration::ZERO), Duration::from_secs(1));
        let mut i = Inbound::new(Some(Rate::new(1, 1)), Some(Rate::new(1, 1)), Instant::now());
        i.spend(Instant::now(), usize::MAX);
        assert!(i.wait(Instant::now()) > Duration::from_secs(1_000_000));
    }

    #[test]
    fn inbound_waits_for_the_slower_of_its_buckets() {
        let t0 = Instant::now();
        let mut i = Inbound::new(Some(Rate::new(1000, 0)), Some(Rate::new(10, 0)), t0);
        i.spend(t0, 100);
        assert_eq!(i.wait(t0), 100 * MS, "one packet at 10/s outweighs 100 bytes at 1000/s");
        i.spend(t0, 1000);
        assert_eq!(i.wait(t0), 1100 * MS, "now the bytes are the slower");
        let free = Inbound::new(None, None, t0);
        assert_eq!(free.wait(t0), Duration::ZERO);
        let mut free = free;
        free.spend(t0, usize::MAX);
        assert_eq!(free.wait(t0), Duration::ZERO, "no bucket, no limit");
        assert_eq!(Inbound::new(None, None, t0 + MS).wait(t0), Duration::ZERO, "a clock before the origin is fine");
    }

    #[test]
    fn sampler_lets_one_line_through_per_interval_and_counts_the_rest() {
        let t0 = Instant::now();
        let mut s = Sampler::new(Duration::from_secs(10));
        assert_eq!(s.sample(t0), Some(0));
        assert_eq!(s.sample(t0 + MS), None);
        assert_eq!(s.sample(t0 + Duration::from_secs(9)), None);
        assert_eq!(s.sample(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(s.sample(t0 + Duration::from_secs(11)), None);
        assert_eq!(s.sample(t0 + Duration::from_secs(30)), Some(1));
        let mut once = Sampler::new(Duration::MAX);
        assert_eq!(once.sample(t0), Some(0));
        assert_eq!(once.sample(t0 + Duration::from_secs(1_000_000)), None, "an endless interval: one line");
    }
}

//! Reconnect pacing shared by every MQTT client in the system (agents, the controller on an external broker).
//!
//! Delays start at 1 s and double to 30 s; each is drawn from `[d/2, d]` so a fleet that lost its broker at
//! the same moment does not come back in lock-step. Pure: the caller supplies the randomness.

use core::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Backoff::MIN }
    }
}

impl Backoff {
    pub const MIN: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(30);

    /// After a successful connection: the next failure waits the minimum again.
    pub fn reset(&mut self) {
        self.next = Backoff::MIN;
    }

    /// The delay before the next attempt; `random` is any uniformly random `u32` (it picks the jitter).
    pub fn next_delay(&mut self, random: u32) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Backoff::MAX);
        let ms = d.as_millis() as u64;
        let half = ms / 2;
        Duration::from_millis(half + (random as u64) % (ms - half + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_thirty_seconds_with_jitter_and_resets() {
        for random in [0, 1, 12_345, u32::MAX] {
            let mut b = Backoff::default();
            let delays: [Duration; 8] = core::array::from_fn(|_| b.next_delay(random));
            assert!(delays[0] >= Duration::from_millis(500) && delays[0] <= Duration::from_secs(1));
            assert!(delays[1] >= Duration::from_secs(1) && delays[1] <= Duration::from_secs(2));
            assert!(delays[7] >= Duration::from_secs(15) && delays[7] <= Backoff::MAX);
            b.reset();
            assert!(b.next_delay(random) <= Duration::from_secs(1));
        }
    }
}
